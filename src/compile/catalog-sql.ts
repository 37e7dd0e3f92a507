/** The versioned runtime catalog files of sql/, read once. */
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface CatalogMigration {
  version: number;
  file: string;
  sql: string;
  /** which of pgwarden's roles runs (and owns) it: `-- pgwarden:owner audit` on the first line */
  owner: 'catalog' | 'audit';
}

function sqlDir(): string {
  // src/compile -> ../../sql ; dist/src/compile -> ../../../sql
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    const candidate = join(dir, 'sql');
    try {
      if (readdirSync(candidate).some((f) => /^\d{3}_.*\.sql$/.test(f))) return candidate;
    } catch {
      // keep looking upwards
    }
    dir = dirname(dir);
  }
  throw new Error('pgwarden: cannot find its sql/ folder next to the package');
}

let cache: CatalogMigration[] | null = null;

export function loadCatalogMigrations(): CatalogMigration[] {
  if (cache) return cache;
  const dir = sqlDir();
  cache = readdirSync(dir)
    .filter((f) => /^\d{3}_.*\.sql$/.test(f))
    .sort()
    .map((file) => {
      const sql = readFileSync(join(dir, file), 'utf8');
      const owner = /^-- pgwarden:owner audit\b/.test(sql)
        ? ('audit' as const)
        : ('catalog' as const);
      return { version: Number(file.slice(0, 3)), file, sql, owner };
    });
  return cache;
}
