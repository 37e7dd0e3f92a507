/**
 * Writes through the views, when the model gives a table `edits` or a `recycleBin`: generated
 * INSTEAD OF triggers on the view, SECURITY DEFINER functions owned by the view owner (so they
 * can write the base table, under the same row policies, which name the person through
 * pgwarden.caller()).
 *
 *   UPDATE: every changed column is checked against the model's edit rights for this person and
 *           row; read-only columns are refused; then the base row is updated (update policy,
 *           WITH CHECK); a row the update policy does not reach is an error, never "UPDATE 1"
 *           with nothing changed. RETURNING shows the row as the person sees it.
 *   INSERT: the columns the person gave are inserted (others take the table's defaults), under
 *           the insert policy; masked columns can be set.
 *   DELETE: the row and its child rows go to pgwarden.recycle_bin, then the row is deleted under
 *           the delete policy; if that refuses, nothing happens.
 * Refusals raise SQLSTATE 42501 with a message that names the person, the table, the row, the
 * column and the rule.
 */
import type { CatalogObject, FunctionObject, TriggerObject } from '../catalog/objects.js';
import type { CellWhen, Model, TableModel } from '../model/types.js';
import { ident, join, literal, qualified, type Sql, sql, unsafeRaw } from '../sql/fragment.js';
import { quoteQualified } from '../sql/quote.js';
import { typeName } from '../sql/render.js';
import type { RoleNames } from './index.js';
import {
  CURRENT_USER,
  col,
  commandPredicate,
  hasJob,
  or,
  type PredicateContext,
  relationPredicate,
  scopePredicate,
} from './predicates.js';

/** A RAISE placeholder in `msg` templates. */
export const P: unique symbol = Symbol('raise placeholder');

/**
 * A RAISE format string: `${P}` is a placeholder, everything else (names from the model) is
 * escaped, since `%` starts a placeholder.
 *   msg`${P} may not change column "${name}"`  ->  '% may not change column "a%%b"'
 */
export function msg(strings: TemplateStringsArray, ...vals: (typeof P | string)[]): Sql {
  const esc = (t: string) => t.replaceAll('%', '%%');
  let out = esc(strings[0] ?? '');
  vals.forEach((v, i) => {
    out += (v === P ? '%' : esc(v)) + esc(strings[i + 1] ?? '');
  });
  return literal(out);
}

export function whenLabel(w: CellWhen): string {
  switch (w.kind) {
    case 'relation':
      return w.relation;
    case 'job':
      return `job:${w.job}`;
    case 'parent':
      return `parent:${w.relation}`;
  }
}

export function whenPredicate(ctx: PredicateContext, w: CellWhen): Sql {
  switch (w.kind) {
    case 'job':
      return hasJob(ctx.person, w.job, ctx.inline);
    case 'parent':
      return scopePredicate(ctx, {
        kind: 'parent',
        column: w.column,
        table: w.table,
        via: [w.relation],
      });
    case 'relation':
      return relationPredicate(ctx, w.relation);
  }
}

export function triggerFunctionName(
  table: TableModel,
  command: 'insert' | 'update' | 'delete',
): string {
  const name = `_write_${table.name}_${command}`;
  return Buffer.byteLength(name, 'utf8') <= 63
    ? name
    : `_write_${command}_${shortHash(table.name)}`;
}

function shortHash(s: string): string {
  let h = 0;
  for (const ch of s) h = (Math.imul(h, 31) + (ch.codePointAt(0) ?? 0)) >>> 0;
  return h.toString(16).padStart(8, '0');
}

const WHO = sql`${qualified('pgwarden', 'person_name')}(${CURRENT_USER})`;

function header(model: Model, table: TableModel, extra: Sql[]): Sql {
  return sql`DECLARE
  who text := ${WHO};
${join(extra, '\n')}
BEGIN
  IF who IS NULL THEN
    RAISE EXCEPTION 'permission denied: role "%" is not an active person', ${CURRENT_USER}
      USING ERRCODE = '42501', HINT = ${literal(`Write through ${model.schemas.exposed}.${table.name} as a person (SET LOCAL ROLE).`)};
  END IF;`;
}

function rulesHint(table: TableModel, command: 'insert' | 'update' | 'delete'): string {
  const rules = table.rules.filter((r) => r.commands.includes(command));
  if (rules.length === 0) return `No ${command} rule in the model.`;
  return `${command} rules: ${rules
    .map(
      (r) =>
        `${r.jobs.join('/')} -> ${r.scopes.map((s) => (s.kind === 'filter' ? `filter(${s.sql})` : s.kind === 'parent' ? `parent ${s.table}${s.via ? ` via ${s.via.join('/')}` : ''}` : s.kind)).join(' | ')}`,
    )
    .join('; ')}`;
}

function fn(
  model: Model,
  table: TableModel,
  command: 'insert' | 'update' | 'delete',
  body: Sql,
  roles: RoleNames,
): FunctionObject {
  return {
    kind: 'function',
    schema: 'pgwarden',
    name: triggerFunctionName(table, command),
    args: [],
    returns: 'trigger',
    language: 'plpgsql',
    volatility: 'volatile',
    securityDefiner: true,
    owner: roles.viewOwner,
    body: `\n${body.text}\n`,
    comment: `pgwarden: ${command} through ${model.schemas.exposed}.${table.name}, checked (INSTEAD OF trigger)`,
  };
}

function trigger(
  model: Model,
  table: TableModel,
  command: 'insert' | 'update' | 'delete',
): TriggerObject {
  return {
    kind: 'trigger',
    schema: model.schemas.exposed,
    table: table.name,
    name: `pgwarden_${command}`,
    timing: 'instead of',
    level: 'row',
    events: [command],
    function: { schema: 'pgwarden', name: triggerFunctionName(table, command) },
  };
}

/** Before and after each UPDATE / DELETE statement: count skipped rows, refuse "changed nothing". */
function statementTriggers(
  model: Model,
  table: TableModel,
  command: 'update' | 'delete',
): TriggerObject[] {
  return (['before', 'after'] as const).map((timing) => ({
    kind: 'trigger',
    schema: model.schemas.exposed,
    table: table.name,
    name: `pgwarden_${command}_${timing}`,
    timing,
    level: 'statement',
    events: [command],
    function: { schema: 'pgwarden', name: '_write_statement' },
  }));
}

/** The row is in the person's scope for the command: else the row trigger skips it. */
function scopeCheck(model: Model, table: TableModel, command: 'update' | 'delete'): Sql {
  const ctx: PredicateContext = { model, table, person: CURRENT_USER, access: command };
  const pred = commandPredicate(ctx, command) ?? unsafeRaw('false');
  const key = ident(table.key);
  return sql`  -- rows outside the person's ${unsafeRaw(command)} scope are skipped, as row level security skips them
  SELECT (${pred}) INTO ok FROM ${qualified(model.schemas.protected, table.table)} WHERE ${col(table, table.key)} = OLD.${key};
  IF ok IS NOT TRUE THEN
    PERFORM ${qualified('pgwarden', '_write_skipped')}(OLD.${key}::text);
    RETURN NULL;
  END IF;`;
}

function updateBody(model: Model, table: TableModel): Sql {
  const ctx: PredicateContext = { model, table, person: CURRENT_USER, access: 'update' };
  const base = qualified(model.schemas.protected, table.table);
  const view = qualified(model.schemas.exposed, table.name);
  const key = ident(table.key);
  const keyCol = col(table, table.key);
  const edits = new Map((table.edits ?? []).map((e) => [e.column, e]));
  const checks = table.columns.map((c) => {
    const C = ident(c.name);
    const edit = edits.get(c.name);
    if (!edit) {
      return sql`  IF NEW.${C} IS DISTINCT FROM OLD.${C} THEN
    RAISE EXCEPTION ${msg`permission denied: ${P} may not change column "${c.name}" of ${table.name} ${P}: the column is read-only`}, who, OLD.${key}
      USING ERRCODE = '42501', HINT = ${literal(`No edit rule of the model lets anyone change ${table.name}.${c.name}.`)};
  END IF;`;
    }
    const rule = `edits.${c.name}: ${edit.who.map(whenLabel).join(', ')}`;
    const pred = or(edit.who.map((w) => whenPredicate(ctx, w)));
    return sql`  IF NEW.${C} IS DISTINCT FROM OLD.${C} THEN
    SELECT (${pred}) INTO ok FROM ${base} WHERE ${keyCol} = OLD.${key};
    IF ok IS NOT TRUE THEN
      RAISE EXCEPTION ${msg`permission denied: ${P} may not change column "${c.name}" of ${table.name} ${P} (rule ${rule})`}, who, OLD.${key}
        USING ERRCODE = '42501', HINT = ${literal(`Only people related to the row as ${edit.who.map(whenLabel).join(' or ')} may change it.`)};
    END IF;
  END IF;`;
  });
  const sets = [...edits.keys()].map(
    (c) =>
      sql`${ident(c)} = CASE WHEN NEW.${ident(c)} IS DISTINCT FROM OLD.${ident(c)} THEN NEW.${ident(c)} ELSE ${col(table, c)} END`,
  );
  const setList = sets.length > 0 ? join(sets, ',\n      ') : sql`${key} = ${keyCol}`;
  return sql`${header(model, table, [unsafeRaw('  ok boolean;'), unsafeRaw('  n integer;'), unsafeRaw('  r record;'), unsafeRaw('  gated boolean := false;'), unsafeRaw("  changes jsonb := '{}';"), unsafeRaw('  change bigint;')])}
${gatedSection(model, table)}
${scopeCheck(model, table, 'update')}
${join(checks, '\n')}
  BEGIN
    UPDATE ${base} SET
      ${setList}
    WHERE ${keyCol} = OLD.${key};
    GET DIAGNOSTICS n = ROW_COUNT;
  EXCEPTION WHEN insufficient_privilege THEN
    RAISE EXCEPTION ${msg`permission denied: ${P} may not change ${table.name} ${P} that way: the changed row would be outside what ${P} may update (${P})`}, who, OLD.${key}, who, SQLERRM
      USING ERRCODE = '42501', HINT = ${literal(rulesHint(table, 'update'))};
  END;
  IF n = 0 THEN
    RAISE EXCEPTION ${msg`permission denied: ${P} may not update ${table.name} ${P}: no update rule reaches this row`}, who, OLD.${key}
      USING ERRCODE = '42501', HINT = ${literal(rulesHint(table, 'update'))};
  END IF;
  PERFORM ${qualified('pgwarden', '_write_done')}();
  SELECT v.* INTO r FROM ${view} v WHERE v.${key} = OLD.${key};
  IF FOUND THEN
    RETURN r;
  END IF;
  RETURN NEW;
END`;
}

/**
 * changeApproval: a change that needs approval (another unit for crossUnit columns, else no direct
 * edit right) is filed as a pending change by a requester, and the row stays as it was.
 */
function gatedSection(model: Model, table: TableModel): Sql {
  const gate = table.changeApproval;
  if (!gate) return unsafeRaw('');
  const ctx: PredicateContext = { model, table, person: CURRENT_USER, access: 'update' };
  const base = qualified(model.schemas.protected, table.table);
  const key = ident(table.key);
  const keyCol = col(table, table.key);
  const edits = new Map((table.edits ?? []).map((e) => [e.column, e]));
  const detect = gate.columns.map((g) => {
    const C = ident(g.column);
    let cond: Sql;
    if (g.crossUnit && g.column === table.owner) {
      cond = sql`${qualified('pgwarden', '_unit_of')}(NEW.${C}::text) IS DISTINCT FROM ${qualified('pgwarden', '_unit_of')}(OLD.${C}::text)`;
    } else if (g.crossUnit) {
      cond = unsafeRaw('true');
    } else {
      const edit = edits.get(g.column);
      const direct = edit ? or(edit.who.map((w) => whenPredicate(ctx, w))) : unsafeRaw('false');
      return sql`  IF NEW.${C} IS DISTINCT FROM OLD.${C} THEN
    SELECT (${direct}) INTO ok FROM ${base} WHERE ${keyCol} = OLD.${key};
    IF ok IS NOT TRUE THEN
      gated := true;
    END IF;
  END IF;`;
    }
    return sql`  IF NEW.${C} IS DISTINCT FROM OLD.${C} AND ${cond} THEN
    gated := true;
  END IF;`;
  });
  const gatedCols = new Map(gate.columns.map((g) => [g.column, g]));
  const checks = table.columns.map((c) => {
    const C = ident(c.name);
    const g = gatedCols.get(c.name);
    if (!g) {
      return sql`    IF NEW.${C} IS DISTINCT FROM OLD.${C} THEN
      RAISE EXCEPTION ${msg`permission denied: ${P} may not change column "${c.name}" of ${table.name} ${P} together with a change that needs approval`}, who, OLD.${key}
        USING ERRCODE = '42501', HINT = 'Change it in a separate statement.';
    END IF;`;
    }
    const labels = g.requesters.map(whenLabel).join(', ');
    const edit = edits.get(c.name);
    const rule = `${edit ? `edits.${c.name}: ${edit.who.map(whenLabel).join(', ')}; ` : ''}changeApproval.${c.name}.requesters: ${labels}`;
    return sql`    IF NEW.${C} IS DISTINCT FROM OLD.${C} THEN
      SELECT (${or(g.requesters.map((w) => whenPredicate(ctx, w)))}) INTO ok FROM ${base} WHERE ${keyCol} = OLD.${key};
      IF ok IS NOT TRUE THEN
        RAISE EXCEPTION ${msg`permission denied: ${P} may not change column "${c.name}" of ${table.name} ${P} (rule ${rule})`}, who, OLD.${key}
          USING ERRCODE = '42501', HINT = ${literal(`Only people related to the row as ${g.requesters.map(whenLabel).join(' or ')} may ask for this change.`)};
      END IF;
      changes := changes || pg_catalog.jsonb_build_object(${literal(c.name)}, pg_catalog.jsonb_build_object('old', pg_catalog.to_jsonb(OLD.${C}), 'new', pg_catalog.to_jsonb(NEW.${C})));
    END IF;`;
  });
  return sql`  -- changes that need approval (changeApproval) become pending changes; the row stays as it is
${join(detect, '\n')}
  IF gated THEN
${join(checks, '\n')}
    change := ${qualified('pgwarden', '_request_change')}(${literal(table.name)}, OLD.${key}::text, changes);
    RAISE NOTICE ${msg`pgwarden: change ${P} of ${table.name} ${P} by ${P} waits for approval (pgwarden changes; pgwarden approve-change ${P})`}, change, OLD.${key}, who, change;
    PERFORM ${qualified('pgwarden', '_write_done')}();
    RETURN NULL;
  END IF;`;
}

/** The approvers of a table's gated columns, checked on the row as it would be after the change. */
export function approverCheckFunction(
  model: Model,
  table: TableModel,
  roles: RoleNames,
): FunctionObject | null {
  const gate = table.changeApproval;
  if (!gate) return null;
  const p = unsafeRaw('p');
  const ctx: PredicateContext = { model, table, person: p, access: 'update' };
  const base = qualified(model.schemas.protected, table.table);
  const parts = gate.columns.map(
    (g) =>
      sql`(NOT (${literal(g.column)} = ANY (cols)) OR (${or(g.approvers.map((w) => whenPredicate(ctx, w)))}))`,
  );
  const body = sql`
  SELECT COALESCE(pg_catalog.bool_and(s.ok), false) FROM (
    SELECT (${join(parts, '\n      AND ')}) AS ok
    FROM pg_catalog.jsonb_populate_record(NULL::${base},
           (SELECT pg_catalog.to_jsonb(x) || newvals FROM ${base} x WHERE x.${ident(table.key)} = row_key::${typeName(table.keyType)})) AS ${ident(table.table)}
    WHERE p = ${qualified('pgwarden', 'caller')}() AND ${qualified('pgwarden', 'person_name')}(p) IS NOT NULL
  ) s
`;
  return {
    kind: 'function',
    schema: 'pgwarden',
    name: approverFunctionName(table),
    args: [
      { name: 'p', type: 'name' },
      { name: 'row_key', type: 'text' },
      { name: 'cols', type: 'text[]' },
      { name: 'newvals', type: 'jsonb' },
    ],
    returns: 'boolean',
    language: 'sql',
    volatility: 'stable',
    securityDefiner: true,
    owner: roles.catalogOwner,
    body: body.text,
    comment: `pgwarden: may the caller approve this change of ${table.name} (approvers of the model, on the row as it would be)`,
  };
}

export function approverFunctionName(table: TableModel): string {
  const name = `_approves_${table.name}`;
  return Buffer.byteLength(name, 'utf8') <= 63 ? name : `_approves_${shortHash(table.name)}`;
}

function insertBody(model: Model, table: TableModel): Sql {
  const base = qualified(model.schemas.protected, table.table);
  const view = qualified(model.schemas.exposed, table.name);
  const key = ident(table.key);
  const given = table.columns.map(
    (c) =>
      sql`  IF NEW.${ident(c.name)} IS NOT NULL THEN cols := cols || ${literal(c.name)}::text; END IF;`,
  );
  const baseText = literal(quoteQualified(model.schemas.protected, table.table));
  return sql`${header(model, table, [unsafeRaw("  cols text[] := '{}';"), sql`  k ${typeName(table.keyType)};`, unsafeRaw('  r record;')])}
${join(given, '\n')}
  BEGIN
    IF pg_catalog.cardinality(cols) = 0 THEN
      INSERT INTO ${base} DEFAULT VALUES RETURNING ${col(table, table.key)} INTO k;
    ELSE
      EXECUTE pg_catalog.format('INSERT INTO %s (%s) SELECT %s FROM pg_catalog.jsonb_populate_record(NULL::%s, $1) RETURNING %I',
          ${baseText}, (SELECT pg_catalog.string_agg(pg_catalog.quote_ident(c), ', ') FROM pg_catalog.unnest(cols) AS c),
          (SELECT pg_catalog.string_agg(pg_catalog.quote_ident(c), ', ') FROM pg_catalog.unnest(cols) AS c),
          ${baseText}, ${literal(table.key)})
        INTO k USING pg_catalog.to_jsonb(NEW);
    END IF;
  EXCEPTION WHEN insufficient_privilege THEN
    RAISE EXCEPTION ${msg`permission denied: ${P} may not insert this row into ${table.name} (${P})`}, who, SQLERRM
      USING ERRCODE = '42501', HINT = ${literal(rulesHint(table, 'insert'))};
  END;
  SELECT v.* INTO r FROM ${view} v WHERE v.${key} = k;
  IF FOUND THEN
    RETURN r;
  END IF;
  NEW.${key} := k;
  RETURN NEW;
END`;
}

function deleteBody(model: Model, table: TableModel): Sql {
  const base = qualified(model.schemas.protected, table.table);
  const key = ident(table.key);
  return sql`${header(model, table, [unsafeRaw('  ok boolean;'), unsafeRaw('  n integer;'), unsafeRaw('  bin bigint;')])}
${scopeCheck(model, table, 'delete')}
  bin := ${qualified('pgwarden', '_bin_put')}(${literal(table.name)}, OLD.${key}::text, who);
  DELETE FROM ${base} WHERE ${col(table, table.key)} = OLD.${key};
  GET DIAGNOSTICS n = ROW_COUNT;
  IF n = 0 THEN
    RAISE EXCEPTION ${msg`permission denied: ${P} may not delete ${table.name} ${P}: no delete rule reaches this row`}, who, OLD.${key}
      USING ERRCODE = '42501', HINT = ${literal(rulesHint(table, 'delete'))};
  END IF;
  PERFORM ${qualified('pgwarden', '_write_done')}();
  RETURN OLD;
END`;
}

/** Functions and triggers for the tables that need them. */
export function writeObjects(model: Model, table: TableModel, roles: RoleNames): CatalogObject[] {
  const out: CatalogObject[] = [];
  if (table.edits) {
    out.push(
      fn(model, table, 'update', updateBody(model, table), roles),
      trigger(model, table, 'update'),
      ...statementTriggers(model, table, 'update'),
    );
    if (table.rules.some((r) => r.commands.includes('insert'))) {
      out.push(
        fn(model, table, 'insert', insertBody(model, table), roles),
        trigger(model, table, 'insert'),
      );
    }
  }
  if (table.recycleBin) {
    out.push(
      fn(model, table, 'delete', deleteBody(model, table), roles),
      trigger(model, table, 'delete'),
      ...statementTriggers(model, table, 'delete'),
    );
  }
  return out;
}

/** Child tables that follow a row of `table` into the recycle bin. */
export function childTables(model: Model, table: TableModel): { table: string; column: string }[] {
  const out = new Map<string, { table: string; column: string }>();
  for (const t of model.tables) {
    for (const r of t.rules) {
      for (const s of r.scopes) {
        if (s.kind === 'parent' && s.table === table.name)
          out.set(`${t.name}\u0000${s.column}`, { table: t.name, column: s.column });
      }
    }
  }
  return [...out.values()].sort((a, b) =>
    a.table < b.table ? -1 : a.table > b.table ? 1 : a.column < b.column ? -1 : 1,
  );
}
