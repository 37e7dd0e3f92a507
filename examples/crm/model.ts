/**
 * The reference CRM's permission model (SCENARIO.md). `pgwarden demo` and the behaviour tests
 * run it; examples/crm/model.yaml says the same in YAML.
 */
import { defineModel, table } from '../../src/model/define.js';
import { contacts, contracts, customers, deals } from './schema.js';

const SEES_CUSTOMERS = [
  'sales_rep',
  'sales_manager',
  'sales_director',
  'support_agent',
  'finance',
  'marketing',
] as const;

export default defineModel({
  name: 'crm',
  schemas: { protected: 'crm', exposed: 'crm_api' },
  roles: {
    authenticator: 'crm_app',
    tableOwner: 'crm_owner',
    viewOwner: 'crm_api_owner',
    people: 'crm_people',
  },
  jobs: {
    sales_rep: { description: 'sells to their own customers' },
    sales_manager: { description: 'manages a sales unit' },
    sales_director: { description: 'runs all of sales', privileged: true },
    support_agent: { description: 'helps active customers' },
    finance: { description: 'handles contracts and money' },
    marketing: { description: 'plans campaigns over leads and active customers' },
    compliance_officer: { description: 'approves exports and privileged grants', privileged: true },
    crm_admin: { description: 'manages people and access; reads no customer data', admin: true },
    auditor: { description: 'reads audit data; no customer data', privileged: true },
  },
  approvals: { approvers: ['compliance_officer'] },
  audit: { readers: ['auditor'] },
  alerts: { exportRowsAbove: 100 },
  // who covers which region and customer type: assigned as data (pgwarden assign), not in the model
  attributes: {
    region: { description: 'sales region a person or team covers' },
    customer_type: { description: 'customer type a person or team covers' },
  },
  tables: {
    customers: table(customers, {
      key: 'id',
      owner: 'owner',
      pool: 'in_pool',
      grantable: ['region', 'customer_type', 'status'],
      rules: [
        { jobs: ['sales_rep'], commands: ['select'], scopes: ['own', 'shared', 'pool'] },
        { jobs: ['sales_rep'], commands: ['insert', 'update'], scopes: ['own'] },
        {
          jobs: ['sales_manager', 'sales_director'],
          commands: ['select'],
          scopes: ['subtree', 'pool'],
        },
        {
          jobs: ['sales_manager', 'sales_director'],
          commands: ['insert', 'update'],
          scopes: ['subtree'],
        },
        // a manager's delete moves the customer (and its contacts, deals, contracts) to the bin
        { jobs: ['sales_manager', 'sales_director'], commands: ['delete'], scopes: ['subtree'] },
        {
          jobs: ['support_agent'],
          commands: ['select'],
          scopes: [{ filter: "status = 'active'" }],
        },
        {
          jobs: ['finance'],
          commands: ['select'],
          scopes: [{ filter: 'id IN (SELECT k.customer_id FROM crm.contracts k)' }],
        },
        {
          jobs: ['marketing'],
          commands: ['select'],
          scopes: [{ filter: "status IN ('lead', 'active')" }],
        },
        { jobs: ['*'], commands: ['select'], scopes: ['granted'] },
        // territories: customers in the regions assigned to the person (pgwarden assign dave region north)
        {
          jobs: ['sales_rep', 'sales_manager'],
          commands: ['select'],
          scopes: [{ assigned: ['region'] }],
        },
        // campaigns: customers of an assigned region AND an assigned customer type
        {
          jobs: ['marketing'],
          commands: ['select'],
          scopes: [{ assigned: ['region', 'customer_type'] }],
        },
      ],
      // who may change which column of an existing customer (everything else is read-only)
      edits: {
        name: ['own', 'subtree'],
        status: ['own', 'subtree'],
        phone: ['own', 'subtree'],
        email: ['own', 'subtree'],
        address: ['own', 'subtree'],
        region: ['subtree'],
        customer_type: ['subtree'],
        id_number: ['subtree'],
        owner: ['subtree'],
      },
      // reassigning a customer to an owner in another unit waits for a manager of the new owner
      changeApproval: {
        expiresAfterHours: 72,
        columns: { owner: { requesters: ['subtree'], approvers: ['subtree'], crossUnit: true } },
      },
      claims: { jobs: ['sales_rep'], perDay: 5 },
      recycleBin: { retentionDays: 60 },
      // id_number is stored encrypted (the key comes with each session, never from the database)
      encrypted: ['id_number'],
      // one id_number at a time, on purpose, logged: the owner or a manager above
      reveal: { columns: { id_number: ['own', 'subtree'] }, perDay: 20 },
      // a rep's statement may read at most 200 customers: SELECT * is not an export
      readCap: { sales_rep: 200 },
      // reps may not export; managers without contact fields; the director with phone after approval
      exports: {
        sales_manager: {
          columns: [
            'id',
            'name',
            'owner',
            'region',
            'customer_type',
            'status',
            'in_pool',
            'address',
            'created_at',
            'updated_at',
          ],
          perDay: 200,
        },
        sales_director: {
          columns: [
            'id',
            'name',
            'owner',
            'region',
            'customer_type',
            'status',
            'in_pool',
            'phone',
            'address',
            'created_at',
            'updated_at',
          ],
          perDay: 500,
          approval: { columns: ['phone'] },
        },
      },
      cells: {
        phone: {
          pool: 'hidden',
          own: 'full',
          subtree: 'full',
          shared: 'mask:phone',
          'job:support_agent': 'mask:phone',
          granted: 'mask:phone',
          assigned: 'mask:phone',
          default: 'hidden',
        },
        email: {
          pool: 'hidden',
          own: 'full',
          subtree: 'full',
          shared: 'full',
          'job:support_agent': 'full',
          granted: 'mask:email',
          assigned: 'mask:email',
          default: 'hidden',
        },
        id_number: {
          pool: 'hidden',
          own: 'mask:id_number',
          subtree: 'mask:id_number',
          default: 'hidden',
        },
        address: {
          pool: 'hidden',
          own: 'full',
          subtree: 'full',
          shared: 'full',
          default: 'hidden',
        },
      },
    }),
    contacts: table(contacts, {
      rules: [
        {
          jobs: ['*'],
          commands: ['select'],
          scopes: [{ parent: { column: 'customer_id', table: 'customers' } }],
        },
        {
          jobs: ['sales_rep'],
          commands: ['insert', 'update'],
          scopes: [{ parent: { column: 'customer_id', table: 'customers', via: ['own'] } }],
        },
        {
          jobs: ['sales_manager', 'sales_director'],
          commands: ['insert', 'update'],
          scopes: [{ parent: { column: 'customer_id', table: 'customers', via: ['subtree'] } }],
        },
      ],
      edits: {
        name: ['parent:own', 'parent:subtree'],
        title: ['parent:own', 'parent:subtree'],
        phone: ['parent:own', 'parent:subtree'],
        email: ['parent:own', 'parent:subtree'],
      },
      // contact details follow how the person relates to the contact's customer
      cells: {
        phone: {
          'parent:pool': 'hidden',
          'parent:own': 'full',
          'parent:subtree': 'full',
          'parent:shared': 'mask:phone',
          'job:support_agent': 'mask:phone',
          'parent:granted': 'mask:phone',
          default: 'hidden',
        },
        email: {
          'parent:pool': 'hidden',
          'parent:own': 'full',
          'parent:subtree': 'full',
          'parent:shared': 'full',
          'job:support_agent': 'full',
          'parent:granted': 'mask:email',
          default: 'hidden',
        },
      },
    }),
    deals: table(deals, {
      owner: 'owner',
      rules: [
        {
          jobs: ['*'],
          commands: ['select'],
          scopes: [{ parent: { column: 'customer_id', table: 'customers' } }],
        },
        { jobs: ['sales_rep'], commands: ['insert', 'update'], scopes: ['own'] },
        {
          jobs: ['sales_manager', 'sales_director'],
          commands: ['insert', 'update'],
          scopes: ['subtree'],
        },
      ],
      edits: {
        title: ['own', 'subtree'],
        stage: ['own', 'subtree'],
        amount: ['own', 'subtree'],
        owner: ['subtree'],
      },
      cells: {
        amount: { own: 'full', subtree: 'full', 'job:finance': 'full', default: 'hidden' },
      },
    }),
    contracts: table(contracts, {
      rules: [
        {
          jobs: [...SEES_CUSTOMERS.filter((j) => j.startsWith('sales'))],
          commands: ['select'],
          scopes: [
            { parent: { column: 'customer_id', table: 'customers', via: ['own', 'subtree'] } },
          ],
        },
        { jobs: ['finance'], commands: ['select', 'insert', 'update'], scopes: ['all'] },
      ],
      // only finance edits contracts; anyone else's change of the amount waits for finance
      edits: { amount: ['job:finance'], signed_on: ['job:finance'], terms: ['job:finance'] },
      changeApproval: {
        expiresAfterHours: 72,
        columns: {
          amount: { requesters: ['parent:own', 'parent:subtree'], approvers: ['job:finance'] },
        },
      },
    }),
  },
});
