import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createTestDatabase, type TestDb, urlFor } from './helpers/db.js';

describe('test harness', () => {
  let db: TestDb;

  beforeAll(async () => {
    db = await createTestDatabase();
  });

  afterAll(async () => {
    await db?.cleanup();
  });

  it('provides an admin URL', () => {
    expect(inject('adminUrl')).toMatch(/^postgres(ql)?:\/\//);
  });

  it('connects to a fresh database', async () => {
    expect(db.name).toMatch(/^pgw_[a-z0-9]{8}$/);
    expect(db.prefix).toBe(`${db.name}_`);
    const [row] = await db.sql<{ one: number; db: string }[]>`
      select 1 as one, current_database() as db
    `;
    expect(row).toEqual({ one: 1, db: db.name });
  });

  it('creates prefixed roles that cleanup() removes', async () => {
    const role = `${db.prefix}reader`;
    await db.sql.unsafe(`create role "${role}" login password 'pw'`);
    await db.sql.unsafe(`create table t (id int)`);
    await db.sql.unsafe(`grant select on t to "${role}"`);

    const reader = postgres(urlFor(db.url, { user: role }), {
      password: 'pw',
      max: 1,
      onnotice: () => {},
    });
    try {
      const [who] = await reader<{ u: string }[]>`select current_user as u`;
      expect(who?.u).toBe(role);
    } finally {
      await reader.end({ timeout: 5 });
    }

    await db.cleanup();

    const admin = postgres(inject('adminUrl'), { max: 1, onnotice: () => {} });
    try {
      const roles = await admin`select 1 from pg_roles where rolname = ${role}`;
      const dbs = await admin`select 1 from pg_database where datname = ${db.name}`;
      expect(roles.length).toBe(0);
      expect(dbs.length).toBe(0);
    } finally {
      await admin.end({ timeout: 5 });
    }
  });
});
