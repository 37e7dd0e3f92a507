/**
 * Loading a model file: .ts/.mts/.js/.mjs (default export, or a named export `model`),
 * .yaml/.yml, or .json. Syntax errors, duplicate keys and a missing file become problems like
 * any other; nothing here throws for a bad model.
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { extname, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { type Document, isMap, isScalar, isSeq, LineCounter, type Node, parseDocument } from 'yaml';
import { writeCanonical } from '../catalog/canonical-json.js';
import type { PathSegment, Problem, ProblemCode, ProblemPath, SourceMap } from './problems.js';
import { formatPath } from './problems.js';
import type { Model } from './types.js';
import { type ValidateOptions, validateModel } from './validate.js';

export interface LoadOptions {
  /** passed on to validateModel */
  requireColumns?: boolean;
}

export interface LoadedInput {
  /** the model input as written (null when the file could not be read or parsed) */
  input: unknown;
  /** problems found while reading (file_not_found, invalid_syntax, load_failed, duplicate keys) */
  problems: Problem[];
  /** locations for YAML and JSON files */
  source?: SourceMap;
}

export interface LoadResult {
  model: Model | null;
  problems: Problem[];
  input: unknown;
  /** sha256 (hex) of the canonical JSON of the normalized model, or of the input when invalid */
  hash: string;
  source?: SourceMap;
}

const TS_EXTENSIONS = new Set(['.ts', '.mts', '.cts', '.js', '.mjs', '.cjs']);
const YAML_EXTENSIONS = new Set(['.yaml', '.yml']);

function problem(
  code: ProblemCode,
  file: string,
  message: string,
  fix: string,
  at?: { line: number; column: number },
): Problem {
  const p: Problem = { code, path: [], message, fix };
  p.location = { file, line: at?.line ?? 1, column: at?.column ?? 1 };
  return p;
}

/** JSON with sorted object keys; undefined and functions are left out as JSON.stringify does. */
export function canonicalJson(value: unknown): string {
  // the same text, written without sorted copies for plain data (src/catalog/fingerprint.ts)
  const fast = writeCanonical(value, true);
  if (fast !== null) return fast ?? 'null';
  return slowModelJson(value);
}

/** canonicalJson by definition (test/fingerprint.test.ts compares the two). */
export function slowModelJson(value: unknown): string {
  return (
    JSON.stringify(value, (_key, v: unknown) => {
      if (typeof v === 'bigint') return v.toString();
      if (v && typeof v === 'object' && !Array.isArray(v)) {
        const sorted: Record<string, unknown> = {};
        for (const k of Object.keys(v).sort()) sorted[k] = (v as Record<string, unknown>)[k];
        return sorted;
      }
      return v;
    }) ?? 'null'
  );
}

export function modelHash(value: unknown): string {
  return createHash('sha256').update(canonicalJson(value)).digest('hex');
}

/** The node at `path`, or the nearest ancestor that exists; for a mapping entry, its key. */
function locateNode(doc: Document, path: ProblemPath): Node | null {
  let node: unknown = doc.contents;
  let best: Node | null = (doc.contents as Node | null) ?? null;
  for (const seg of path) {
    if (isMap(node)) {
      const pair = node.items.find(
        (it) => isScalar(it.key) && String(it.key.value) === String(seg),
      );
      if (!pair) break;
      best = (pair.key as Node) ?? best;
      node = pair.value;
    } else if (isSeq(node) && typeof seg === 'number') {
      const item = node.items[seg];
      if (!item) break;
      best = item as Node;
      node = item;
    } else break;
  }
  return best;
}

function sourceMapOf(file: string, doc: Document, lines: LineCounter): SourceMap {
  return {
    file,
    locate(path) {
      const node = locateNode(doc, path);
      const offset = node?.range?.[0];
      if (offset === undefined) return null;
      const pos = lines.linePos(offset);
      return { line: pos.line, column: pos.col };
    },
  };
}

/** Duplicate keys: in cells and jobs they are conflicting rules; elsewhere duplicate_key. */
function duplicateKeys(file: string, doc: Document, lines: LineCounter): Problem[] {
  const out: Problem[] = [];
  const walk = (node: unknown, path: PathSegment[]) => {
    if (isMap(node)) {
      const seen = new Set<string>();
      for (const pair of node.items) {
        if (!isScalar(pair.key)) {
          walk(pair.value, path);
          continue;
        }
        const key = String(pair.key.value);
        if (seen.has(key)) {
          const inCell = path.length === 4 && path[0] === 'tables' && path[2] === 'cells';
          const inJobs = path.length === 1 && path[0] === 'jobs';
          const code: ProblemCode = inCell || inJobs ? 'conflicting_rule' : 'duplicate_key';
          const offset = (pair.key as Node).range?.[0];
          const p: Problem = {
            code,
            path: [...path, key],
            message: inCell
              ? `Cell ${JSON.stringify(path[3])} lists ${JSON.stringify(key)} twice; only one level can apply.`
              : inJobs
                ? `Job ${JSON.stringify(key)} is listed twice.`
                : `${formatPath([...path, key])} is written twice; only the last one would count.`,
            fix: 'Keep one of them.',
          };
          if (offset !== undefined) {
            const pos = lines.linePos(offset);
            p.location = { file, line: pos.line, column: pos.col };
          }
          out.push(p);
        }
        seen.add(key);
        walk(pair.value, [...path, key]);
      }
    } else if (isSeq(node)) {
      for (const [i, item] of node.items.entries()) walk(item, [...path, i]);
    }
  };
  walk(doc.contents, []);
  return out;
}

function parseYamlText(
  file: string,
  text: string,
): { doc: Document; lines: LineCounter; source: SourceMap } {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, uniqueKeys: false, prettyErrors: false });
  return { doc, lines, source: sourceMapOf(file, doc, lines) };
}

/** The source map of a YAML/JSON text, parsed when a position is first asked for. */
function lazySourceMap(file: string, text: string): SourceMap {
  let parsed: SourceMap | undefined;
  return {
    file,
    locate(path) {
      parsed ??= parseYamlText(file, text).source;
      return parsed.locate(path);
    },
  };
}

/** Some object of this (valid) JSON text has a key twice; decoded as JSON.parse does. */
function jsonHasDuplicateKey(text: string): boolean {
  const stack: (Set<string> | null)[] = [];
  for (let i = 0; i < text.length; i++) {
    const ch = text.charCodeAt(i);
    if (ch === 0x7b /* { */) stack.push(new Set());
    else if (ch === 0x5b /* [ */) stack.push(null);
    else if (ch === 0x7d /* } */ || ch === 0x5d /* ] */) stack.pop();
    else if (ch === 0x22 /* " */) {
      let j = i + 1;
      let escaped = false;
      while (text.charCodeAt(j) !== 0x22) {
        if (text.charCodeAt(j) === 0x5c /* \ */) {
          escaped = true;
          j++;
        }
        j++;
      }
      const keys = stack[stack.length - 1];
      if (keys) {
        let k = j + 1;
        while (/\s/.test(text.charAt(k))) k++;
        if (text.charCodeAt(k) === 0x3a /* : */) {
          const key = escaped ? (JSON.parse(text.slice(i, j + 1)) as string) : text.slice(i + 1, j);
          if (keys.has(key)) return true;
          keys.add(key);
        }
      }
      i = j;
    }
  }
  return false;
}

/** Line/column of a JSON.parse error, from "position N" or "(line L column C)" in its message. */
function jsonErrorPosition(message: string, text: string): { line: number; column: number } {
  const lc = /line (\d+) column (\d+)/.exec(message);
  if (lc) return { line: Number(lc[1]), column: Number(lc[2]) };
  const pos = /position (\d+)/.exec(message);
  const offset = pos ? Number(pos[1]) : text.length;
  const before = text.slice(0, offset);
  const line = before.split('\n').length;
  const column = offset - before.lastIndexOf('\n');
  return { line, column };
}

/** Reads a model file into its raw input (no validation). */
export async function loadModelInput(file: string): Promise<LoadedInput> {
  const path = resolve(file);
  const ext = extname(path).toLowerCase();

  if (TS_EXTENSIONS.has(ext)) {
    try {
      await readFile(path);
    } catch {
      return {
        input: null,
        problems: [
          problem(
            'file_not_found',
            file,
            `Model file ${file} does not exist or cannot be read.`,
            'Check the path.',
          ),
        ],
      };
    }
    let mod: Record<string, unknown>;
    try {
      const { tsImport } = await import('tsx/esm/api');
      mod = (await tsImport(pathToFileURL(path).href, import.meta.url)) as Record<string, unknown>;
    } catch (e) {
      const msg = e instanceof Error ? e.message : String(e);
      const syntax = e instanceof SyntaxError || /Transform failed|Expected|Unexpected/.test(msg);
      return {
        input: null,
        problems: [
          problem(
            syntax ? 'invalid_syntax' : 'load_failed',
            file,
            `Loading ${file} failed: ${msg.split('\n')[0]}`,
            syntax ? 'Fix the syntax error.' : 'Fix the error the module throws while loading.',
          ),
        ],
      };
    }
    let input = mod.default ?? mod.model;
    // a CommonJS / transpiled default may be wrapped once more
    if (input && typeof input === 'object' && 'default' in input && !('tables' in input)) {
      input = (input as { default: unknown }).default;
    }
    if (input === undefined) {
      return {
        input: null,
        problems: [
          problem(
            'load_failed',
            file,
            `${file} has no default export and no export named model.`,
            'Add `export default defineModel({...})`.',
          ),
        ],
      };
    }
    return { input, problems: [] };
  }

  if (!YAML_EXTENSIONS.has(ext) && ext !== '.json') {
    return {
      input: null,
      problems: [
        problem(
          'invalid_syntax',
          file,
          `Unknown model file type ${JSON.stringify(ext)}.`,
          'Use .ts, .mts, .js, .mjs, .yaml, .yml or .json.',
        ),
      ],
    };
  }

  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch {
    return {
      input: null,
      problems: [
        problem(
          'file_not_found',
          file,
          `Model file ${file} does not exist or cannot be read.`,
          'Check the path.',
        ),
      ],
    };
  }

  if (ext === '.json') {
    let input: unknown;
    try {
      input = JSON.parse(text);
    } catch (e) {
      const msg = e instanceof Error ? e.message : String(e);
      return {
        input: null,
        problems: [
          problem(
            'invalid_syntax',
            file,
            `Invalid JSON: ${msg}`,
            'Fix the JSON syntax.',
            jsonErrorPosition(msg, text),
          ),
        ],
      };
    }
    // JSON is YAML: parse it again for duplicate keys and node positions. For a large model
    // that takes as long as all the rest, so only when the text has a duplicate key; positions
    // are then looked up (and the text parsed) when a problem is reported.
    if (jsonHasDuplicateKey(text)) {
      const { doc, lines, source } = parseYamlText(file, text);
      return { input, problems: duplicateKeys(file, doc, lines), source };
    }
    return { input, problems: [], source: lazySourceMap(file, text) };
  }

  const { doc, lines, source } = parseYamlText(file, text);
  if (doc.errors.length > 0) {
    return {
      input: null,
      source,
      problems: doc.errors.map((err) => {
        const pos = lines.linePos(err.pos[0]);
        return problem(
          'invalid_syntax',
          file,
          `Invalid YAML: ${err.message.split('\n')[0]}`,
          'Fix the YAML syntax.',
          { line: pos.line, column: pos.col },
        );
      }),
    };
  }
  let input: unknown;
  try {
    input = doc.toJS({ maxAliasCount: 100 });
  } catch (e) {
    return {
      input: null,
      source,
      problems: [
        problem(
          'invalid_syntax',
          file,
          `Invalid YAML: ${e instanceof Error ? e.message : String(e)}`,
          'Fix the YAML (aliases, tags).',
        ),
      ],
    };
  }
  return { input, problems: duplicateKeys(file, doc, lines), source };
}

/** Load, then validate: every problem of the file at once. */
export async function loadModel(file: string, options: LoadOptions = {}): Promise<LoadResult> {
  const loaded = await loadModelInput(file);
  const out = (model: Model | null, problems: Problem[]): LoadResult => {
    const r: LoadResult = {
      model,
      problems,
      input: loaded.input,
      hash: modelHash(model ?? loaded.input),
    };
    if (loaded.source) r.source = loaded.source;
    return r;
  };
  if (loaded.input === null) return out(null, loaded.problems);
  const vopts: ValidateOptions = {};
  if (loaded.source) vopts.source = loaded.source;
  if (options.requireColumns) vopts.requireColumns = true;
  const { model, problems } = await validateModel(loaded.input, vopts);
  const all = [...loaded.problems, ...problems];
  return out(all.length === 0 ? model : null, all);
}
