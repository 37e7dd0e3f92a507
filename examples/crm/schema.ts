/**
 * The reference CRM's tables (SCENARIO.md), as drizzle-orm definitions in the private schema
 * `crm`. drizzle-kit owns these tables; pgwarden owns their policies, views, roles and grants.
 * The SQL they produce is in schema.sql (kept in sync by test/crm-schema.test.ts).
 */
import {
  bigint,
  boolean,
  date,
  index,
  numeric,
  pgSchema,
  text,
  timestamp,
} from 'drizzle-orm/pg-core';

export const crm = pgSchema('crm');

export const customers = crm.table(
  'customers',
  {
    id: bigint('id', { mode: 'number' }).primaryKey().generatedByDefaultAsIdentity(),
    name: text('name').notNull(),
    owner: text('owner'),
    region: text('region').notNull(),
    customer_type: text('customer_type').notNull(),
    status: text('status').notNull().default('lead'),
    in_pool: boolean('in_pool').notNull().default(false),
    phone: text('phone'),
    email: text('email'),
    id_number: text('id_number'),
    address: text('address'),
    created_at: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
    updated_at: timestamp('updated_at', { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [
    index('customers_owner_idx').on(t.owner),
    index('customers_in_pool_idx').on(t.in_pool),
    index('customers_region_status_idx').on(t.region, t.status),
    // marketing's campaigns: assigned region AND customer type (an index arm of the policy)
    index('customers_region_type_idx').on(t.region, t.customer_type),
  ],
);

export const contacts = crm.table(
  'contacts',
  {
    id: bigint('id', { mode: 'number' }).primaryKey().generatedByDefaultAsIdentity(),
    customer_id: bigint('customer_id', { mode: 'number' })
      .notNull()
      .references(() => customers.id),
    name: text('name').notNull(),
    title: text('title'),
    phone: text('phone'),
    email: text('email'),
  },
  (t) => [index('contacts_customer_idx').on(t.customer_id)],
);

export const deals = crm.table(
  'deals',
  {
    id: bigint('id', { mode: 'number' }).primaryKey().generatedByDefaultAsIdentity(),
    customer_id: bigint('customer_id', { mode: 'number' })
      .notNull()
      .references(() => customers.id),
    owner: text('owner'),
    title: text('title').notNull(),
    stage: text('stage').notNull(),
    amount: numeric('amount', { precision: 14, scale: 2 }),
  },
  (t) => [index('deals_customer_idx').on(t.customer_id), index('deals_owner_idx').on(t.owner)],
);

export const contracts = crm.table(
  'contracts',
  {
    id: bigint('id', { mode: 'number' }).primaryKey().generatedByDefaultAsIdentity(),
    customer_id: bigint('customer_id', { mode: 'number' })
      .notNull()
      .references(() => customers.id),
    amount: numeric('amount', { precision: 14, scale: 2 }),
    signed_on: date('signed_on'),
    terms: text('terms'),
  },
  (t) => [index('contracts_customer_idx').on(t.customer_id)],
);
