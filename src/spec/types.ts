/**
 * The types of a `pgwarden test` spec: expectations about what each person sees and may do,
 * checked against a database inside transactions that are rolled back. See docs/testing.md.
 */

/** Where something was written in the spec file (1-based). */
export interface SpecLocation {
  file: string;
  line: number;
  column: number;
}

export const SPEC_PROBLEM_CODES = {
  file_not_found: 'the spec file does not exist or cannot be read',
  invalid_syntax: 'the file is not valid YAML',
  invalid_structure: 'a part of the file has the wrong shape (not a map, not a list, unknown key)',
  malformed_expectation: 'an expectation is not one of the statements or outcomes of the format',
  unknown_person: 'a person whose role does not exist in the database',
  unknown_table: 'a table that is not a view of the exposed schema',
  unknown_column: 'a column that the view does not have',
} as const satisfies Record<string, string>;

export type SpecProblemCode = keyof typeof SPEC_PROBLEM_CODES;

/** What parsing or checking a spec returns instead of throwing. */
export interface SpecProblem {
  code: SpecProblemCode;
  message: string;
  fix: string;
  location: SpecLocation;
}

/** A value written in the spec: text (numbers are kept as written) or NULL. */
export type SpecValue = string | null;

/** How a cell must look: a level, or an exact value (`null`: NULL). */
export type CellExpectation = { level: 'full' | 'masked' | 'hidden' } | { value: SpecValue };

/** What a write, claim, reveal or export must do. */
export interface OutcomeExpectation {
  /** allowed: succeeds (and changes at least one row, for writes); refused: refused. */
  verdict: 'allowed' | 'refused';
  /** refused: the error or the reason must contain this text (case-insensitive) */
  refusedWith?: string;
  /** allowed: exactly this many rows changed (writes) or counted (exports) */
  rows?: number;
  /** export: exactly these columns exported (in any order) */
  columns?: string[];
}

export type SpecStatement =
  | {
      kind: 'sees';
      table: string;
      /** exactly these keys */
      exactly?: string[];
      includes?: string[];
      excludes?: string[];
      count?: number;
    }
  | {
      kind: 'row';
      table: string;
      key: string;
      cells: { column: string; expect: CellExpectation }[];
    }
  | {
      kind: 'update';
      table: string;
      key: string;
      set: { column: string; value: SpecValue }[];
      outcome: OutcomeExpectation;
    }
  | {
      kind: 'insert';
      table: string;
      set: { column: string; value: SpecValue }[];
      outcome: OutcomeExpectation;
    }
  | { kind: 'delete'; table: string; key: string; outcome: OutcomeExpectation }
  | { kind: 'claim' | 'release'; table: string; key: string; outcome: OutcomeExpectation }
  | { kind: 'reveal'; table: string; key: string; column: string; outcome: OutcomeExpectation }
  | { kind: 'export'; table: string; columns?: string[]; outcome: OutcomeExpectation };

export interface Expectation {
  /** the person it runs as (without role prefix) */
  person: string;
  /** the statement as written (the key of the list item) */
  text: string;
  /** `<person>: <label or statement>` */
  label: string;
  statement: SpecStatement;
  location: SpecLocation;
  /** where each column name was written, for unknown_column problems */
  columnLocations?: Record<string, SpecLocation>;
}

export interface PersonBlock {
  person: string;
  location: SpecLocation;
  expectations: Expectation[];
}

export interface Spec {
  file: string;
  /** the exposed schema, if the spec names it */
  schema?: string;
  blocks: PersonBlock[];
}

/** What the database offers, for checking a spec before running it. */
export interface SpecCatalog {
  /** the exposed schema the views are read from */
  schema: string;
  /** people that may be used: person name (without prefix) -> exists as a role */
  hasPerson(person: string): boolean;
  /** person names to suggest (may be empty when the catalog cannot be read) */
  knownPeople: string[];
  /** view name -> its columns */
  tables: Record<string, { columns: string[] }>;
  rolePrefix: string;
}
