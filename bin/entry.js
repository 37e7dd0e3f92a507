// Which build of the command line `bin/pgwarden.js` runs: the compiled one in dist/ when it is
// current, else the TypeScript sources through tsx.
//
// Compiled output starts about 400 ms sooner (measured in bench/README.md, "The toolchain"): tsx
// transforms and loads every command module on each start. But compiled output that is older
// than the sources would run yesterday's code, so dist/ is used only when no source file is newer
// than it. A fresh clone after `npm install` has no dist/ and runs the sources; `npm run build`
// (which CI runs) makes the compiled CLI current; editing a source makes it stale again until the
// next build. An installed package ships dist/ without the sources and always runs dist/.
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

/** the folders tsconfig.build.json compiles into dist/ (examples/ through the demo's imports) */
const SOURCE_DIRS = ['src', 'cli', 'examples'];

/** the newest modification time of a .ts file under dir, or 0 */
function newestSource(dir) {
  let newest = 0;
  let entries;
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch {
    return 0;
  }
  for (const e of entries) {
    const p = join(dir, e.name);
    if (e.isDirectory()) {
      if (e.name !== 'node_modules') newest = Math.max(newest, newestSource(p));
    } else if (e.name.endsWith('.ts')) {
      newest = Math.max(newest, statSync(p).mtimeMs);
    }
  }
  return newest;
}

function mtime(path) {
  try {
    return statSync(path).mtimeMs;
  } catch {
    return null;
  }
}

/**
 * @param {string} root the package's folder
 * @param {NodeJS.ProcessEnv} env PGWARDEN_FROM_SOURCE=1 forces the sources
 * @returns {{ mode: 'compiled' | 'source', file: string, why: string }}
 */
export function chooseEntry(root, env = process.env) {
  const source = join(root, 'cli', 'main.ts');
  const compiled = join(root, 'dist', 'cli', 'main.js');
  const hasSource = mtime(source) !== null;
  const built = mtime(compiled);
  if (!hasSource) {
    return {
      mode: 'compiled',
      file: compiled,
      why: 'no sources next to dist/ (installed package)',
    };
  }
  if (env.PGWARDEN_FROM_SOURCE === '1') {
    return { mode: 'source', file: source, why: 'PGWARDEN_FROM_SOURCE=1' };
  }
  if (built === null) {
    return { mode: 'source', file: source, why: 'no dist/ (npm run build makes one)' };
  }
  const newest = Math.max(...SOURCE_DIRS.map((d) => newestSource(join(root, d))));
  if (newest > built) {
    return {
      mode: 'source',
      file: source,
      why: 'dist/ is older than the sources (npm run build updates it)',
    };
  }
  return { mode: 'compiled', file: compiled, why: 'dist/ is current' };
}
