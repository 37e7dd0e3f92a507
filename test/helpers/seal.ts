/**
 * Sealing in tests. The sealer takes only the records of transactions older than every
 * transaction still running on the server, in any database (pgwarden_audit.seal's horizon), and
 * other test files run beside this one, so one call may leave the newest records for later.
 */
import type postgres from 'postgres';
import { seal } from '../../src/report/audit.js';

/** Seals until no record is left out of the chain (every 0.5 s, for at most `tries` rounds). */
export async function sealAll(sql: postgres.Sql, tries = 60): Promise<void> {
  for (let i = 0; i < tries; i++) {
    await seal(sql);
    const [u] = await sql<{ n: number }[]>`
      SELECT count(*)::int AS n FROM pgwarden_audit.records r
      WHERE NOT EXISTS (SELECT FROM pgwarden_audit.chain c WHERE c.record_id = r.id)`;
    if (u?.n === 0) return;
    await new Promise((r) => setTimeout(r, 500));
  }
  throw new Error(
    `sealAll: records still unsealed after ${tries} rounds: a transaction is held open on the server`,
  );
}
