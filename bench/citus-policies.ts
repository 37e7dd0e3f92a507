/**
 * What the Citus target's policies cost on plain PostgreSQL (docs/distributed.md): the same
 * reads as each person, on the PostgreSQL target (through crm_api: helpers wrapped in
 * (SELECT ...), once per statement) and on the Citus target (base tables: helpers called bare,
 * per row), next to the same query as a superuser without row level security. No Citus here:
 * this measures the policies alone, not a cluster.
 *
 *   npx tsx bench/citus-policies.ts [--url postgres://postgres@127.0.0.1:5432/postgres] [--scale 2000] [--reps 5]
 *
 * Creates two databases pgwc_<random>_{pg,citus} and roles with the prefix pgwc_<random>_, and
 * drops them at the end.
 */
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import postgres from 'postgres';
import { setupCrm } from '../examples/crm/setup.js';
import type { Target } from '../src/compile/index.js';
import { quoteIdent } from '../src/sql/quote.js';

const arg = (name: string, fallback: string) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? (process.argv[i + 1] ?? fallback) : fallback;
};
const adminUrl = arg(
  'url',
  process.env.PGWARDEN_TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres',
);
const scale = Number(arg('scale', '2000'));
const reps = Number(arg('reps', '5'));
// the CRM's id_number is encrypted (sql/015); a throwaway key for the seed
const KEY = randomBytes(32).toString('hex');

const id = `pgwc_${randomBytes(4).toString('hex')}`;
const prefix = `${id}_`;
const urlOf = (db: string) => {
  const u = new URL(adminUrl);
  u.pathname = `/${db}`;
  return u.toString();
};

async function build(target: Target): Promise<postgres.Sql> {
  const name = `${id}_${target === 'citus' ? 'citus' : 'pg'}`;
  const admin = postgres(adminUrl, { max: 1, onnotice: () => {} });
  await admin.unsafe(`CREATE DATABASE ${quoteIdent(name)}`);
  await admin.end();
  const db = postgres(urlOf(name), {
    max: 1,
    onnotice: () => {},
    connection: { 'pgwarden.keys': KEY },
  });
  await setupCrm(db, { rolePrefix: prefix, target });
  // the same bulk data in both: customers over the seed's owners, regions, statuses and the
  // pool, a contract for every fifth, three contacts each (triggers off: reads are measured)
  await db.unsafe(`
    ALTER TABLE crm.customers DISABLE TRIGGER ALL;
    ALTER TABLE crm.contacts DISABLE TRIGGER ALL;
    ALTER TABLE crm.contracts DISABLE TRIGGER ALL;
    INSERT INTO crm.customers (id, name, owner, region, customer_type, status, in_pool, phone, email, address)
    SELECT 1000 + g, 'Customer ' || g,
      CASE WHEN g % 10 = 0 THEN NULL ELSE (ARRAY['alice','bob','pat','carol','dave','walt','vera'])[1 + g % 7] END,
      (ARRAY['east','west','north'])[1 + g % 3], (ARRAY['enterprise','retail','vip'])[1 + g % 5 % 3],
      (ARRAY['lead','active','churned'])[1 + g % 4 % 3], g % 10 = 0,
      '138' || lpad(g::text, 8, '0'), 'c' || g || '@example.com', g || ' Long Rd'
    FROM generate_series(1, ${scale}) g;
    INSERT INTO crm.contracts (customer_id, amount, signed_on, terms)
    SELECT 1000 + g, g, date '2026-01-01', 'standard' FROM generate_series(5, ${scale}, 5) g;
    INSERT INTO crm.contacts (customer_id, name, title, phone, email)
    SELECT 1000 + g, 'Contact ' || g || '/' || k, 'buyer', '139' || lpad(g::text, 8, '0'), 'p' || g || '@example.com'
    FROM generate_series(1, ${scale}) g, generate_series(1, 3) k;
    ANALYZE;`);
  return db;
}

async function time(db: postgres.Sql, role: string | null, query: string): Promise<number> {
  const runs: number[] = [];
  for (let i = 0; i <= reps; i++) {
    await db.begin(async (tx) => {
      if (role) await tx.unsafe(`SET LOCAL ROLE ${quoteIdent(prefix + role)}`);
      const t0 = performance.now();
      await tx.unsafe(query);
      if (i > 0) runs.push(performance.now() - t0); // the first run warms the caches
    });
  }
  runs.sort((a, b) => a - b);
  return runs[Math.floor(runs.length / 2)] as number;
}

const dbs: postgres.Sql[] = [];
try {
  const pg = await build('postgres');
  dbs.push(pg);
  const citus = await build('citus');
  dbs.push(citus);
  const cases: { label: string; person: string; table: string; query: (rel: string) => string }[] =
    [];
  for (const person of ['carol', 'vera', 'erin', 'fiona', 'mark', 'tom']) {
    cases.push({
      label: 'count(*)',
      person,
      table: 'customers',
      query: (rel) => `SELECT count(*) FROM ${rel}`,
    });
  }
  for (const person of ['carol', 'erin']) {
    cases.push({
      label: 'page of 50',
      person,
      table: 'customers',
      query: (rel) => `SELECT id, name FROM ${rel} WHERE region = 'east' ORDER BY id LIMIT 50`,
    });
    cases.push({
      label: 'count(*)',
      person,
      table: 'contacts',
      query: (rel) => `SELECT count(*) FROM ${rel}`,
    });
  }
  const out: string[] = [
    `rows: ${scale} customers, ${scale * 3} contacts, ${Math.floor(scale / 5)} contracts; median of ${reps} (ms)`,
    '| query | person | no RLS | postgres target (crm_api) | citus target (base table) | citus / postgres |',
    '|---|---|---:|---:|---:|---:|',
  ];
  for (const c of cases) {
    const base = await time(pg, null, c.query(`crm.${c.table}`));
    const p = await time(pg, c.person, c.query(`crm_api.${c.table}`));
    const q = await time(citus, c.person, c.query(`crm.${c.table}`));
    out.push(
      `| ${c.table} ${c.label} | ${c.person} | ${base.toFixed(1)} | ${p.toFixed(1)} | ${q.toFixed(1)} | ${(q / p).toFixed(0)}x |`,
    );
    process.stderr.write(`${out[out.length - 1]}\n`);
  }
  const [v] = await pg<{ v: string }[]>`SELECT version() AS v`;
  process.stdout.write(`${v?.v}\n${out.join('\n')}\n`);
} finally {
  for (const db of dbs) await db.end();
  const admin = postgres(adminUrl, { max: 1, onnotice: () => {} });
  for (const t of ['pg', 'citus'])
    await admin.unsafe(`DROP DATABASE IF EXISTS ${quoteIdent(`${id}_${t}`)} WITH (FORCE)`);
  const roles = await admin<{ rolname: string }[]>`
    SELECT rolname FROM pg_roles WHERE left(rolname, ${prefix.length}) = ${prefix}`;
  for (let pass = 0; pass < 3; pass++)
    for (const r of roles)
      await admin.unsafe(`DROP ROLE IF EXISTS ${quoteIdent(r.rolname)}`).catch(() => undefined);
  await admin.end();
}
