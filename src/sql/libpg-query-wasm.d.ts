// The Emscripten loader of libpg-query's WebAssembly parser, which the package ships without
// types; src/sql/pg-parser.ts describes what it resolves to (PgQueryWasm).
declare module 'libpg-query/wasm/libpg-query.js' {
  const createModule: () => Promise<unknown>;
  export default createModule;
}
