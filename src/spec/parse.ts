/**
 * Parses a `pgwarden test` spec (YAML) into expectations, with the file:line of each. Pure: no
 * database. Problems are returned as data, each naming where it was written and the fix; the
 * format is documented in docs/testing.md.
 *
 *   as alice:
 *     - sees customers: [1, 2, 3]
 *     - row customers 1: { phone: full, id_number: masked }
 *     - update customers 1 set owner = bob: refused
 */
import { readFile } from 'node:fs/promises';
import {
  isMap,
  isScalar,
  isSeq,
  LineCounter,
  type Node,
  type Pair,
  parseDocument,
  type YAMLMap,
} from 'yaml';
import type {
  CellExpectation,
  Expectation,
  OutcomeExpectation,
  PersonBlock,
  Spec,
  SpecLocation,
  SpecProblem,
  SpecProblemCode,
  SpecStatement,
  SpecValue,
} from './types.js';

export interface ParsedSpec {
  /** null when the file could not be read or is not YAML */
  spec: Spec | null;
  problems: SpecProblem[];
}

const STATEMENTS = [
  'sees <table>',
  'row <table> <key>',
  'update <table> <key> set <column> = <value>[, ...]',
  'insert <table> set <column> = <value>[, ...]',
  'delete <table> <key>',
  'claim <table> <key>',
  'release <table> <key>',
  'reveal <table> <key> <column>',
  'export <table> [columns <column>, ...]',
];
const STATEMENT_HELP = `Write one of: ${STATEMENTS.join('; ')} (see docs/testing.md).`;
const OUTCOME_HELP =
  'Write allowed, refused, "<n> rows", or a map such as { refused: "may not change column" }, { rows: 2 } or (export) { columns: [id, name] }.';

/** Reads and parses a spec file. */
export async function loadSpec(file: string): Promise<ParsedSpec> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    return {
      spec: null,
      problems: [
        {
          code: 'file_not_found',
          message: `cannot read the spec file: ${(e as Error).message}`,
          fix: 'Pass the path of a YAML file of expectations, e.g. examples/crm/expectations.yaml.',
          location: { file, line: 1, column: 1 },
        },
      ],
    };
  }
  return parseSpec(text, file);
}

/** Parses the text of a spec; `file` names it in locations. */
export function parseSpec(text: string, file: string): ParsedSpec {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, uniqueKeys: false, prettyErrors: false });
  const problems: SpecProblem[] = [];
  const at = (node: unknown): SpecLocation => {
    const offset = (node as Node | undefined)?.range?.[0] ?? 0;
    const pos = lines.linePos(offset);
    return { file, line: pos.line, column: pos.col };
  };
  const problem = (code: SpecProblemCode, node: unknown, message: string, fix: string) => {
    problems.push({ code, message, fix, location: at(node) });
  };

  if (doc.errors.length > 0) {
    for (const err of doc.errors) {
      const pos = lines.linePos(err.pos[0]);
      problems.push({
        code: 'invalid_syntax',
        message: `invalid YAML: ${err.message.split('\n')[0]}`,
        fix: 'Fix the YAML syntax (indentation, a missing colon, unbalanced quotes or brackets).',
        location: { file, line: pos.line, column: pos.col },
      });
    }
    return { spec: null, problems };
  }

  const spec: Spec = { file, blocks: [] };
  const root = doc.contents;
  if (root === null || (isScalar(root) && (root.value === null || root.value === ''))) {
    problem(
      'invalid_structure',
      root,
      'the spec is empty',
      'Add at least one block `as <person>:` with a list of expectations.',
    );
    return { spec, problems };
  }
  if (!isMap(root)) {
    problem(
      'invalid_structure',
      root,
      'the spec must be a map of `schema`, `description` and `as <person>` blocks',
      'Start the file with `as alice:` followed by a list of expectations.',
    );
    return { spec, problems };
  }
  const seenBlocks = new Map<string, SpecLocation>();
  for (const pair of (root as YAMLMap).items) {
    const key = scalarText(pair.key);
    if (key === null) {
      problem(
        'invalid_structure',
        pair.key,
        'a top-level key must be plain text',
        'Use `schema`, `description` or `as <person>`.',
      );
      continue;
    }
    if (key === 'schema') {
      const v = scalarText(pair.value);
      if (!v)
        problem(
          'invalid_structure',
          pair.value ?? pair.key,
          '`schema` must be the name of the exposed schema',
          'Write e.g. `schema: crm_api`, or leave it out to use the schema pgwarden apply recorded.',
        );
      else spec.schema = v;
      continue;
    }
    if (key === 'description') continue;
    const m = /^as\s+(\S+)$/.exec(key.trim());
    if (!m) {
      problem(
        'invalid_structure',
        pair.key,
        `unknown top-level key ${JSON.stringify(key)}`,
        'Top-level keys are `schema`, `description` and `as <person>` (e.g. `as alice:`).',
      );
      continue;
    }
    const person = m[1] as string;
    const earlier = seenBlocks.get(person);
    if (earlier) {
      problem(
        'invalid_structure',
        pair.key,
        `\`as ${person}\` is written twice (first at line ${earlier.line}); YAML would keep only one`,
        `Merge the two lists into one \`as ${person}:\` block.`,
      );
      continue;
    }
    seenBlocks.set(person, at(pair.key));
    const block: PersonBlock = { person, location: at(pair.key), expectations: [] };
    spec.blocks.push(block);
    if (!isSeq(pair.value)) {
      problem(
        'invalid_structure',
        pair.value ?? pair.key,
        `\`as ${person}\` must be a list of expectations`,
        'Write each expectation on its own line starting with `- `, e.g. `- sees customers: [1, 2]`.',
      );
      continue;
    }
    for (const item of pair.value.items) {
      const e = parseItem(person, item, at, problem);
      if (e) block.expectations.push(e);
    }
  }
  if (spec.blocks.length === 0 && problems.length === 0)
    problem(
      'invalid_structure',
      root,
      'the spec has no `as <person>` block',
      'Add at least one block `as <person>:` with a list of expectations.',
    );
  return { spec, problems };
}

type Problem = (code: SpecProblemCode, node: unknown, message: string, fix: string) => void;

function scalarText(node: unknown): string | null {
  if (!isScalar(node)) return null;
  const v = node.value;
  if (typeof v === 'string') return v;
  if (typeof v === 'number' || typeof v === 'bigint') return node.source ?? String(v);
  return null;
}

/** A scalar as a spec value: the text as written, numbers included; null for YAML null. */
function scalarValue(node: unknown): SpecValue | undefined {
  if (!isScalar(node)) return undefined;
  const v = node.value;
  if (v === null) return null;
  if (typeof v === 'string') return v;
  if (typeof v === 'number' || typeof v === 'bigint' || typeof v === 'boolean')
    return node.source ?? String(v);
  return undefined;
}

function parseItem(
  person: string,
  item: unknown,
  at: (node: unknown) => SpecLocation,
  problem: Problem,
): Expectation | null {
  if (!isMap(item)) {
    problem(
      'malformed_expectation',
      item,
      'an expectation must be `<statement>: <expected>`',
      `${STATEMENT_HELP} Example: \`- sees customers: [1, 2]\`.`,
    );
    return null;
  }
  let label: string | undefined;
  let main: Pair | undefined;
  for (const pair of item.items) {
    const key = scalarText(pair.key);
    if (key === 'label') {
      const v = scalarText(pair.value);
      if (!v)
        problem(
          'malformed_expectation',
          pair.value ?? pair.key,
          '`label` must be text',
          'Write e.g. `label: bob may not rename a customer shared with him`.',
        );
      else label = v;
      continue;
    }
    if (main) {
      problem(
        'malformed_expectation',
        pair.key,
        `one expectation per list item: ${JSON.stringify(key)} follows ${JSON.stringify(scalarText(main.key))}`,
        'Start a new item with `- ` for each expectation (only `label` may be added to an item).',
      );
      continue;
    }
    main = pair;
  }
  if (!main) {
    problem(
      'malformed_expectation',
      item,
      'the item has a label but no expectation',
      `${STATEMENT_HELP}`,
    );
    return null;
  }
  const text = scalarText(main.key);
  const location = at(main.key);
  if (text === null) {
    problem('malformed_expectation', main.key, 'the statement must be plain text', STATEMENT_HELP);
    return null;
  }
  const statement = parseStatement(text.trim(), main.value, main.key, problem);
  if (!statement) return null;
  const e: Expectation = {
    person,
    text: text.trim(),
    label: `${person}: ${label ?? text.trim()}`,
    statement,
    location,
  };
  if (statement.kind === 'row' && isMap(main.value)) {
    e.columnLocations = {};
    for (const pair of main.value.items) {
      const k = scalarText(pair.key);
      if (k !== null) e.columnLocations[k] = at(pair.key);
    }
  }
  return e;
}

// ------------------------------------------------------------------ the statement grammar

type Token = { t: 'word' | 'string' | 'ident' | ',' | '='; v: string };

function tokenize(s: string): Token[] | string {
  const out: Token[] = [];
  let i = 0;
  while (i < s.length) {
    const ch = s[i] as string;
    if (/\s/.test(ch)) {
      i += 1;
    } else if (ch === ',' || ch === '=') {
      out.push({ t: ch, v: ch });
      i += 1;
    } else if (ch === "'" || ch === '"') {
      let v = '';
      let j = i + 1;
      for (;;) {
        if (j >= s.length) return `unterminated ${ch === "'" ? 'string' : 'quoted name'}`;
        if (s[j] === ch) {
          if (s[j + 1] === ch) {
            v += ch;
            j += 2;
            continue;
          }
          break;
        }
        v += s[j];
        j += 1;
      }
      out.push({ t: ch === "'" ? 'string' : 'ident', v });
      i = j + 1;
    } else {
      let j = i;
      while (j < s.length && !/[\s,='"]/.test(s[j] as string)) j += 1;
      out.push({ t: 'word', v: s.slice(i, j) });
      i = j;
    }
  }
  return out;
}

class Grammar {
  i = 0;
  constructor(readonly tokens: Token[]) {}
  peek(): Token | undefined {
    return this.tokens[this.i];
  }
  done(): boolean {
    return this.i >= this.tokens.length;
  }
  /** a name: a word or a "quoted name" */
  name(what: string): string {
    const tk = this.tokens[this.i];
    if (!tk || (tk.t !== 'word' && tk.t !== 'ident')) throw new GrammarError(`expected ${what}`);
    this.i += 1;
    return tk.v;
  }
  /** a key: a word, a number or a 'string' */
  key(): string {
    const tk = this.tokens[this.i];
    if (!tk || (tk.t !== 'word' && tk.t !== 'string')) throw new GrammarError('expected a row key');
    this.i += 1;
    return tk.v;
  }
  keyword(word: string): boolean {
    const tk = this.tokens[this.i];
    if (tk?.t === 'word' && tk.v.toLowerCase() === word) {
      this.i += 1;
      return true;
    }
    return false;
  }
  value(): SpecValue {
    const tk = this.tokens[this.i];
    if (!tk || (tk.t !== 'word' && tk.t !== 'string'))
      throw new GrammarError("expected a value ('text', a number, a word or null)");
    this.i += 1;
    if (tk.t === 'word' && tk.v.toLowerCase() === 'null') return null;
    return tk.v;
  }
  assignments(): { column: string; value: SpecValue }[] {
    const out: { column: string; value: SpecValue }[] = [];
    for (;;) {
      const column = this.name('a column name');
      if (this.peek()?.t !== '=') throw new GrammarError(`expected = after ${column}`);
      this.i += 1;
      out.push({ column, value: this.value() });
      if (this.peek()?.t !== ',') break;
      this.i += 1;
    }
    return out;
  }
  names(): string[] {
    const out = [this.name('a column name')];
    while (this.peek()?.t === ',') {
      this.i += 1;
      out.push(this.name('a column name'));
    }
    return out;
  }
  end(): void {
    const tk = this.peek();
    if (tk) throw new GrammarError(`unexpected ${JSON.stringify(tk.v)}`);
  }
}

class GrammarError extends Error {}

type Head =
  | { kind: 'sees'; table: string }
  | { kind: 'row'; table: string; key: string }
  | { kind: 'update'; table: string; key: string; set: { column: string; value: SpecValue }[] }
  | { kind: 'insert'; table: string; set: { column: string; value: SpecValue }[] }
  | { kind: 'delete' | 'claim' | 'release'; table: string; key: string }
  | { kind: 'reveal'; table: string; key: string; column: string }
  | { kind: 'export'; table: string; columns?: string[] };

function parseHead(text: string): Head | string {
  const tokens = tokenize(text);
  if (typeof tokens === 'string') return tokens;
  const g = new Grammar(tokens);
  const first = g.peek();
  if (first?.t !== 'word') return 'expected a statement';
  const verb = first.v.toLowerCase();
  g.i += 1;
  try {
    let head: Head;
    switch (verb) {
      case 'sees':
      case 'see':
        head = { kind: 'sees', table: g.name('a table') };
        break;
      case 'row':
        head = { kind: 'row', table: g.name('a table'), key: g.key() };
        break;
      case 'update': {
        const table = g.name('a table');
        const key = g.key();
        if (!g.keyword('set')) throw new GrammarError('expected set <column> = <value>');
        head = { kind: 'update', table, key, set: g.assignments() };
        break;
      }
      case 'insert': {
        g.keyword('into');
        const table = g.name('a table');
        if (!g.keyword('set')) throw new GrammarError('expected set <column> = <value>');
        head = { kind: 'insert', table, set: g.assignments() };
        break;
      }
      case 'delete':
        g.keyword('from');
        head = { kind: 'delete', table: g.name('a table'), key: g.key() };
        break;
      case 'claim':
      case 'release':
        head = { kind: verb, table: g.name('a table'), key: g.key() };
        break;
      case 'reveal':
        head = {
          kind: 'reveal',
          table: g.name('a table'),
          key: g.key(),
          column: g.name('a column'),
        };
        break;
      case 'export': {
        const table = g.name('a table');
        head = g.keyword('columns')
          ? { kind: 'export', table, columns: g.names() }
          : { kind: 'export', table };
        break;
      }
      default:
        return `unknown statement ${JSON.stringify(first.v)}`;
    }
    g.end();
    return head;
  } catch (e) {
    if (e instanceof GrammarError) return e.message;
    throw e;
  }
}

function parseStatement(
  text: string,
  value: unknown,
  keyNode: unknown,
  problem: Problem,
): SpecStatement | null {
  const head = parseHead(text);
  if (typeof head === 'string') {
    problem(
      'malformed_expectation',
      keyNode,
      `cannot read ${JSON.stringify(text)}: ${head}`,
      STATEMENT_HELP,
    );
    return null;
  }
  const where = value ?? keyNode;
  switch (head.kind) {
    case 'sees':
      return parseSees(head.table, text, value, where, problem);
    case 'row':
      return parseRow(head.table, head.key, text, value, where, problem);
    default: {
      const outcome = parseOutcome(head.kind, text, value, where, problem);
      if (!outcome) return null;
      return { ...head, outcome } as SpecStatement;
    }
  }
}

/** Keys (or names) of a list. With `ranges`, a plain `3-7` is 3, 4, 5, 6, 7 ('3-7' quoted is one key). */
function keyList(node: unknown, ranges = false): string[] | null {
  if (!isSeq(node)) return null;
  const out: string[] = [];
  for (const item of node.items) {
    const v = scalarValue(item);
    if (v === undefined || v === null) return null;
    const range =
      ranges && isScalar(item) && item.type === 'PLAIN' ? /^(\d+)-(\d+)$/.exec(v) : null;
    if (range) {
      const from = Number(range[1]);
      const to = Number(range[2]);
      if (to < from || to - from > 100_000) return null;
      for (let k = from; k <= to; k++) out.push(String(k));
    } else out.push(v);
  }
  return out;
}

function parseSees(
  table: string,
  text: string,
  value: unknown,
  where: unknown,
  problem: Problem,
): SpecStatement | null {
  const fix =
    'Write the keys of exactly the rows the person sees ([1, 2, 5-9]), `none`, or a map of includes: [...], excludes: [...], count: <n>.';
  const list = keyList(value, true);
  if (list) return { kind: 'sees', table, exactly: list };
  if (isScalar(value) && typeof value.value === 'string' && value.value.toLowerCase() === 'none')
    return { kind: 'sees', table, exactly: [] };
  if (isMap(value)) {
    const s: Extract<SpecStatement, { kind: 'sees' }> = { kind: 'sees', table };
    let ok = true;
    for (const pair of value.items) {
      const k = scalarText(pair.key);
      if (k === 'includes' || k === 'excludes') {
        const l = keyList(pair.value, true);
        if (!l) {
          problem(
            'malformed_expectation',
            pair.value ?? pair.key,
            `${k} must be a list of keys (or ranges such as 3-7)`,
            fix,
          );
          ok = false;
        } else s[k] = l;
      } else if (k === 'count') {
        const n = scalarValue(pair.value);
        if (n === undefined || n === null || !/^\d+$/.test(n)) {
          problem(
            'malformed_expectation',
            pair.value ?? pair.key,
            'count must be a whole number',
            fix,
          );
          ok = false;
        } else s.count = Number(n);
      } else {
        problem(
          'malformed_expectation',
          pair.key,
          `unknown key ${JSON.stringify(k)} in \`${text}\``,
          fix,
        );
        ok = false;
      }
    }
    if (ok && s.includes === undefined && s.excludes === undefined && s.count === undefined) {
      problem('malformed_expectation', where, `\`${text}\` expects nothing`, fix);
      return null;
    }
    return ok ? s : null;
  }
  problem('malformed_expectation', where, `\`${text}\` needs the rows the person sees`, fix);
  return null;
}

const LEVELS = ['full', 'masked', 'hidden'] as const;

function parseRow(
  table: string,
  key: string,
  text: string,
  value: unknown,
  where: unknown,
  problem: Problem,
): SpecStatement | null {
  const fix =
    'Write a map of column to full, masked, hidden, or the exact value, e.g. { phone: masked, email: full, id_number: hidden }.';
  if (!isMap(value) || value.items.length === 0) {
    problem('malformed_expectation', where, `\`${text}\` needs the cells to check`, fix);
    return null;
  }
  const cells: { column: string; expect: CellExpectation }[] = [];
  let ok = true;
  for (const pair of value.items) {
    const column = scalarText(pair.key);
    if (column === null) {
      problem('malformed_expectation', pair.key, 'a column name must be plain text', fix);
      ok = false;
      continue;
    }
    const v = pair.value;
    let expect: CellExpectation | undefined;
    if (isMap(v) && v.items.length === 1 && scalarText(v.items[0]?.key) === 'is') {
      const exact = scalarValue(v.items[0]?.value);
      if (exact !== undefined) expect = { value: exact };
    } else {
      const s = v === null ? null : scalarValue(v);
      if (s === null) expect = { value: null };
      else if (s !== undefined) {
        const level = LEVELS.find((l) => l === s.toLowerCase());
        expect = level ? { level } : { value: s };
      }
    }
    if (!expect) {
      problem(
        'malformed_expectation',
        v ?? pair.key,
        `the expectation for ${column} must be full, masked, hidden or a value`,
        `${fix} To expect the text "full" itself, write { is: full }.`,
      );
      ok = false;
      continue;
    }
    cells.push({ column, expect });
  }
  return ok ? { kind: 'row', table, key, cells } : null;
}

function parseOutcome(
  kind: string,
  text: string,
  value: unknown,
  where: unknown,
  problem: Problem,
): OutcomeExpectation | null {
  const s = isScalar(value) ? scalarValue(value) : undefined;
  if (typeof s === 'string') {
    const w = s.trim().toLowerCase();
    if (w === 'allowed') return { verdict: 'allowed' };
    if (w === 'refused') return { verdict: 'refused' };
    const n = /^(\d+) rows?$/.exec(w);
    if (n) return { verdict: 'allowed', rows: Number(n[1]) };
  }
  if (isMap(value)) {
    const o: OutcomeExpectation = { verdict: 'allowed' };
    let ok = true;
    let verdictSet = false;
    for (const pair of value.items) {
      const k = scalarText(pair.key);
      const v = pair.value;
      if (k === 'refused') {
        o.verdict = 'refused';
        verdictSet = true;
        const r = scalarValue(v);
        if (typeof r === 'string' && r !== 'true') o.refusedWith = r;
        else if (!(isScalar(v) && v.value === true)) {
          problem(
            'malformed_expectation',
            v ?? pair.key,
            'refused must be true or a part of the expected error',
            OUTCOME_HELP,
          );
          ok = false;
        }
      } else if (k === 'allowed') {
        if (!(isScalar(v) && v.value === true)) {
          problem('malformed_expectation', v ?? pair.key, 'allowed must be true', OUTCOME_HELP);
          ok = false;
        }
        verdictSet = true;
      } else if (k === 'rows') {
        const n = scalarValue(v);
        if (typeof n !== 'string' || !/^\d+$/.test(n)) {
          problem(
            'malformed_expectation',
            v ?? pair.key,
            'rows must be a whole number',
            OUTCOME_HELP,
          );
          ok = false;
        } else o.rows = Number(n);
      } else if (k === 'columns' && kind === 'export') {
        const l = keyList(v);
        if (!l) {
          problem(
            'malformed_expectation',
            v ?? pair.key,
            'columns must be a list of column names',
            OUTCOME_HELP,
          );
          ok = false;
        } else o.columns = l;
      } else {
        problem(
          'malformed_expectation',
          pair.key,
          `unknown key ${JSON.stringify(k)} in the outcome of \`${text}\``,
          OUTCOME_HELP,
        );
        ok = false;
      }
    }
    if (ok && o.verdict === 'refused' && (o.rows !== undefined || o.columns !== undefined)) {
      problem(
        'malformed_expectation',
        where,
        'a refused statement changes no rows and exports no columns',
        'Write either { refused: ... } or { rows: ... } / { columns: ... }.',
      );
      return null;
    }
    if (ok && !verdictSet && o.rows === undefined && o.columns === undefined) {
      problem('malformed_expectation', where, `the outcome of \`${text}\` is empty`, OUTCOME_HELP);
      return null;
    }
    return ok ? o : null;
  }
  problem(
    'malformed_expectation',
    where,
    `\`${text}\` needs an outcome${s !== undefined ? `, not ${JSON.stringify(s)}` : ''}`,
    OUTCOME_HELP,
  );
  return null;
}
