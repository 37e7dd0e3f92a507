/**
 * Problems: what validation returns instead of throwing. Each has a stable code, a path into the
 * model input, a message that names the offending thing and a fix. Only cli/ turns them into exit
 * codes and colours.
 */

/** Every stable problem code, with a one-line meaning. The keys are the codes. */
export const PROBLEM_CODES = {
  file_not_found: 'the model file does not exist or cannot be read',
  invalid_syntax: 'the file is not valid YAML / JSON, or the TS/JS module does not compile',
  load_failed: 'the TS/JS module threw while loading, or exports no model (default or `model`)',
  invalid_structure: 'a field has the wrong shape or type, is missing, or is not a known field',
  duplicate_key: 'a YAML/JSON mapping repeats a key (outside cells and jobs, see conflicting_rule)',
  unknown_table: 'a reference to a table that is not in `tables`',
  unknown_column: 'a reference to a column that the table does not have',
  unknown_job: 'a reference to a job that is not in `jobs`',
  unknown_mask: 'a reference to a mask that is neither built in nor in `masks`',
  unknown_attribute: 'an `assigned` scope names an attribute that is not in `attributes`',
  unknown_relation:
    'a cell key that is not own/unit/subtree/shared/pool/granted, job:<name> or default',
  duplicate_rule:
    'two rules of a table are identical after normalization, or a rule repeats a job/command/scope',
  conflicting_rule:
    'two parts of the model contradict each other (repeated cell key or job, hidden key/owner, two models of one table, a role used twice, default not last)',
  name_too_long:
    'a name, or a name derived from it, is over 63 bytes (UTF-8) and Postgres would truncate it',
  invalid_name:
    'a name is empty, contains NUL, uses reserved words/prefixes, or has characters not allowed for its kind',
  invalid_filter:
    'an SQL expression (filter scope or custom mask) is not exactly one well-formed expression',
  no_rules: 'a protected table has no rules, so nobody could use it',
  missing_column_for_scope:
    'a scope or cell relation needs a column the table does not declare (owner, unit, pool, grantable)',
  parent_cycle:
    'parent scopes (without `via`) form a cycle, so visibility would be defined by itself',
  mask_on_non_text: 'a mask is applied to a column whose known type is not text-like',
  same_schema: 'the protected and exposed schemas are the same, or one of them is `pgwarden`',
  no_columns: "a table's columns are unknown although they are required (requireColumns)",
} as const satisfies Record<string, string>;

export type ProblemCode = keyof typeof PROBLEM_CODES;

export type PathSegment = string | number;
export type ProblemPath = readonly PathSegment[];

export interface SourceLocation {
  file: string;
  /** 1-based */
  line: number;
  /** 1-based */
  column: number;
}

export interface Problem {
  code: ProblemCode;
  /** path into the model input, e.g. ['tables', 'customers', 'rules', 2, 'scopes', 0, 'filter'] */
  path: PathSegment[];
  message: string;
  fix: string;
  location?: SourceLocation;
}

/**
 * Maps a path of the model input to where it was written. Built by load.ts for YAML and JSON
 * files; `locate` returns the nearest existing ancestor when the exact node is missing.
 */
export interface SourceMap {
  file: string;
  locate(path: ProblemPath): { line: number; column: number } | null;
}

const PLAIN_KEY = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** `tables.customers.rules[2].scopes[0].filter`; keys that are not plain words are quoted: `cells["job:sales"]`. */
export function formatPath(path: ProblemPath): string {
  let out = '';
  for (const seg of path) {
    if (typeof seg === 'number') out += `[${seg}]`;
    else if (PLAIN_KEY.test(seg)) out += out === '' ? seg : `.${seg}`;
    else out += `[${JSON.stringify(seg)}]`;
  }
  return out === '' ? '(model)' : out;
}

/** One line per problem: `file:line:col code path: message (fix)` — for logs and tests; cli/ has its own. */
export function formatProblem(p: Problem): string {
  const where = p.location ? `${p.location.file}:${p.location.line}:${p.location.column} ` : '';
  return `${where}${p.code} ${formatPath(p.path)}: ${p.message} Fix: ${p.fix}`;
}
