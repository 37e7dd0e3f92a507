/**
 * drizzle-kit config for the reference CRM's tables. drizzle-kit owns the application tables
 * (schema `crm`); pgwarden owns policies, views, triggers, roles and grants. `schemaFilter`
 * keeps `drizzle-kit push` / `generate` to schema `crm`, so it never sees pgwarden's schemas
 * (`crm_api`, `pgwarden`). drizzle-kit does not manage row level security here (no
 * `pgPolicy` / `.enableRLS()` in the schema), so it leaves pgwarden's policies alone; see
 * docs/decisions.md.
 */
import { defineConfig } from 'drizzle-kit';

export default defineConfig({
  dialect: 'postgresql',
  schema: './examples/crm/schema.ts',
  out: './examples/crm/drizzle',
  schemaFilter: ['crm'],
  dbCredentials: { url: process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres' },
});
