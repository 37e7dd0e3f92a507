/**
 * drizzle-kit config for the reference CRM's tables. drizzle-kit owns the application tables
 * (schema `crm`); pgwarden owns policies, views, triggers, roles and grants. `schemaFilter`
 * keeps drizzle-kit to schema `crm`, so it never sees pgwarden's schemas (`crm_api`,
 * `pgwarden`). `drizzle-kit push` is NOT safe on a database pgwarden manages, whatever the
 * config: it drops every policy on the `crm` tables that the drizzle schema does not declare
 * (and disables row level security unless the tables declare `.enableRLS()`). Use
 * `drizzle-kit generate` + `migrate` (with `pgwarden generate --drizzle`), or run
 * `pgwarden apply` right after every push; see docs/drizzle.md. Never set `entities.roles`.
 */
import { defineConfig } from 'drizzle-kit';

export default defineConfig({
  dialect: 'postgresql',
  schema: './examples/crm/schema.ts',
  out: './examples/crm/drizzle',
  schemaFilter: ['crm'],
  dbCredentials: { url: process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres' },
});
