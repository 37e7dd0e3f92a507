/**
 * validateModel: unknown input -> every problem at once, and the normalized, deeply frozen Model
 * when there are none. Hand-written (not zod) so that each problem gets an exact path, a code
 * and a fix, and so that checking goes on after the first problem.
 */

import { loadParser } from '../sql/tree.js';
import { checkExpression } from './expression.js';
import {
  formatPath,
  type PathSegment,
  type Problem,
  type ProblemCode,
  type ProblemPath,
  type SourceMap,
} from './problems.js';
import {
  ANY_JOB,
  BUILTIN_MASKS,
  type Cell,
  type CellCase,
  type CellWhen,
  COMMANDS,
  type Column,
  type Command,
  type EditRule,
  type EncryptedColumn,
  type ExportRule,
  type GatedEdit,
  type Job,
  type Level,
  type Mask,
  type Model,
  type ModelInput,
  ROW_RELATIONS,
  type RowRelation,
  type Rule,
  type Scope,
  SIMPLE_SCOPES,
  type SimpleScope,
  type TableModel,
} from './types.js';

/** Postgres truncates identifiers longer than this many bytes (same as src/sql/quote.ts). */
const MAX_IDENTIFIER_BYTES = 63;

export interface ValidateOptions {
  /** where the input was written, to give problems a file:line:column */
  source?: SourceMap;
  /** a table without a column list is a problem (`no_columns`); otherwise column checks are skipped for it */
  requireColumns?: boolean;
}

export interface ValidationResult {
  model: Model | null;
  problems: Problem[];
}

/** Letters (any script), digits, `_` and `-`: jobs, masks, table model names, role names. */
const SIMPLE_NAME = /^[\p{L}\p{Nd}_-]+$/u;
/** The type names src/sql/render.ts `typeName` accepts. */
const TYPE_NAME = /^[a-z_][a-z0-9_ ]*(\([0-9, ]+\))?(\[\])?$/i;
const TEXT_TYPES = new Set([
  'text',
  'varchar',
  'character varying',
  'char',
  'character',
  'bpchar',
  'citext',
]);
const RESERVED_ROLES = new Set(['public', 'none', 'current_user', 'session_user', 'current_role']);
const CATALOG_SCHEMA = 'pgwarden';
const CATALOG_OWNER = 'pgwarden_owner';

const byteLength = (s: string) => Buffer.byteLength(s, 'utf8');
const cmp = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

function isRecord(v: unknown): v is Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return false;
  const proto = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'string') return `the string ${JSON.stringify(v)}`;
  if (typeof v === 'object') return 'an object';
  return `${typeof v} ${String(v)}`;
}

function levenshtein(a: string, b: string): number {
  const prev = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let diag = prev[0] as number;
    prev[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = prev[j] as number;
      prev[j] = Math.min(
        (prev[j] as number) + 1,
        (prev[j - 1] as number) + 1,
        diag + (a[i - 1] === b[j - 1] ? 0 : 1),
      );
      diag = tmp;
    }
  }
  return prev[b.length] as number;
}

/** ` Did you mean "x"?` or '' */
function suggest(name: string, candidates: Iterable<string>): string {
  let best: string | null = null;
  let bestD = Number.POSITIVE_INFINITY;
  for (const c of candidates) {
    const d = levenshtein(name.toLowerCase(), c.toLowerCase());
    if (d < bestD) {
      bestD = d;
      best = c;
    }
  }
  if (best === null || bestD > Math.max(2, Math.floor(name.length / 3))) return '';
  return ` Did you mean ${JSON.stringify(best)}?`;
}

const list = (xs: readonly string[]) => xs.map((x) => JSON.stringify(x)).join(', ');

/** serial types are not types: `bigserial[]` does not exist. */
export function normalizeKeyType(type: string): string {
  const t = type.trim().toLowerCase();
  if (t === 'serial' || t === 'serial4') return 'integer';
  if (t === 'bigserial' || t === 'serial8') return 'bigint';
  if (t === 'smallserial' || t === 'serial2') return 'smallint';
  return type.trim();
}

function baseType(type: string): string {
  return type
    .trim()
    .toLowerCase()
    .replace(/\s*\([^)]*\)\s*$/, '')
    .replace(/^pg_catalog\./, '');
}

export function isTextType(type: string): boolean {
  return TEXT_TYPES.has(baseType(type));
}

export function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}

interface TableInfo {
  key: string;
  path: PathSegment[];
  /** table name in the protected schema */
  table: string;
  columns: Column[];
  known: boolean;
  keyColumn: string;
  owner: string | null;
  unit: string | null;
  pool: string | null;
  grantable: string[];
  raw: Record<string, unknown>;
}

class Validator {
  readonly problems: Problem[] = [];
  constructor(private readonly source: SourceMap | undefined) {}

  add(code: ProblemCode, path: ProblemPath, message: string, fix: string): void {
    const p: Problem = { code, path: [...path], message, fix };
    if (this.source) {
      const loc = this.source.locate(path);
      if (loc) p.location = { file: this.source.file, line: loc.line, column: loc.column };
    }
    this.problems.push(p);
  }

  structure(path: ProblemPath, expected: string, got: unknown): void {
    this.add(
      'invalid_structure',
      path,
      `${formatPath(path)} should be ${expected}, but is ${describe(got)}.`,
      `Write ${expected} at ${formatPath(path)}.`,
    );
  }

  /** Reports fields that are not in `allowed`. */
  fields(obj: Record<string, unknown>, allowed: readonly string[], path: ProblemPath): void {
    for (const k of Object.keys(obj)) {
      if (!allowed.includes(k)) {
        this.add(
          'invalid_structure',
          [...path, k],
          `${formatPath(path)} has an unknown field ${JSON.stringify(k)}.${suggest(k, allowed)}`,
          `Remove it, or use one of ${list(allowed)}.`,
        );
      }
    }
  }

  optString(obj: Record<string, unknown>, field: string, path: ProblemPath): string | undefined {
    const v = obj[field];
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'string') {
      this.structure([...path, field], 'a string', v);
      return undefined;
    }
    return v;
  }

  optBoolean(obj: Record<string, unknown>, field: string, path: ProblemPath): boolean {
    const v = obj[field];
    if (v === undefined || v === null) return false;
    if (typeof v !== 'boolean') {
      this.structure([...path, field], 'true or false', v);
      return false;
    }
    return v;
  }

  tooLong(name: string, what: string, path: ProblemPath, derived?: string): boolean {
    const n = byteLength(name);
    if (n <= MAX_IDENTIFIER_BYTES) return false;
    this.add(
      'name_too_long',
      path,
      derived
        ? `${what} ${JSON.stringify(name)}, derived from ${derived}, is ${n} bytes; Postgres allows ${MAX_IDENTIFIER_BYTES} and would silently truncate it.`
        : `${what} ${JSON.stringify(name)} is ${n} bytes; Postgres allows ${MAX_IDENTIFIER_BYTES} and would silently truncate it.`,
      derived
        ? `Shorten ${derived} by at least ${n - MAX_IDENTIFIER_BYTES} bytes.`
        : `Shorten it by at least ${n - MAX_IDENTIFIER_BYTES} bytes (UTF-8).`,
    );
    return true;
  }

  /** Schema, table and column names: always quoted downstream, so anything but empty / NUL / too long. */
  identifier(name: string, what: string, path: ProblemPath): boolean {
    if (name.length === 0) {
      this.add('invalid_name', path, `${what} is empty.`, `Give the ${what} a name.`);
      return false;
    }
    if (name.includes('\0')) {
      this.add(
        'invalid_name',
        path,
        `${what} ${JSON.stringify(name)} contains a NUL character.`,
        'Remove the NUL character.',
      );
      return false;
    }
    return !this.tooLong(name, what, path);
  }

  /** Jobs, masks, table model names: letters, digits, `_`, `-`. */
  simpleName(name: string, what: string, path: ProblemPath): boolean {
    if (!this.identifier(name, what, path)) return false;
    if (!SIMPLE_NAME.test(name)) {
      this.add(
        'invalid_name',
        path,
        `${what} ${JSON.stringify(name)} may contain only letters, digits, "_" and "-".`,
        `Rename it, e.g. ${JSON.stringify(name.replace(/[^\p{L}\p{Nd}_-]+/gu, '_') || 'name')}.`,
      );
      return false;
    }
    return true;
  }

  role(name: string, what: string, path: ProblemPath, derived?: string): void {
    const fix = derived ? `Set ${formatPath(path)} explicitly.` : 'Choose another role name.';
    if (name.length === 0 || name.includes('\0') || !SIMPLE_NAME.test(name)) {
      this.add(
        'invalid_name',
        path,
        `${what} ${JSON.stringify(name)}${derived ? ` (derived from ${derived})` : ''} may contain only letters, digits, "_" and "-".`,
        fix,
      );
      return;
    }
    if (name.startsWith('pg_') || RESERVED_ROLES.has(name)) {
      this.add(
        'invalid_name',
        path,
        `${what} ${JSON.stringify(name)} is reserved by Postgres (names starting with pg_, public, none, current_user, session_user, current_role).`,
        fix,
      );
      return;
    }
    this.tooLong(name, what, path, derived);
  }
}

function parseLevel(
  v: Validator,
  raw: unknown,
  path: ProblemPath,
  masks: ReadonlySet<string>,
): Level | null {
  let maskName: string | null = null;
  if (raw === 'full') return { kind: 'full' };
  if (raw === 'hidden') return { kind: 'hidden' };
  if (typeof raw === 'string' && raw.startsWith('mask:')) maskName = raw.slice('mask:'.length);
  else if (isRecord(raw) && typeof raw.mask === 'string' && Object.keys(raw).length === 1)
    maskName = raw.mask;
  if (maskName === null) {
    v.structure(path, '"full", "hidden", "mask:<name>" or { mask: <name> }', raw);
    return null;
  }
  if (!masks.has(maskName)) {
    v.add(
      'unknown_mask',
      path,
      `Mask ${JSON.stringify(maskName)} is neither built in (${list(BUILTIN_MASKS)}) nor defined in masks.${suggest(maskName, masks)}`,
      'Use a built-in mask, or define it under masks with an sql expression over `value`.',
    );
    return null;
  }
  return { kind: 'mask', mask: maskName };
}

function scopeKey(s: Scope): string {
  switch (s.kind) {
    case 'filter':
      return `filter:${s.sql}`;
    case 'parent':
      return `parent:${JSON.stringify([s.column, s.table, s.via ? [...s.via].sort() : null])}`;
    case 'assigned':
      return `assigned:${JSON.stringify(s.match)}`;
    default:
      return s.kind;
  }
}

function ruleKey(r: Rule): string {
  return JSON.stringify([
    [...r.jobs].sort(),
    [...r.commands].sort(),
    r.scopes.map(scopeKey).sort(),
  ]);
}

export async function validateModel(
  input: unknown,
  options: ValidateOptions = {},
): Promise<ValidationResult> {
  // the SQL parser is needed by validation and, later, by fingerprints of the compiled objects
  await loadParser();
  const v = new Validator(options.source);
  const requireColumns = options.requireColumns ?? false;

  if (!isRecord(input)) {
    v.structure([], 'an object with schemas, jobs and tables', input);
    return { model: null, problems: v.problems };
  }
  v.fields(
    input,
    [
      'name',
      'schemas',
      'roles',
      'jobs',
      'approvals',
      'audit',
      'alerts',
      'attributes',
      'masks',
      'tables',
    ],
    [],
  );

  // ------------------------------------------------------------ name
  let name = 'model';
  const rawName = v.optString(input, 'name', []);
  if (rawName !== undefined) {
    if (rawName.length === 0 || rawName.includes('\0')) {
      v.add(
        'invalid_name',
        ['name'],
        'The model name is empty or contains NUL.',
        'Give the model a name, or leave it out.',
      );
    } else name = rawName;
  }

  // ------------------------------------------------------------ schemas
  let prot = '';
  let exposed = '';
  if (!isRecord(input.schemas)) {
    v.structure(['schemas'], 'an object { protected: <schema>, exposed: <schema> }', input.schemas);
  } else {
    v.fields(input.schemas, ['protected', 'exposed'], ['schemas']);
    for (const which of ['protected', 'exposed'] as const) {
      const s = input.schemas[which];
      const path = ['schemas', which];
      if (typeof s !== 'string') {
        v.structure(path, 'a schema name (string)', s);
        continue;
      }
      if (!v.identifier(s, `the ${which} schema`, path)) continue;
      if (s.startsWith('pg_') || s === 'information_schema') {
        v.add(
          'invalid_name',
          path,
          `Schema ${JSON.stringify(s)} is reserved by Postgres.`,
          'Choose another schema name.',
        );
        continue;
      }
      if (s === CATALOG_SCHEMA) {
        v.add(
          'same_schema',
          path,
          `Schema "${CATALOG_SCHEMA}" holds pgwarden's own catalog.`,
          'Choose another schema name.',
        );
        continue;
      }
      if (which === 'protected') prot = s;
      else exposed = s;
    }
    if (prot !== '' && prot === exposed) {
      v.add(
        'same_schema',
        ['schemas', 'exposed'],
        `The protected and exposed schemas are both ${JSON.stringify(prot)}; base tables must live where people have no privilege.`,
        `Use a separate exposed schema, e.g. ${JSON.stringify(`${prot}_api`)}.`,
      );
    }
  }

  // ------------------------------------------------------------ roles
  const roles = {
    authenticator: 'app',
    tableOwner: `${prot}_owner`,
    viewOwner: `${exposed}_owner`,
    people: `${prot}_people`,
  };
  const derivedFrom: Record<keyof typeof roles, string | null> = {
    authenticator: null,
    tableOwner: 'schemas.protected',
    viewOwner: 'schemas.exposed',
    people: 'schemas.protected',
  };
  const rawRoles = input.roles;
  if (rawRoles !== undefined && rawRoles !== null && !isRecord(rawRoles)) {
    v.structure(
      ['roles'],
      'an object { authenticator?, tableOwner?, viewOwner?, people? }',
      rawRoles,
    );
  }
  const roleInput = isRecord(rawRoles) ? rawRoles : {};
  if (isRecord(rawRoles)) v.fields(rawRoles, Object.keys(roles), ['roles']);
  for (const k of Object.keys(roles) as (keyof typeof roles)[]) {
    const given = v.optString(roleInput, k, ['roles']);
    if (given !== undefined) {
      roles[k] = given;
      v.role(given, `Role roles.${k}`, ['roles', k]);
    } else if (derivedFrom[k] === null || (k === 'viewOwner' ? exposed : prot) !== '') {
      v.role(roles[k], `The default role roles.${k}`, ['roles', k], derivedFrom[k] ?? undefined);
    }
  }
  if (prot !== '' && exposed !== '' && prot !== exposed) {
    const seen = new Map<string, string>([[CATALOG_OWNER, 'pgwarden itself (catalog owner)']]);
    for (const k of Object.keys(roles) as (keyof typeof roles)[]) {
      const r = roles[k];
      const other = seen.get(r);
      if (other) {
        v.add(
          'conflicting_rule',
          ['roles', k],
          `Role roles.${k} is ${JSON.stringify(r)}, already used by ${other}; each role has a separate duty (the view owner must not own the tables).`,
          `Give roles.${k} its own name.`,
        );
      } else seen.set(r, `roles.${k}`);
    }
  }

  // ------------------------------------------------------------ jobs
  const jobs: Job[] = [];
  const jobNames = new Set<string>();
  const addJob = (jobName: unknown, path: PathSegment[], spec: unknown) => {
    if (typeof jobName !== 'string') {
      v.structure(path, 'a job name (string)', jobName);
      return;
    }
    if (!v.simpleName(jobName, 'Job name', path)) return;
    if (jobNames.has(jobName)) {
      v.add(
        'conflicting_rule',
        path,
        `Job ${JSON.stringify(jobName)} is listed twice.`,
        'Remove the repeated entry.',
      );
      return;
    }
    let job: Job = { name: jobName, description: null, admin: false, privileged: false };
    if (spec !== undefined && spec !== null) {
      if (!isRecord(spec)) {
        v.structure(path, 'an object { description?, admin?, privileged? }', spec);
      } else {
        v.fields(spec, ['description', 'admin', 'privileged'], path);
        job = {
          name: jobName,
          description: v.optString(spec, 'description', path) ?? null,
          admin: v.optBoolean(spec, 'admin', path),
          privileged: v.optBoolean(spec, 'privileged', path),
        };
      }
    }
    jobNames.add(jobName);
    jobs.push(job);
  };
  if (Array.isArray(input.jobs)) {
    for (const [i, j] of input.jobs.entries()) addJob(j, ['jobs', i], undefined);
  } else if (isRecord(input.jobs)) {
    for (const [k, spec] of Object.entries(input.jobs)) addJob(k, ['jobs', k], spec);
  } else {
    v.structure(
      ['jobs'],
      'a list of job names, or an object of job name -> { description?, admin?, privileged? }',
      input.jobs,
    );
  }

  // ------------------------------------------------------------ masks
  const masks: Mask[] = BUILTIN_MASKS.map((m) => ({ name: m, sql: null, builtin: true }));
  const maskNames = new Set<string>(BUILTIN_MASKS);
  if (input.masks !== undefined && input.masks !== null) {
    if (!isRecord(input.masks)) {
      v.structure(['masks'], 'an object of mask name -> { sql, description? }', input.masks);
    } else {
      for (const [m, spec] of Object.entries(input.masks)) {
        const path = ['masks', m];
        if (!v.simpleName(m, 'Mask name', path)) continue;
        if ((BUILTIN_MASKS as readonly string[]).includes(m)) {
          v.add(
            'conflicting_rule',
            path,
            `Mask ${JSON.stringify(m)} is built in and cannot be redefined.`,
            'Give the custom mask another name.',
          );
          continue;
        }
        v.tooLong(`mask_custom_${m}`, 'The mask function name', path, `mask ${JSON.stringify(m)}`);
        maskNames.add(m);
        if (!isRecord(spec)) {
          v.structure(path, 'an object { sql: <expression over value>, description? }', spec);
          continue;
        }
        v.fields(spec, ['sql', 'description'], path);
        v.optString(spec, 'description', path);
        if (typeof spec.sql !== 'string') {
          v.structure([...path, 'sql'], 'an SQL expression over `value` (string)', spec.sql);
          continue;
        }
        const r = await checkExpression(spec.sql);
        if (!r.ok) {
          v.add(
            'invalid_filter',
            [...path, 'sql'],
            `The sql of mask ${JSON.stringify(m)} is not a valid expression: ${r.reason}.`,
            "Write one SQL expression over `value`, e.g. left(value, 2) || '***'.",
          );
          continue;
        }
        masks.push({ name: m, sql: r.normalized, builtin: false });
      }
    }
  }

  // ------------------------------------------------------------ attributes
  const attributes: { name: string; description: string | null }[] = [];
  const attributeNames = new Set<string>();
  if (input.attributes !== undefined && input.attributes !== null) {
    const addAttribute = (a: unknown, path: PathSegment[], spec: unknown) => {
      if (typeof a !== 'string') {
        v.structure(path, 'an attribute name (string)', a);
        return;
      }
      if (!v.simpleName(a, 'Attribute name', path)) return;
      if (attributeNames.has(a)) {
        v.add(
          'conflicting_rule',
          path,
          `Attribute ${JSON.stringify(a)} is listed twice.`,
          'Remove the repeated entry.',
        );
        return;
      }
      let description: string | null = null;
      if (spec !== undefined && spec !== null) {
        if (!isRecord(spec)) v.structure(path, 'an object { description? }', spec);
        else {
          v.fields(spec, ['description'], path);
          description = v.optString(spec, 'description', path) ?? null;
        }
      }
      attributeNames.add(a);
      attributes.push({ name: a, description });
    };
    if (Array.isArray(input.attributes))
      for (const [i, a] of input.attributes.entries())
        addAttribute(a, ['attributes', i], undefined);
    else if (isRecord(input.attributes))
      for (const [a, spec] of Object.entries(input.attributes))
        addAttribute(a, ['attributes', a], spec);
    else
      v.structure(
        ['attributes'],
        'a list of attribute names, or an object of attribute name -> { description? }',
        input.attributes,
      );
  }

  // ------------------------------------------------------------ tables, pass 1: names and columns
  const infos = new Map<string, TableInfo>();
  const rawTables = isRecord(input.tables) ? input.tables : null;
  if (!rawTables) v.structure(['tables'], 'an object of table name -> table', input.tables);
  const baseTables = new Map<string, string>();
  for (const [key, t] of Object.entries(rawTables ?? {})) {
    const path: PathSegment[] = ['tables', key];
    if (!isRecord(t)) {
      v.structure(path, 'a table object { rules, ... }', t);
      continue;
    }
    v.fields(
      t,
      [
        'name',
        'columns',
        'keyType',
        'key',
        'owner',
        'unit',
        'pool',
        'grantable',
        'rules',
        'cells',
        'edits',
        'changeApproval',
        'claims',
        'recycleBin',
        'sensitive',
        'encrypted',
        'reveal',
        'exports',
        'readCap',
      ],
      path,
    );
    v.simpleName(key, 'Table model name (also the view name)', path);
    const tableName = v.optString(t, 'name', path) ?? key;
    const namePath = t.name === undefined ? path : [...path, 'name'];
    if (v.identifier(tableName, 'Table name', namePath)) {
      const longest = `${tableName}_${COMMANDS.reduce((a, b) => (a.length >= b.length ? a : b))}`;
      v.tooLong(longest, 'The policy name', namePath, `table ${JSON.stringify(tableName)}`);
      const other = baseTables.get(tableName);
      if (other !== undefined) {
        v.add(
          'conflicting_rule',
          namePath,
          `Tables ${JSON.stringify(other)} and ${JSON.stringify(key)} both describe the protected table ${JSON.stringify(tableName)}; their policies would collide.`,
          'Describe each protected table once.',
        );
      } else baseTables.set(tableName, key);
    }

    // columns
    const columns: Column[] = [];
    if (t.columns !== undefined && t.columns !== null) {
      if (!Array.isArray(t.columns))
        v.structure([...path, 'columns'], 'a list of column names or { name, type }', t.columns);
      else {
        const seen = new Set<string>();
        t.columns.forEach((c: unknown, i: number) => {
          const cp = [...path, 'columns', i];
          let col: Column | null = null;
          if (typeof c === 'string') col = { name: c, type: null };
          else if (isRecord(c) && typeof c.name === 'string') {
            v.fields(c, ['name', 'type'], cp);
            const type = v.optString(c, 'type', cp);
            col = { name: c.name, type: type ?? null };
          } else v.structure(cp, 'a column name or { name, type? }', c);
          if (!col || !v.identifier(col.name, 'Column name', cp)) return;
          if (seen.has(col.name)) {
            v.add(
              'conflicting_rule',
              cp,
              `Column ${JSON.stringify(col.name)} is listed twice.`,
              'Remove the repeated column.',
            );
            return;
          }
          seen.add(col.name);
          columns.push(col);
        });
      }
    }
    const known = columns.length > 0;
    if (!known && requireColumns) {
      v.add(
        'no_columns',
        path,
        `The columns of table ${JSON.stringify(key)} are unknown.`,
        'List them under columns, define the table with drizzle, or run against a database that has it.',
      );
    }
    const colNames = new Set(columns.map((c) => c.name));
    const checkCol = (c: string, cp: ProblemPath, role: string): void => {
      if (!known || colNames.has(c)) return;
      v.add(
        'unknown_column',
        cp,
        `Table ${JSON.stringify(key)} has no column ${JSON.stringify(c)} (${role}).${suggest(c, colNames)}`,
        `Use one of its columns: ${list([...colNames])}.`,
      );
    };
    const colField = (field: string, role: string): string | null => {
      const c = v.optString(t, field, path);
      if (c === undefined) return null;
      if (v.identifier(c, `Column ${field}`, [...path, field])) checkCol(c, [...path, field], role);
      return c;
    };
    const keyColumn = colField('key', 'the primary key') ?? 'id';
    if (t.key === undefined) checkCol(keyColumn, path, 'the default primary key `id`; set key');
    const owner = colField('owner', 'the owner');
    const unit = colField('unit', 'the unit');
    const pool = colField('pool', 'the pool flag');
    const grantable: string[] = [];
    if (t.grantable !== undefined && t.grantable !== null) {
      if (!Array.isArray(t.grantable))
        v.structure([...path, 'grantable'], 'a list of column names', t.grantable);
      else
        t.grantable.forEach((g: unknown, i: number) => {
          const gp = [...path, 'grantable', i];
          if (typeof g !== 'string') v.structure(gp, 'a column name', g);
          else if (v.identifier(g, 'Column name', gp)) {
            checkCol(g, gp, 'grantable');
            if (!grantable.includes(g)) grantable.push(g);
          }
        });
    }
    infos.set(key, {
      key,
      path,
      table: tableName,
      columns,
      known,
      keyColumn,
      owner,
      unit,
      pool,
      grantable,
      raw: t,
    });
  }

  // ------------------------------------------------------------ tables, pass 2: rules and cells
  const needs = (
    info: TableInfo,
    rel: SimpleScope | RowRelation,
    path: ProblemPath,
    where: string,
  ): void => {
    let missing: string | null = null;
    let fix = '';
    if (rel === 'own' && !info.owner) {
      missing = 'an owner column';
      fix = 'Set owner to the column holding the owning person.';
    } else if ((rel === 'unit' || rel === 'subtree') && !info.owner && !info.unit) {
      missing = 'an owner or a unit column';
      fix = "Set owner (the owner's unit is used) or unit (a column holding a unit name).";
    } else if (rel === 'pool' && !info.pool) {
      missing = 'a pool column';
      fix = 'Set pool to a boolean column marking unowned rows.';
    } else if (rel === 'granted' && info.grantable.length === 0) {
      missing = 'grantable columns';
      fix = 'List under grantable the columns a temporary grant may filter on.';
    } else if (
      rel === 'assigned' &&
      !(Array.isArray(info.raw.rules) ? info.raw.rules : []).some(
        (r: unknown) =>
          isRecord(r) &&
          Array.isArray(r.scopes) &&
          r.scopes.some((sc: unknown) => isRecord(sc) && 'assigned' in sc),
      )
    ) {
      missing = 'an { assigned: ... } scope in its rules';
      fix = 'Add a rule with an assigned scope, e.g. { assigned: [region] }.';
    }
    if (missing) {
      v.add(
        'missing_column_for_scope',
        path,
        `${where} uses ${JSON.stringify(rel)}, which needs ${missing} on table ${JSON.stringify(info.key)}.`,
        fix,
      );
    }
  };
  const knownJob = (j: unknown, path: ProblemPath): j is string => {
    if (typeof j !== 'string') {
      v.structure(path, 'a job name (string)', j);
      return false;
    }
    if (j !== ANY_JOB && !jobNames.has(j)) {
      v.add(
        'unknown_job',
        path,
        `Job ${JSON.stringify(j)} is not defined in jobs.${suggest(j, jobNames)}`,
        `Add it to jobs, fix the spelling, or use "${ANY_JOB}" for any active person.`,
      );
      return false;
    }
    return true;
  };

  const tables: TableModel[] = [];
  /** parent edges without via (these recurse into the parent's own rules) */
  const edges: { from: string; to: string; path: PathSegment[] }[] = [];
  for (const info of infos.values()) {
    const { raw: t, path, key } = info;
    const colNames = new Set(info.columns.map((c) => c.name));
    const checkCol = (c: string, cp: ProblemPath, role: string): boolean => {
      if (!info.known || colNames.has(c)) return true;
      v.add(
        'unknown_column',
        cp,
        `Table ${JSON.stringify(key)} has no column ${JSON.stringify(c)} (${role}).${suggest(c, colNames)}`,
        `Use one of its columns: ${list([...colNames])}.`,
      );
      return false;
    };

    // rules
    const rules: Rule[] = [];
    if (!Array.isArray(t.rules)) {
      v.structure([...path, 'rules'], 'a list of rules { jobs, commands?, scopes }', t.rules);
    } else if (t.rules.length === 0) {
      v.add(
        'no_rules',
        [...path, 'rules'],
        `Table ${JSON.stringify(key)} has no rules, so nobody could read or change it.`,
        'Add at least one rule, or remove the table from the model.',
      );
    }
    const seenRules = new Map<string, number>();
    for (const [ri, r] of (Array.isArray(t.rules) ? t.rules : []).entries()) {
      const rp: PathSegment[] = [...path, 'rules', ri];
      if (!isRecord(r)) {
        v.structure(rp, 'a rule { jobs, commands?, scopes }', r);
        continue;
      }
      v.fields(r, ['jobs', 'commands', 'scopes'], rp);
      let ok = true;
      const ruleJobs: string[] = [];
      if (!Array.isArray(r.jobs) || r.jobs.length === 0) {
        v.structure([...rp, 'jobs'], 'a non-empty list of job names', r.jobs);
        ok = false;
      } else
        r.jobs.forEach((j: unknown, i: number) => {
          const jp = [...rp, 'jobs', i];
          if (!knownJob(j, jp)) ok = false;
          else if (ruleJobs.includes(j))
            v.add(
              'duplicate_rule',
              jp,
              `Job ${JSON.stringify(j)} is listed twice in this rule.`,
              'Remove the repeated job.',
            );
          else ruleJobs.push(j);
        });
      let commands: Command[] = [...COMMANDS];
      if (r.commands !== undefined && r.commands !== null) {
        if (!Array.isArray(r.commands) || r.commands.length === 0) {
          v.structure(
            [...rp, 'commands'],
            `a non-empty list of ${list(COMMANDS)} (or leave it out for all four)`,
            r.commands,
          );
          ok = false;
        } else {
          commands = [];
          r.commands.forEach((c: unknown, i: number) => {
            const cp = [...rp, 'commands', i];
            if (typeof c !== 'string' || !(COMMANDS as readonly string[]).includes(c)) {
              v.add(
                'invalid_structure',
                cp,
                `Command ${describe(c)} is not one of ${list(COMMANDS)}.${typeof c === 'string' ? suggest(c, COMMANDS) : ''}`,
                `Use ${list(COMMANDS)}.`,
              );
              ok = false;
            } else if (commands.includes(c as Command)) {
              v.add(
                'duplicate_rule',
                cp,
                `Command ${JSON.stringify(c)} is listed twice in this rule.`,
                'Remove the repeated command.',
              );
            } else commands.push(c as Command);
          });
        }
      }
      const scopes: Scope[] = [];
      const scopeKeys = new Set<string>();
      if (!Array.isArray(r.scopes) || r.scopes.length === 0) {
        v.structure([...rp, 'scopes'], 'a non-empty list of scopes', r.scopes);
        ok = false;
      }
      for (const [si, s] of (Array.isArray(r.scopes) ? r.scopes : []).entries()) {
        const sp: PathSegment[] = [...rp, 'scopes', si];
        let scope: Scope | null = null;
        if (typeof s === 'string') {
          if ((SIMPLE_SCOPES as readonly string[]).includes(s)) {
            needs(info, s as SimpleScope, sp, 'This rule');
            scope = { kind: s as SimpleScope };
          } else {
            v.add(
              'invalid_structure',
              sp,
              `Scope ${JSON.stringify(s)} is not one of ${list(SIMPLE_SCOPES)}, { filter } or { parent }.${suggest(s, SIMPLE_SCOPES)}`,
              'Use a known scope.',
            );
          }
        } else if (isRecord(s) && 'filter' in s) {
          v.fields(s, ['filter'], sp);
          if (typeof s.filter !== 'string')
            v.structure([...sp, 'filter'], 'an SQL expression (string)', s.filter);
          else {
            const res = await checkExpression(s.filter);
            if (res.ok) scope = { kind: 'filter', sql: res.normalized };
            else
              v.add(
                'invalid_filter',
                [...sp, 'filter'],
                `The filter of table ${JSON.stringify(key)} is not one valid SQL expression: ${res.reason}.`,
                "Write a single boolean expression over the table's columns, e.g. status = 'active'.",
              );
          }
        } else if (isRecord(s) && 'parent' in s) {
          v.fields(s, ['parent'], sp);
          const pp = [...sp, 'parent'];
          const p = s.parent;
          if (!isRecord(p)) v.structure(pp, 'an object { column, table, via? }', p);
          else {
            v.fields(p, ['column', 'table', 'via'], pp);
            let good = true;
            if (typeof p.column !== 'string') {
              v.structure([...pp, 'column'], 'the foreign-key column (string)', p.column);
              good = false;
            } else if (!checkCol(p.column, [...pp, 'column'], 'the parent foreign key'))
              good = false;
            const parent = typeof p.table === 'string' ? infos.get(p.table) : undefined;
            if (typeof p.table !== 'string') {
              v.structure([...pp, 'table'], 'the model name of the parent table (string)', p.table);
              good = false;
            } else if (!parent) {
              v.add(
                'unknown_table',
                [...pp, 'table'],
                `Parent table ${JSON.stringify(p.table)} is not in tables.${suggest(p.table, infos.keys())}`,
                'Use the model name of a table in this model.',
              );
              good = false;
            }
            let via: RowRelation[] | null = null;
            if (p.via !== undefined && p.via !== null) {
              if (!Array.isArray(p.via) || p.via.length === 0) {
                v.structure([...pp, 'via'], `a non-empty list of ${list(ROW_RELATIONS)}`, p.via);
                good = false;
              } else {
                via = [];
                for (const [vi, rel] of p.via.entries()) {
                  const vp = [...pp, 'via', vi];
                  if (
                    typeof rel !== 'string' ||
                    !(ROW_RELATIONS as readonly string[]).includes(rel)
                  ) {
                    v.add(
                      'invalid_structure',
                      vp,
                      `Relation ${describe(rel)} is not one of ${list(ROW_RELATIONS)}.`,
                      `Use ${list(ROW_RELATIONS)}.`,
                    );
                    good = false;
                  } else {
                    if (parent)
                      needs(
                        parent,
                        rel as RowRelation,
                        vp,
                        `This parent scope (on table ${JSON.stringify(parent.key)})`,
                      );
                    if (!via.includes(rel as RowRelation)) via.push(rel as RowRelation);
                  }
                }
              }
            }
            if (good && typeof p.column === 'string' && typeof p.table === 'string') {
              scope = { kind: 'parent', column: p.column, table: p.table, via };
              if (via === null) edges.push({ from: key, to: p.table, path: pp });
            }
          }
        } else if (isRecord(s) && 'assigned' in s) {
          v.fields(s, ['assigned'], sp);
          const ap = [...sp, 'assigned'];
          const a = s.assigned;
          const pairs: [string, unknown, PathSegment[]][] = Array.isArray(a)
            ? a.map((x: unknown, i: number) => [String(x), x, [...ap, i]])
            : isRecord(a)
              ? Object.entries(a).map(([k, c]) => [k, c, [...ap, k]])
              : [];
          if (pairs.length === 0)
            v.structure(
              ap,
              'a non-empty list of attributes, or an object of attribute -> column',
              a,
            );
          let good = pairs.length > 0;
          const match: { attribute: string; column: string }[] = [];
          for (const [attr, c, pp] of pairs) {
            if (typeof c !== 'string') {
              v.structure(pp, 'a column name (string)', c);
              good = false;
              continue;
            }
            if (!attributeNames.has(attr)) {
              v.add(
                'unknown_attribute',
                pp,
                `Attribute ${JSON.stringify(attr)} is not defined in attributes.${suggest(attr, attributeNames)}`,
                "Add it to the model's attributes, or fix the spelling.",
              );
              good = false;
            }
            if (!checkCol(c, pp, `the column of attribute ${attr}`)) good = false;
            if (match.some((m) => m.attribute === attr)) continue;
            match.push({ attribute: attr, column: c });
          }
          if (good)
            scope = {
              kind: 'assigned',
              match: match.sort((x, y) => cmp(x.attribute, y.attribute)),
            };
        } else {
          v.structure(
            sp,
            `a scope: one of ${list(SIMPLE_SCOPES)}, { filter: <sql> }, { parent: { column, table, via? } } or { assigned: [attribute, ...] }`,
            s,
          );
        }
        if (!scope) {
          ok = false;
          continue;
        }
        const sk = scopeKey(scope);
        if (scopeKeys.has(sk))
          v.add(
            'duplicate_rule',
            sp,
            'This scope is listed twice in the rule.',
            'Remove the repeated scope.',
          );
        else {
          scopeKeys.add(sk);
          scopes.push(scope);
        }
      }
      if (!ok) continue;
      const rule: Rule = { jobs: ruleJobs, commands, scopes };
      const rk = ruleKey(rule);
      const same = seenRules.get(rk);
      if (same !== undefined) {
        v.add(
          'duplicate_rule',
          rp,
          `This rule is the same as rules[${same}] of table ${JSON.stringify(key)} (same jobs, commands and scopes).`,
          'Remove one of them.',
        );
        continue;
      }
      seenRules.set(rk, ri);
      rules.push(rule);
    }

    /** A relation key of cells and edits: own, unit, ..., parent:<relation>, job:<name>. */
    const parseWhen = (rel: string, ep: ProblemPath, where: string): CellWhen | null => {
      if ((ROW_RELATIONS as readonly string[]).includes(rel)) {
        needs(info, rel as RowRelation, ep, where);
        return { kind: 'relation', relation: rel as RowRelation };
      }
      if (rel.startsWith('parent:')) {
        const prel = rel.slice(7);
        const parents = [
          ...new Map(
            rules
              .flatMap((r) => r.scopes)
              .filter((sc): sc is Extract<Scope, { kind: 'parent' }> => sc.kind === 'parent')
              .map((sc) => [`${sc.column}\u0000${sc.table}`, sc] as const),
          ).values(),
        ];
        const par =
          parents.length === 1 ? (parents[0] as Extract<Scope, { kind: 'parent' }>) : null;
        const parentInfo = par ? infos.get(par.table) : undefined;
        if (!(ROW_RELATIONS as readonly string[]).includes(prel)) {
          v.add(
            'unknown_relation',
            ep,
            `Key ${JSON.stringify(rel)} names no relation.${suggest(prel, ROW_RELATIONS)}`,
            `Use parent:<relation> with one of ${list(ROW_RELATIONS)}.`,
          );
          return null;
        }
        if (!par || !parentInfo) {
          v.add(
            'missing_column_for_scope',
            ep,
            `Key ${JSON.stringify(rel)} needs exactly one parent (column and table) among the parent scopes of table ${JSON.stringify(key)}; it has ${parents.length}.`,
            'Add a rule with a parent scope (e.g. { parent: { column: customer_id, table: customers } }), or use a relation of this table.',
          );
          return null;
        }
        needs(parentInfo, prel as RowRelation, ep, where);
        return {
          kind: 'parent',
          column: par.column,
          table: par.table,
          relation: prel as RowRelation,
        };
      }
      if (rel.startsWith('job:')) {
        const job = rel.slice(4);
        return knownJob(job, ep) ? { kind: 'job', job } : null;
      }
      v.add(
        'unknown_relation',
        ep,
        `Key ${JSON.stringify(rel)} is not a relation.${suggest(rel, [...ROW_RELATIONS, 'default'])}`,
        `Use one of ${list(ROW_RELATIONS)}, "parent:<relation>", "job:<job name>"${where.startsWith('Cell') ? ' or "default"' : ''}.`,
      );
      return null;
    };

    // cells
    const cells: Cell[] = [];
    if (t.cells !== undefined && t.cells !== null) {
      if (!isRecord(t.cells))
        v.structure([...path, 'cells'], 'an object of column -> { relation: level }', t.cells);
      else
        for (const [column, spec] of Object.entries(t.cells)) {
          const cp: PathSegment[] = [...path, 'cells', column];
          const colOk = checkCol(column, cp, 'a cell');
          if (!isRecord(spec) || Object.keys(spec).length === 0) {
            v.structure(
              cp,
              'a non-empty object of own/unit/subtree/shared/pool/granted/job:<name>/default -> level',
              spec,
            );
            continue;
          }
          const cases: CellCase[] = [];
          let otherwise: Level | null = null;
          let good = colOk;
          const entries = Object.entries(spec);
          for (const [ei, [rel, rawLevel]] of entries.entries()) {
            const ep = [...cp, rel];
            const level = parseLevel(v, rawLevel, ep, maskNames);
            if (!level) good = false;
            if (level?.kind === 'mask' && level.mask !== 'null') {
              const type = info.columns.find((c) => c.name === column)?.type ?? null;
              if (type !== null && !isTextType(type)) {
                v.add(
                  'mask_on_non_text',
                  ep,
                  `Mask ${JSON.stringify(level.mask)} works on text, but column ${JSON.stringify(column)} is ${type}.`,
                  'Use "hidden" (or mask:null) for this column, or mask a text column.',
                );
                good = false;
              }
            }
            if (rel === 'default') {
              if (ei !== entries.length - 1) {
                v.add(
                  'conflicting_rule',
                  ep,
                  `In cell ${JSON.stringify(column)}, "default" is not the last key, so the keys after it would never apply (first match wins).`,
                  'Move "default" to the end.',
                );
                good = false;
              }
              otherwise = level;
              continue;
            }
            const when = parseWhen(rel, ep, `Cell ${JSON.stringify(column)}`);
            if (!when) good = false;
            else if (level) cases.push({ when, level });
          }
          const finalOtherwise: Level = otherwise ?? { kind: 'hidden' };
          const levels = [...cases.map((c) => c.level), finalOtherwise];
          const special =
            column === info.keyColumn
              ? 'the primary key'
              : column === info.owner
                ? 'the owner column'
                : null;
          if (special && levels.some((l) => l.kind !== 'full')) {
            v.add(
              'conflicting_rule',
              cp,
              `Column ${JSON.stringify(column)} is ${special} of table ${JSON.stringify(key)} and cannot be hidden or masked (shares, reveals, grants and defaults rely on it).`,
              'Remove this cell.',
            );
            good = false;
          }
          if (good) cells.push({ column, cases, otherwise: finalOtherwise });
        }
    }

    // edits: who may change which column
    let edits: EditRule[] | null = null;
    if (t.edits !== undefined && t.edits !== null) {
      if (!isRecord(t.edits))
        v.structure([...path, 'edits'], 'an object of column -> list of relations', t.edits);
      else {
        edits = [];
        for (const [column, who] of Object.entries(t.edits)) {
          const ep: PathSegment[] = [...path, 'edits', column];
          const colOk = checkCol(column, ep, 'an edit right');
          if (!Array.isArray(who) || who.some((w) => typeof w !== 'string')) {
            v.structure(ep, 'a list of relations (own, subtree, parent:own, job:<name>, ...)', who);
            continue;
          }
          if (column === info.keyColumn) {
            v.add(
              'conflicting_rule',
              ep,
              `Column ${JSON.stringify(column)} is the primary key of table ${JSON.stringify(key)}; it cannot be edited (shares and children refer to it).`,
              'Remove it from edits.',
            );
            continue;
          }
          const whens: CellWhen[] = [];
          let good = colOk;
          for (const [wi, w] of (who as string[]).entries()) {
            const when = parseWhen(w, [...ep, wi], `Edit right for ${JSON.stringify(column)}`);
            if (!when) good = false;
            else whens.push(when);
          }
          if (good) edits.push({ column, who: whens });
        }
      }
      if (!rules.some((r) => r.commands.includes('update') || r.commands.includes('insert'))) {
        v.add(
          'conflicting_rule',
          [...path, 'edits'],
          `Table ${JSON.stringify(key)} has edit rights but no insert or update rule, so nobody could use them.`,
          'Add a rule with commands [insert, update], or remove edits.',
        );
      }
    }

    // claims: the public pool
    let claims: { jobs: string[]; perDay: number } | null = null;
    if (t.claims !== undefined && t.claims !== null) {
      const cp: PathSegment[] = [...path, 'claims'];
      if (!isRecord(t.claims)) v.structure(cp, 'an object { jobs, perDay }', t.claims);
      else {
        v.fields(t.claims, ['jobs', 'perDay'], cp);
        const jobsOk = Array.isArray(t.claims.jobs) && t.claims.jobs.length > 0;
        if (!jobsOk) v.structure([...cp, 'jobs'], 'a non-empty list of job names', t.claims.jobs);
        const perDay = t.claims.perDay;
        if (typeof perDay !== 'number' || !Number.isInteger(perDay) || perDay < 1) {
          v.structure(
            [...cp, 'perDay'],
            'a whole number of claims per person per day (at least 1)',
            perDay,
          );
        }
        if (!info.owner || !info.pool) {
          v.add(
            'missing_column_for_scope',
            cp,
            `Claims on table ${JSON.stringify(key)} need an owner column and a pool column.`,
            'Set owner and pool on the table.',
          );
        }
        const jobs = jobsOk
          ? (t.claims.jobs as unknown[]).filter((j, ji): j is string =>
              knownJob(j, [...cp, 'jobs', ji]),
            )
          : [];
        if (
          jobsOk &&
          jobs.length === (t.claims.jobs as unknown[]).length &&
          typeof perDay === 'number'
        ) {
          claims = { jobs: [...jobs].sort(cmp), perDay };
        }
      }
    }

    // recycle bin
    let recycleBin: { retentionDays: number } | null = null;
    if (t.recycleBin !== undefined && t.recycleBin !== null) {
      const bp: PathSegment[] = [...path, 'recycleBin'];
      if (!isRecord(t.recycleBin)) v.structure(bp, 'an object { retentionDays }', t.recycleBin);
      else {
        v.fields(t.recycleBin, ['retentionDays'], bp);
        const d = t.recycleBin.retentionDays;
        if (typeof d !== 'number' || !Number.isInteger(d) || d < 1) {
          v.structure([...bp, 'retentionDays'], 'a whole number of days (at least 1)', d);
        } else recycleBin = { retentionDays: d };
        if (!rules.some((r) => r.commands.includes('delete'))) {
          v.add(
            'conflicting_rule',
            bp,
            `Table ${JSON.stringify(key)} has a recycle bin but no delete rule, so nothing could go into it.`,
            'Add a rule with commands [delete] for the jobs that may delete, or remove recycleBin.',
          );
        }
      }
    }

    // sensitive columns (audit stores keyed hashes)
    let sensitive: string[] = cells.map((c) => c.column);
    if (t.sensitive !== undefined && t.sensitive !== null) {
      const sp: PathSegment[] = [...path, 'sensitive'];
      if (!Array.isArray(t.sensitive) || t.sensitive.some((c) => typeof c !== 'string')) {
        v.structure(sp, 'a list of column names', t.sensitive);
      } else {
        sensitive = (t.sensitive as string[]).filter((c, i) =>
          checkCol(c, [...sp, i], 'a sensitive column'),
        );
      }
    }
    // encrypted columns: stored as ciphertext, so nothing may compare them in SQL
    const encrypted: EncryptedColumn[] = [];
    if (t.encrypted !== undefined && t.encrypted !== null) {
      const ep: PathSegment[] = [...path, 'encrypted'];
      const entries: [string, unknown, PathSegment[]][] = [];
      if (Array.isArray(t.encrypted)) {
        t.encrypted.forEach((c: unknown, i: number) => {
          if (typeof c !== 'string') v.structure([...ep, i], 'a column name', c);
          else entries.push([c, true, [...ep, i]]);
        });
      } else if (isRecord(t.encrypted)) {
        for (const [c, spec] of Object.entries(t.encrypted)) entries.push([c, spec, [...ep, c]]);
      } else {
        v.structure(
          ep,
          "a list of column names, or an object { <column>: { search: 'equality' } }",
          t.encrypted,
        );
      }
      // columns the row rules compare in SQL (policies, key helpers, grants, assignments)
      const compared = new Map<string, string>();
      const mark = (c: string | null, why: string) => {
        if (c && !compared.has(c)) compared.set(c, why);
      };
      mark(info.keyColumn, 'the primary key (shares and child rows refer to it)');
      mark(info.owner, 'the owner column (own, unit and subtree compare it)');
      mark(info.unit, 'the unit column (unit and subtree compare it)');
      mark(info.pool, 'the pool flag');
      for (const g of info.grantable) mark(g, 'grantable (temporary grants filter on it)');
      for (const r of rules)
        for (const sc of r.scopes) {
          if (sc.kind === 'parent') mark(sc.column, 'the foreign key of a parent scope');
          if (sc.kind === 'assigned')
            for (const m of sc.match)
              mark(m.column, `compared by the assigned scope (${m.attribute})`);
        }
      const gated =
        isRecord(t.changeApproval) && isRecord(t.changeApproval.columns)
          ? new Set(Object.keys(t.changeApproval.columns))
          : new Set<string>();
      const seenEnc = new Set<string>();
      for (const [column, spec, cp] of entries) {
        if (
          !v.identifier(column, 'Column name', cp) ||
          !checkCol(column, cp, 'an encrypted column')
        )
          continue;
        let deterministic = false;
        if (spec === true) deterministic = false;
        else if (isRecord(spec)) {
          v.fields(spec, ['search'], cp);
          if (spec.search === 'equality') deterministic = true;
          else if (spec.search !== undefined && spec.search !== 'none') {
            v.structure([...cp, 'search'], "'equality' (or 'none')", spec.search);
            continue;
          }
        } else {
          v.structure(cp, "true or { search: 'equality' }", spec);
          continue;
        }
        const why = compared.get(column);
        if (why) {
          v.add(
            'conflicting_rule',
            cp,
            `Column ${JSON.stringify(column)} of table ${JSON.stringify(key)} cannot be encrypted: it is ${why}, and the database can only compare its stored ciphertext.`,
            'Encrypt another column, or stop using this one in the row rules.',
          );
          continue;
        }
        if (gated.has(column)) {
          v.add(
            'conflicting_rule',
            cp,
            `Column ${JSON.stringify(column)} of table ${JSON.stringify(key)} is encrypted and in changeApproval; a pending change would keep its new value in clear.`,
            'Remove it from changeApproval (or do not encrypt it).',
          );
          continue;
        }
        const type = info.columns.find((c) => c.name === column)?.type ?? null;
        if (type !== null && (!isTextType(type) || /\(\s*\d+\s*\)/.test(type))) {
          v.add(
            'invalid_structure',
            cp,
            `Column ${JSON.stringify(column)} of table ${JSON.stringify(key)} is ${type}; only text columns without a length limit can hold encrypted values (they are longer than the plaintext).`,
            'Encrypt a text (or varchar) column, or change the column type to text.',
          );
          continue;
        }
        if (seenEnc.has(column)) continue;
        seenEnc.add(column);
        encrypted.push({ column, deterministic });
      }
      encrypted.sort((a, b) => cmp(a.column, b.column));
    }
    // encrypted columns are always sensitive: the audit log hashes their (ciphertext) values
    sensitive = [...new Set([...sensitive, ...encrypted.map((e) => e.column)])].sort(cmp);

    // changeApproval: edits that wait for a second person
    let changeApproval: TableModel['changeApproval'] = null;
    if (t.changeApproval !== undefined && t.changeApproval !== null) {
      const ap: PathSegment[] = [...path, 'changeApproval'];
      const ca = t.changeApproval;
      if (!isRecord(ca) || !isRecord(ca.columns)) {
        v.structure(
          ap,
          'an object { expiresAfterHours?, columns: { <column>: { requesters, approvers, crossUnit? } } }',
          ca,
        );
      } else {
        v.fields(ca, ['expiresAfterHours', 'columns'], ap);
        let hours = 72;
        if (ca.expiresAfterHours !== undefined) {
          const h = ca.expiresAfterHours;
          if (typeof h !== 'number' || !Number.isInteger(h) || h <= 0)
            v.structure([...ap, 'expiresAfterHours'], 'a positive whole number of hours', h);
          else hours = h;
        }
        if (!edits) {
          v.add(
            'conflicting_rule',
            ap,
            `Table ${JSON.stringify(key)} has changeApproval but no edits; approval-gated changes go through the edit triggers.`,
            'Add edits (who may change which column directly), or remove changeApproval.',
          );
        }
        const columns: GatedEdit[] = [];
        for (const [column, spec] of Object.entries(ca.columns)) {
          const cp: PathSegment[] = [...ap, 'columns', column];
          let good = checkCol(column, cp, 'an approval-gated column');
          if (!isRecord(spec)) {
            v.structure(cp, 'an object { requesters, approvers, crossUnit? }', spec);
            continue;
          }
          v.fields(spec, ['requesters', 'approvers', 'crossUnit'], cp);
          if (column === info.keyColumn || sensitive.includes(column)) {
            v.add(
              'conflicting_rule',
              cp,
              `Column ${JSON.stringify(column)} of table ${JSON.stringify(key)} is ${column === info.keyColumn ? 'the primary key' : 'sensitive'}; a pending change would keep its new value in clear.`,
              'Gate another column, or remove it from changeApproval.',
            );
            good = false;
          }
          const whens = (field: 'requesters' | 'approvers'): CellWhen[] => {
            const raw = spec[field];
            if (!Array.isArray(raw) || raw.length === 0 || raw.some((w) => typeof w !== 'string')) {
              v.structure(
                [...cp, field],
                'a non-empty list of relations (own, subtree, parent:own, job:<name>, ...)',
                raw,
              );
              good = false;
              return [];
            }
            const out: CellWhen[] = [];
            for (const [wi, w] of (raw as string[]).entries()) {
              const when = parseWhen(
                w,
                [...cp, field, wi],
                `changeApproval ${field} of ${JSON.stringify(column)}`,
              );
              if (!when) good = false;
              else out.push(when);
            }
            return out;
          };
          const requesters = whens('requesters');
          const approvers = whens('approvers');
          const crossUnit = v.optBoolean(spec, 'crossUnit', cp);
          if (crossUnit && column !== info.owner && column !== info.unit) {
            v.add(
              'conflicting_rule',
              [...cp, 'crossUnit'],
              `crossUnit compares units, but ${JSON.stringify(column)} is neither the owner nor the unit column of table ${JSON.stringify(key)}.`,
              'Use crossUnit on the owner or unit column, or remove it.',
            );
            good = false;
          }
          if (good) columns.push({ column, requesters, approvers, crossUnit });
        }
        if (columns.length > 0)
          changeApproval = {
            expiresAfterHours: hours,
            columns: columns.sort((a, b) => cmp(a.column, b.column)),
          };
      }
    }

    // reveal: one cell unmasked on purpose
    let reveal: { columns: EditRule[]; perDay: number } | null = null;
    if (t.reveal !== undefined && t.reveal !== null) {
      const rp: PathSegment[] = [...path, 'reveal'];
      if (!isRecord(t.reveal) || !isRecord(t.reveal.columns)) {
        v.structure(rp, 'an object { columns: { column: [relations] }, perDay }', t.reveal);
      } else {
        v.fields(t.reveal, ['columns', 'perDay'], rp);
        const perDay = t.reveal.perDay;
        let good = typeof perDay === 'number' && Number.isInteger(perDay) && perDay >= 1;
        if (!good)
          v.structure(
            [...rp, 'perDay'],
            'a whole number of reveals per person per day (at least 1)',
            perDay,
          );
        const cols: EditRule[] = [];
        for (const [column, who] of Object.entries(t.reveal.columns)) {
          const cp: PathSegment[] = [...rp, 'columns', column];
          if (!checkCol(column, cp, 'a revealable column')) good = false;
          if (!Array.isArray(who) || who.length === 0 || who.some((w) => typeof w !== 'string')) {
            v.structure(cp, 'a non-empty list of relations (own, subtree, parent:own, ...)', who);
            good = false;
            continue;
          }
          const whens: CellWhen[] = [];
          for (const [wi, w] of (who as string[]).entries()) {
            const when = parseWhen(w, [...cp, wi], `Reveal of ${JSON.stringify(column)}`);
            if (!when) good = false;
            else if (when.kind === 'job' || when.kind === 'parent') {
              v.add(
                'unknown_relation',
                [...cp, wi],
                `Reveal rights are by this row's own relation to the person (own, subtree, shared, ...), not ${JSON.stringify(w)}.`,
                'Use a relation of the row, e.g. own or subtree.',
              );
              good = false;
            } else whens.push(when);
          }
          cols.push({ column, who: whens });
        }
        if (good)
          reveal = {
            columns: cols.sort((a, b) => cmp(a.column, b.column)),
            perDay: perDay as number,
          };
      }
    }

    // exports per job
    const exportRules: ExportRule[] = [];
    if (t.exports !== undefined && t.exports !== null) {
      const xp: PathSegment[] = [...path, 'exports'];
      if (!isRecord(t.exports))
        v.structure(xp, 'an object of job -> { columns, perDay, approval? }', t.exports);
      else
        for (const [job, spec] of Object.entries(t.exports)) {
          const jp: PathSegment[] = [...xp, job];
          if (job === ANY_JOB) {
            v.add(
              'unknown_job',
              jp,
              'Exports are granted to named jobs, not "*".',
              'Name the jobs that may export.',
            );
            continue;
          }
          if (!knownJob(job, jp)) continue;
          if (!isRecord(spec)) {
            v.structure(jp, 'an object { columns, perDay, approval? }', spec);
            continue;
          }
          v.fields(spec, ['columns', 'perDay', 'approval'], jp);
          let good = true;
          const cols = Array.isArray(spec.columns) ? (spec.columns as unknown[]) : null;
          if (!cols || cols.length === 0 || cols.some((c) => typeof c !== 'string')) {
            v.structure([...jp, 'columns'], 'a non-empty list of column names', spec.columns);
            good = false;
          } else {
            for (const [ci, c] of (cols as string[]).entries()) {
              if (!checkCol(c, [...jp, 'columns', ci], 'an exportable column')) good = false;
            }
          }
          const perDay = spec.perDay;
          if (typeof perDay !== 'number' || !Number.isInteger(perDay) || perDay < 1) {
            v.structure(
              [...jp, 'perDay'],
              'a whole number of rows per person per day (at least 1)',
              perDay,
            );
            good = false;
          }
          let approvalColumns: string[] = [];
          let approvers: 1 | 2 = 1;
          if (spec.approval !== undefined && spec.approval !== null) {
            const ap: PathSegment[] = [...jp, 'approval'];
            if (!isRecord(spec.approval) || !Array.isArray(spec.approval.columns)) {
              v.structure(ap, 'an object { columns: [...], approvers?: 1 | 2 }', spec.approval);
              good = false;
            } else {
              v.fields(spec.approval, ['columns', 'approvers'], ap);
              approvalColumns = (spec.approval.columns as unknown[]).filter(
                (c): c is string => typeof c === 'string',
              );
              for (const [ci, c] of approvalColumns.entries()) {
                if (cols && !(cols as string[]).includes(c)) {
                  v.add(
                    'conflicting_rule',
                    [...ap, 'columns', ci],
                    `Column ${JSON.stringify(c)} needs approval for export but is not in the exportable columns of ${JSON.stringify(job)}.`,
                    'Add it to columns, or remove it from approval.columns.',
                  );
                  good = false;
                }
              }
              const n = spec.approval.approvers;
              if (n !== undefined && n !== 1 && n !== 2) {
                v.structure([...ap, 'approvers'], '1 or 2', n);
                good = false;
              } else if (n === 2) approvers = 2;
            }
          }
          if (good) {
            exportRules.push({
              job,
              columns: [...(cols as string[])],
              perDay: perDay as number,
              approvalColumns: [...approvalColumns].sort(cmp),
              approvers,
            });
          }
        }
    }
    exportRules.sort((a, b) => cmp(a.job, b.job));

    // read caps per job
    const readCaps: { job: string; rows: number }[] = [];
    if (t.readCap !== undefined && t.readCap !== null) {
      const cp: PathSegment[] = [...path, 'readCap'];
      if (!isRecord(t.readCap))
        v.structure(cp, 'an object of job -> rows per statement', t.readCap);
      else
        for (const [job, rows] of Object.entries(t.readCap)) {
          if (job === ANY_JOB) {
            v.add(
              'unknown_job',
              [...cp, job],
              'Read caps are per named job, not "*".',
              'Name the jobs whose statements are capped.',
            );
            continue;
          }
          if (!knownJob(job, [...cp, job])) continue;
          if (typeof rows !== 'number' || !Number.isInteger(rows) || rows < 1) {
            v.structure([...cp, job], 'a whole number of rows (at least 1)', rows);
          } else readCaps.push({ job, rows });
        }
      readCaps.sort((a, b) => cmp(a.job, b.job));
    }

    let keyType = 'bigint';
    const keyCol = info.columns.find((c) => c.name === info.keyColumn);
    if (typeof t.keyType === 'string') keyType = normalizeKeyType(t.keyType);
    else if (t.keyType !== undefined && t.keyType !== null)
      v.structure([...path, 'keyType'], 'an SQL type name (string)', t.keyType);
    else if (keyCol?.type) keyType = normalizeKeyType(keyCol.type);
    if (!TYPE_NAME.test(keyType)) {
      v.add(
        'invalid_structure',
        t.keyType !== undefined ? [...path, 'keyType'] : path,
        `Key type ${JSON.stringify(keyType)} of table ${JSON.stringify(key)} is not a plain SQL type name.`,
        'Set keyType to a built-in type such as bigint, integer, uuid or text.',
      );
    }

    tables.push({
      name: key,
      table: info.table,
      columns: info.columns,
      key: info.keyColumn,
      keyType,
      owner: info.owner,
      unit: info.unit,
      pool: info.pool,
      grantable: info.grantable,
      rules,
      cells,
      edits,
      changeApproval,
      claims,
      recycleBin,
      sensitive,
      encrypted,
      reveal,
      exports: exportRules,
      readCaps,
    });
  }

  // ------------------------------------------------------------ parent cycles
  {
    const out = new Map<string, { to: string; path: PathSegment[] }[]>();
    for (const e of edges) out.set(e.from, [...(out.get(e.from) ?? []), e]);
    const state = new Map<string, 'active' | 'done'>();
    const stack: string[] = [];
    const reported = new Set<string>();
    const visit = (node: string) => {
      state.set(node, 'active');
      stack.push(node);
      for (const e of out.get(node) ?? []) {
        if (state.get(e.to) === 'active') {
          const cycle = [...stack.slice(stack.indexOf(e.to)), e.to];
          const id = [...new Set(cycle)].sort(cmp).join(',');
          if (!reported.has(id)) {
            reported.add(id);
            v.add(
              'parent_cycle',
              e.path,
              `Parent scopes form a cycle: ${cycle.join(' -> ')}; each table's visibility would depend on itself.`,
              "Break the cycle, or restrict one parent scope with via (e.g. via: [own, unit]), which does not follow the parent's own rules.",
            );
          }
        } else if (state.get(e.to) === undefined) visit(e.to);
      }
      stack.pop();
      state.set(node, 'done');
    };
    for (const k of [...out.keys()].sort(cmp)) if (!state.has(k)) visit(k);
  }

  // ------------------------------------------------------------ approvals
  const approvers: string[] = [];
  if (input.approvals !== undefined && input.approvals !== null) {
    const ap: PathSegment[] = ['approvals'];
    if (!isRecord(input.approvals))
      v.structure(ap, 'an object { approvers: [job, ...] }', input.approvals);
    else {
      v.fields(input.approvals, ['approvers'], ap);
      const given = input.approvals.approvers;
      if (!Array.isArray(given) || given.length === 0)
        v.structure([...ap, 'approvers'], 'a non-empty list of job names', given);
      else
        for (const [i, j] of given.entries()) {
          if (typeof j !== 'string' || j === ANY_JOB || !jobNames.has(j)) {
            v.add(
              'unknown_job',
              [...ap, 'approvers', i],
              `Approver job ${JSON.stringify(j)} is not defined in jobs.${typeof j === 'string' ? suggest(j, jobNames) : ''}`,
              'Name a job defined under jobs.',
            );
          } else approvers.push(j);
        }
    }
  }
  if (approvers.length === 0 && jobs.some((j) => j.privileged)) {
    v.add(
      'conflicting_rule',
      ['jobs'],
      `Jobs ${list(jobs.filter((j) => j.privileged).map((j) => j.name))} are privileged, but no approvals.approvers are set, so nobody could ever grant them.`,
      'Add approvals: { approvers: [<job>] }, or mark the jobs not privileged.',
    );
  }

  // ------------------------------------------------------------ audit readers
  const auditReaders: string[] = [];
  if (input.audit !== undefined && input.audit !== null) {
    const ap: PathSegment[] = ['audit'];
    if (!isRecord(input.audit)) v.structure(ap, 'an object { readers: [job, ...] }', input.audit);
    else {
      v.fields(input.audit, ['readers'], ap);
      const given = input.audit.readers;
      if (!Array.isArray(given) || given.length === 0)
        v.structure([...ap, 'readers'], 'a non-empty list of job names', given);
      else
        for (const [i, j] of given.entries()) {
          if (typeof j !== 'string' || j === ANY_JOB || !jobNames.has(j)) {
            v.add(
              'unknown_job',
              [...ap, 'readers', i],
              `Audit reader job ${JSON.stringify(j)} is not defined in jobs.${typeof j === 'string' ? suggest(j, jobNames) : ''}`,
              'Name a job defined under jobs.',
            );
          } else auditReaders.push(j);
        }
    }
  }

  // ------------------------------------------------------------ alerts
  let exportRowsAbove = 1000;
  if (input.alerts !== undefined && input.alerts !== null) {
    if (!isRecord(input.alerts))
      v.structure(['alerts'], 'an object { exportRowsAbove }', input.alerts);
    else {
      v.fields(input.alerts, ['exportRowsAbove'], ['alerts']);
      const n = input.alerts.exportRowsAbove;
      if (n !== undefined) {
        if (typeof n !== 'number' || !Number.isInteger(n) || n < 0) {
          v.structure(['alerts', 'exportRowsAbove'], 'a whole number of rows', n);
        } else exportRowsAbove = n;
      }
    }
  }
  if (
    approvers.length === 0 &&
    tables.some((tb) => tb.exports.some((e) => e.approvalColumns.length > 0))
  ) {
    v.add(
      'conflicting_rule',
      ['approvals'],
      'Some exports need an approved request, but no approvals.approvers are set, so nobody could approve one.',
      'Add approvals: { approvers: [<job>] }.',
    );
  }

  if (v.problems.length > 0) return { model: null, problems: v.problems };
  const model: Model = {
    name,
    schemas: { protected: prot, exposed },
    roles,
    jobs: jobs.sort((a, b) => cmp(a.name, b.name)),
    approvers: [...new Set(approvers)].sort(cmp),
    auditReaders: [...new Set(auditReaders)].sort(cmp),
    alerts: { exportRowsAbove },
    attributes: attributes.sort((a, b) => cmp(a.name, b.name)),
    masks: masks.sort((a, b) => cmp(a.name, b.name)),
    tables: tables.sort((a, b) => cmp(a.name, b.name)),
  };
  return { model: deepFreeze(model), problems: [] };
}

/**
 * Returns a copy of `input` whose tables (by model name) get the given columns, e.g. read from the
 * live database by plan/apply; validate the result again. Tables not in `columns` are unchanged.
 */
export function withColumns(
  input: ModelInput,
  columns: Readonly<Record<string, readonly { name: string; type: string | null }[]>>,
): ModelInput {
  const tables: Record<string, ModelInput['tables'][string]> = { ...input.tables };
  for (const [key, cols] of Object.entries(columns)) {
    const t = tables[key];
    if (!t) continue;
    tables[key] = {
      ...t,
      columns: cols.map((c) =>
        c.type === null ? { name: c.name } : { name: c.name, type: c.type },
      ),
    };
  }
  return { ...input, tables };
}
