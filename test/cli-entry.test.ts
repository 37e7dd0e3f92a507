/**
 * bin/pgwarden.js runs the compiled CLI (dist/) only while it is current, and the compiled CLI
 * does what the sources do (bin/entry.js). No database: the commands here work offline.
 */
import { execFile } from 'node:child_process';
import {
  cpSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chooseEntry } from '../bin/entry.js';

const run = promisify(execFile);
const ROOT = join(import.meta.dirname, '..');
const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function tree(files: Record<string, string>): string {
  const root = mkdtempSync(join(tmpdir(), 'pgwarden-entry-'));
  dirs.push(root);
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(join(root, path, '..'), { recursive: true });
    writeFileSync(join(root, path), text);
  }
  return root;
}

/** sets a file's modification time, seconds from now */
function age(path: string, seconds: number): void {
  const t = new Date(Date.now() + seconds * 1000);
  utimesSync(path, t, t);
}

describe('chooseEntry', () => {
  it('runs the sources when there is no dist/', () => {
    const root = tree({ 'cli/main.ts': '', 'src/a.ts': '' });
    expect(chooseEntry(root, {})).toMatchObject({
      mode: 'source',
      why: expect.stringMatching(/no dist/),
    });
  });

  it('runs dist/ while no source is newer, and the sources once one is', () => {
    const root = tree({
      'cli/main.ts': '',
      'src/deep/nested/a.ts': '',
      'examples/crm/setup.ts': '',
      'dist/cli/main.js': '',
    });
    for (const f of ['cli/main.ts', 'src/deep/nested/a.ts', 'examples/crm/setup.ts'])
      age(join(root, f), -60);
    expect(chooseEntry(root, {})).toMatchObject({
      mode: 'compiled',
      file: join(root, 'dist', 'cli', 'main.js'),
    });
    // an edit deep in src/ (or in examples/, which the demo compiles in) makes dist/ stale
    age(join(root, 'src/deep/nested/a.ts'), 5);
    expect(chooseEntry(root, {})).toMatchObject({
      mode: 'source',
      file: join(root, 'cli', 'main.ts'),
      why: expect.stringMatching(/older than the sources.*npm run build/),
    });
    age(join(root, 'src/deep/nested/a.ts'), -60);
    age(join(root, 'examples/crm/setup.ts'), 5);
    expect(chooseEntry(root, {}).mode).toBe('source');
  });

  it('PGWARDEN_FROM_SOURCE=1 forces the sources', () => {
    const root = tree({ 'cli/main.ts': '', 'dist/cli/main.js': '' });
    age(join(root, 'cli/main.ts'), -60);
    expect(chooseEntry(root, {}).mode).toBe('compiled');
    expect(chooseEntry(root, { PGWARDEN_FROM_SOURCE: '1' }).mode).toBe('source');
  });

  it('an installed package (dist/ without the sources) runs dist/', () => {
    const root = tree({ 'dist/cli/main.js': '' });
    expect(chooseEntry(root, {})).toMatchObject({
      mode: 'compiled',
      why: expect.stringMatching(/installed/),
    });
  });
});

describe('the compiled CLI', () => {
  // A copy of the package with its own dist/, compiled here: the repository's dist/ may be
  // missing or stale while the suite runs.
  let root: string;
  beforeAll(async () => {
    root = mkdtempSync(join(tmpdir(), 'pgwarden-compiled-'));
    dirs.push(root);
    for (const d of [
      'src',
      'cli',
      'examples',
      'sql',
      'node_modules',
      'package.json',
      'tsconfig.json',
    ])
      symlinkSync(join(ROOT, d), join(root, d));
    cpSync(join(ROOT, 'bin'), join(root, 'bin'), { recursive: true });
    await run(
      process.execPath,
      [
        join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'),
        '-p',
        join(ROOT, 'tsconfig.build.json'),
        '--outDir',
        join(root, 'dist'),
        '--noCheck',
      ],
      { cwd: ROOT, timeout: 120_000 },
    );
  }, 150_000);

  async function pgwarden(args: string[], env: Record<string, string> = {}) {
    return run(process.execPath, [join(root, 'bin', 'pgwarden.js'), ...args], {
      cwd: ROOT,
      env: { ...process.env, NO_COLOR: '1', PGWARDEN_DEBUG_ENTRY: '1', ...env },
      timeout: 120_000,
    });
  }

  it('generates the golden SQL from the CRM model, as the sources do', async () => {
    const out = join(root, 'out');
    const r = await pgwarden(['generate', '--model', 'examples/crm/model.ts', '--out', out]);
    expect(r.stderr).toMatch(/running compiled \(dist\/ is current\)/);
    const golden = join(ROOT, 'test', 'golden', 'crm');
    const files = readdirSync(golden).sort();
    expect(readdirSync(out).sort()).toEqual(files);
    for (const f of files)
      expect(readFileSync(join(out, f), 'utf8'), f).toBe(readFileSync(join(golden, f), 'utf8'));
  });

  it('says which build ran, and falls back to the sources on request', async () => {
    const r = await pgwarden(['--version'], { PGWARDEN_FROM_SOURCE: '1' });
    expect(r.stdout.trim()).toBe('0.1.0');
    expect(r.stderr).toMatch(/running source \(PGWARDEN_FROM_SOURCE=1\)/);
  });

  it('the compiled demo setup finds the CRM files next to the sources', async () => {
    const setup = (await import(
      pathToFileURL(join(root, 'dist', 'examples', 'crm', 'setup.js')).href
    )) as typeof import('../examples/crm/setup.js');
    expect(setup.readCrmFile('schema.sql')).toContain('CREATE TABLE');
  });

  it('a failing command exits and reports as the sources do', async () => {
    const args = ['generate', '--model', 'no/such/model.ts', '--out', join(root, 'x')];
    type Failure = { code: number; stdout: string; stderr: string };
    const fail = (e: Failure) => e;
    const compiled = (await pgwarden(args).catch(fail)) as Failure;
    const source = (await pgwarden(args, { PGWARDEN_FROM_SOURCE: '1' }).catch(fail)) as Failure;
    expect(compiled.code).toBe(3); // EXIT.invalidModel
    expect(compiled.stdout + compiled.stderr).toMatch(/file_not_found.*no\/such\/model\.ts/);
    expect(source.code).toBe(compiled.code);
    expect(source.stdout).toBe(compiled.stdout);
    expect(source.stderr.replace(/^pgwarden: running .*\n/, '')).toBe(
      compiled.stderr.replace(/^pgwarden: running .*\n/, ''),
    );
  });
});
