/**
 * The Postgres parser: libpg-query's WebAssembly build, called the way the package's own
 * parseSync and scanSync call it, without the package's index module.
 *
 * Two reasons (docs/decisions.md, "The parser without libpg-query's index module"):
 * - the index module also loads a 5.4 MB protobuf bundle (`proto.js`) that only its deparse
 *   needs, which pgwarden never calls: 100-130 ms on every start of the command line;
 * - it treats any result containing the text `ERROR` as a failure, so an expression such as
 *   `status <> 'ERROR'` was refused as a syntax error. The C functions return either the JSON
 *   result (an object) or the parser's message; here, what is not an object is the message.
 */
import type { ParseResult, ScanResult } from 'libpg-query';
import createModule from 'libpg-query/wasm/libpg-query.js';

/** The module's exports that the package's parseSync and scanSync use. */
interface PgQueryWasm {
  _wasm_parse_query(input: number): number;
  _wasm_scan(input: number): number;
  _wasm_free_string(ptr: number): void;
  _malloc(size: number): number;
  _free(ptr: number): void;
  lengthBytesUTF8(text: string): number;
  stringToUTF8(text: string, ptr: number, max: number): void;
  UTF8ToString(ptr: number): string;
}

let wasm: PgQueryWasm | undefined;
let loading: Promise<unknown> | undefined;

/** Loads and instantiates the WebAssembly parser once; the Sync functions need it. */
export async function loadPgParser(): Promise<void> {
  if (wasm) return;
  loading ??= createModule();
  wasm = (await loading) as PgQueryWasm;
}

function call(fn: '_wasm_parse_query' | '_wasm_scan', text: string): string {
  if (!wasm) throw new Error('the SQL parser is not loaded: await loadPgParser() first');
  const len = wasm.lengthBytesUTF8(text) + 1;
  const input = wasm._malloc(len);
  let result = 0;
  try {
    wasm.stringToUTF8(text, input, len);
    result = wasm[fn](input);
    return wasm.UTF8ToString(result);
  } finally {
    wasm._free(input);
    if (result) wasm._wasm_free_string(result);
  }
}

/** The C function's JSON result: an object; anything else is the parser's error message. */
function jsonOf(fn: '_wasm_parse_query' | '_wasm_scan', text: string): string {
  const out = call(fn, text);
  if (!out.startsWith('{')) throw new Error(out);
  return out;
}

/** The parse tree of `text` (one or more statements); throws the parser's message on an error. */
export function parseSync(text: string): ParseResult {
  return JSON.parse(parseJsonSync(text)) as ParseResult;
}

/** parseSync's tree as the parser writes it: JSON text, not parsed. */
export function parseJsonSync(text: string): string {
  return jsonOf('_wasm_parse_query', text);
}

/**
 * The tokens of `text`; throws the scanner's message on an error. The scanner writes each
 * token's text into its JSON escaping quotes and backslashes but not control characters, so a
 * literal with a newline or tab in it made the package's scanSync fail ("Bad control character
 * in string literal in JSON"); they are escaped here first (JSON has no other place for them).
 */
export function scanSync(text: string): ScanResult {
  return JSON.parse(jsonOf('_wasm_scan', text).replace(CONTROL, controlEscape)) as ScanResult;
}

// biome-ignore lint/suspicious/noControlCharactersInRegex: the control characters are the point
const CONTROL = /[\u0000-\u001f]/g;

function controlEscape(c: string): string {
  return `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`;
}

export async function parse(text: string): Promise<ParseResult> {
  await loadPgParser();
  return parseSync(text);
}

export async function scan(text: string): Promise<ScanResult> {
  await loadPgParser();
  return scanSync(text);
}
