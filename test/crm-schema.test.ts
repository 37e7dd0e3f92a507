/**
 * examples/crm/schema.sql is what drizzle-kit generates from examples/crm/schema.ts, and the
 * JSON model means the same as the YAML one.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { loadModel } from '../src/model/load.js';

const root = join(import.meta.dirname, '..');
const run = promisify(execFile);

describe('examples/crm', () => {
  it('schema.sql equals drizzle-kit generate output for schema.ts', async () => {
    const out = mkdtempSync(join(tmpdir(), 'pgw-dk-'));
    await run(
      process.execPath,
      [
        join(root, 'node_modules', 'drizzle-kit', 'bin.cjs'),
        'generate',
        '--dialect',
        'postgresql',
        '--schema',
        'examples/crm/schema.ts',
        '--out',
        out,
      ],
      { cwd: root, timeout: 120_000 },
    );
    const file = readdirSync(out).find((f) => f.endsWith('.sql')) as string;
    const generated = readFileSync(join(out, file), 'utf8');
    const committed = readFileSync(join(root, 'examples/crm/schema.sql'), 'utf8')
      .split('\n')
      .slice(1)
      .join('\n');
    expect(committed).toBe(generated);
  });

  it('model.json is the YAML model as JSON', async () => {
    const yaml = parse(readFileSync(join(root, 'examples/crm/model.yaml'), 'utf8'));
    const json = JSON.parse(readFileSync(join(root, 'examples/crm/model.json'), 'utf8'));
    expect(json).toEqual(yaml);
    const a = await loadModel(join(root, 'examples/crm/model.json'));
    const b = await loadModel(join(root, 'examples/crm/model.yaml'));
    expect(a.problems).toEqual([]);
    expect(a.hash).toBe(b.hash);
  });
});
