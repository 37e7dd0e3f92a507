/**
 * Checks a parsed spec against what the database offers (people, views and their columns),
 * before anything runs. Pure: the catalog is read by run.ts and passed in.
 */
import type { Expectation, Spec, SpecCatalog, SpecLocation, SpecProblem } from './types.js';

function suggest(name: string, known: readonly string[]): string {
  const limit = name.length <= 3 ? 1 : Math.max(2, Math.floor(name.length / 3));
  const close = known.filter((k) => distance(k, name) <= limit);
  return close.length > 0
    ? ` Did you mean ${close.map((c) => JSON.stringify(c)).join(' or ')}?`
    : '';
}

function distance(a: string, b: string): number {
  const d = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let prev = d[0] as number;
    d[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = d[j] as number;
      d[j] = Math.min(
        (d[j] as number) + 1,
        (d[j - 1] as number) + 1,
        prev + (a[i - 1] === b[j - 1] ? 0 : 1),
      );
      prev = tmp;
    }
  }
  return d[b.length] as number;
}

function listOf(names: readonly string[]): string {
  return names.length > 30
    ? `${names.slice(0, 30).join(', ')}, ... (${names.length})`
    : names.join(', ');
}

export function checkSpec(spec: Spec, catalog: SpecCatalog): SpecProblem[] {
  const problems: SpecProblem[] = [];
  const tables = Object.keys(catalog.tables).sort();
  for (const block of spec.blocks) {
    if (!catalog.hasPerson(block.person)) {
      const role = `${catalog.rolePrefix}${block.person}`;
      problems.push({
        code: 'unknown_person',
        message: `unknown person ${JSON.stringify(block.person)}: the database has no role ${JSON.stringify(role)}`,
        fix:
          (catalog.knownPeople.length > 0
            ? `Use one of the people of the database: ${listOf(catalog.knownPeople)}.${suggest(block.person, catalog.knownPeople)}`
            : 'Use the name of a person of the database.') +
          (catalog.rolePrefix
            ? ` Roles are looked up with the prefix ${JSON.stringify(catalog.rolePrefix)} (--role-prefix).`
            : ' If the model was applied with a role prefix, pass --role-prefix.'),
        location: block.location,
      });
    }
    for (const e of block.expectations) checkExpectation(e, catalog, tables, problems);
  }
  return problems;
}

function checkExpectation(
  e: Expectation,
  catalog: SpecCatalog,
  tables: string[],
  problems: SpecProblem[],
): void {
  const s = e.statement;
  const table = catalog.tables[s.table];
  if (!table) {
    problems.push({
      code: 'unknown_table',
      message: `unknown table ${JSON.stringify(s.table)} in \`${e.text}\`: schema ${catalog.schema} has no view of that name`,
      fix: `Use one of: ${listOf(tables)}.${suggest(s.table, tables)}`,
      location: e.location,
    });
    return;
  }
  const columns: { name: string; location: SpecLocation }[] = [];
  const here = (name: string) => ({ name, location: e.columnLocations?.[name] ?? e.location });
  if (s.kind === 'row') for (const c of s.cells) columns.push(here(c.column));
  if (s.kind === 'update' || s.kind === 'insert')
    for (const c of s.set) columns.push(here(c.column));
  if (s.kind === 'reveal') columns.push(here(s.column));
  if (s.kind === 'export') {
    for (const c of s.columns ?? []) columns.push(here(c));
    for (const c of s.outcome.columns ?? []) columns.push(here(c));
  }
  for (const c of columns) {
    if (table.columns.includes(c.name)) continue;
    problems.push({
      code: 'unknown_column',
      message: `unknown column ${JSON.stringify(c.name)} of ${s.table} in \`${e.text}\``,
      fix: `Use one of: ${listOf(table.columns)}.${suggest(c.name, table.columns)}`,
      location: c.location,
    });
  }
}
