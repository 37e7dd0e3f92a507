// Generates examples/crm/seed.sql (deterministic): node examples/crm/make-seed.mjs > examples/crm/seed.sql
const owners = [
  'alice',
  'alice',
  'alice',
  'alice',
  'alice',
  'alice',
  'alice',
  'alice',
  'bob',
  'bob',
  'bob',
  'bob',
  'bob',
  'bob',
  'pat',
  'pat',
  'pat',
  'pat',
  'dave',
  'dave',
  'dave',
  'dave',
  'dave',
  'dave',
  'dave',
  'carol',
  'walt',
  'vera',
];
const regions = ['east', 'west', 'north'];
const types = ['enterprise', 'retail', 'vip'];
const statuses = ['lead', 'active', 'churned'];
const rows = [];
let id = 0;
const names = [
  'Acme',
  'Globex',
  'Initech',
  'Umbrella',
  'Hooli',
  'Vandelay',
  'Stark',
  'Wayne',
  'Wonka',
  'Tyrell',
  'Cyberdyne',
  'Soylent',
  'Oscorp',
  'Gringotts',
  'Monarch',
  'Aperture',
  'Black Mesa',
  'Blue Sun',
  'Duff',
  'Gekko',
  'Krusty',
  'Massive Dynamic',
  'Nakatomi',
  'Ollivander',
  'Pied Piper',
  'Prestige',
  'Sirius',
  'Spacely',
  'Virtucon',
  'Weyland',
  'Yoyodyne',
  'Zorg',
  'Bluth',
  'Dunder',
  'Kramerica',
  'Los Pollos',
  'Mooby',
  'Nuka',
  'Omni',
  'Planet Express',
  'Quark',
  'Rekall',
  'Sterling',
  'Tessier',
];
for (let i = 0; i < 44; i++) {
  id++;
  const pool = i >= 36; // 8 pool customers
  const owner = pool ? null : owners[i % owners.length];
  const region =
    owner === 'dave' || owner === 'walt'
      ? i % 2
        ? 'west'
        : 'north'
      : regions[i % 3 === 1 ? 0 : i % 3 === 2 ? 2 : 0];
  const type = types[(i * 7) % 3];
  const status = statuses[(i * 5) % 3];
  const phone = `138${String(10000000 + i * 7919).slice(0, 8)}`;
  const email = `contact${id}@${names[i].toLowerCase().replace(/ /g, '')}.example.com`;
  const idn = `110101${1970 + (i % 30)}0${(i % 9) + 1}1${String(i).padStart(2, '0')}${i % 10}`;
  rows.push({
    id,
    name: `${names[i]} ${['Ltd', 'Co', 'Group', 'Inc'][i % 4]}`,
    owner,
    region,
    type,
    status,
    pool,
    phone,
    email,
    idn,
    address: `${i + 1} ${['Nanjing Rd', 'Huaihai Rd', 'Changan Ave', 'Zhongshan Rd'][i % 4]}`,
  });
}
const q = (v) =>
  v === null ? 'NULL' : typeof v === 'boolean' ? String(v) : `'${String(v).replace(/'/g, "''")}'`;
let out = `-- The reference CRM's seed data (SCENARIO.md). Run as a superuser after pgwarden apply.
-- People, units, jobs, shares and grants go through pgwarden's functions, as an admin would.
-- psql: psql --single-transaction -v ON_ERROR_STOP=1 -f examples/crm/seed.sql

SELECT pgwarden.add_unit('hq');
SELECT pgwarden.add_unit('sales', 'hq');
SELECT pgwarden.add_unit('sales_east', 'sales');
SELECT pgwarden.add_unit('sales_west', 'sales');
SELECT pgwarden.add_unit('support', 'hq');
SELECT pgwarden.add_unit('finance', 'hq');
SELECT pgwarden.add_unit('marketing', 'hq');

SELECT pgwarden.add_person('alice', 'sales_east', ARRAY['sales_rep']);
SELECT pgwarden.add_person('bob', 'sales_east', ARRAY['sales_rep']);
SELECT pgwarden.add_person('pat', 'sales_east', ARRAY['sales_rep']);
SELECT pgwarden.add_person('carol', 'sales_east', ARRAY['sales_manager']);
SELECT pgwarden.add_person('dave', 'sales_west', ARRAY['sales_rep']);
SELECT pgwarden.add_person('walt', 'sales_west', ARRAY['sales_manager']);
SELECT pgwarden.add_person('vera', 'sales', ARRAY['sales_director']);
SELECT pgwarden.add_person('erin', 'support', ARRAY['support_agent']);
SELECT pgwarden.add_person('fiona', 'finance', ARRAY['finance']);
SELECT pgwarden.add_person('mark', 'marketing', ARRAY['marketing']);
SELECT pgwarden.add_person('tom', 'marketing');
SELECT pgwarden.add_person('olga', 'hq', ARRAY['compliance_officer']);
SELECT pgwarden.add_person('adam', 'hq', ARRAY['crm_admin']);
SELECT pgwarden.add_person('audrey', 'hq', ARRAY['auditor']);

SELECT pgwarden.set_manager('carol', 'sales_east');
SELECT pgwarden.set_manager('walt', 'sales_west');
SELECT pgwarden.set_manager('vera', 'sales');

INSERT INTO crm.customers (id, name, owner, region, customer_type, status, in_pool, phone, email, id_number, address) VALUES
`;
out += `${rows
  .map(
    (r) =>
      `  (${r.id}, ${q(r.name)}, ${q(r.owner)}, ${q(r.region)}, ${q(r.type)}, ${q(r.status)}, ${r.pool}, ${q(r.phone)}, ${q(r.email)}, ${q(r.idn)}, ${q(r.address)})`,
  )
  .join(',\n')};\n`;
out += `SELECT pg_catalog.setval(pg_catalog.pg_get_serial_sequence('crm.customers', 'id'), 1000);\n\n`;
const contacts = [];
let cid = 0;
for (const r of rows) {
  for (let k = 0; k < (r.id % 3 === 0 ? 2 : 1); k++) {
    cid++;
    contacts.push(
      `  (${cid}, ${r.id}, ${q(['Li Wei', 'Wang Fang', 'Zhang Min', 'Chen Jie', 'Liu Yang'][cid % 5])}, ${q(['CEO', 'CTO', 'Buyer', 'CFO'][cid % 4])}, ${q(`139${String(20000000 + cid * 104729).slice(0, 8)}`)}, ${q(`person${cid}@example.com`)})`,
    );
  }
}
out += `INSERT INTO crm.contacts (id, customer_id, name, title, phone, email) VALUES\n${contacts.join(',\n')};\n`;
out += `SELECT pg_catalog.setval(pg_catalog.pg_get_serial_sequence('crm.contacts', 'id'), 1000);\n\n`;
const deals = [];
let did = 0;
for (const r of rows) {
  if (r.id % 2 === 1 || r.pool) continue;
  did++;
  deals.push(
    `  (${did}, ${r.id}, ${q(r.owner)}, ${q(`Deal ${did}`)}, ${q(['prospect', 'proposal', 'won', 'lost'][did % 4])}, ${(did * 1234.5).toFixed(2)})`,
  );
}
out += `INSERT INTO crm.deals (id, customer_id, owner, title, stage, amount) VALUES\n${deals.join(',\n')};\n`;
out += `SELECT pg_catalog.setval(pg_catalog.pg_get_serial_sequence('crm.deals', 'id'), 1000);\n\n`;
const contracts = [];
let kid = 0;
for (const r of rows) {
  if (r.id % 3 !== 1) continue;
  kid++;
  contracts.push(
    `  (${kid}, ${r.id}, ${(kid * 10000 + 0.5).toFixed(2)}, DATE '2026-0${(kid % 9) + 1}-15', ${q(`Standard terms v${(kid % 3) + 1}`)})`,
  );
}
out += `INSERT INTO crm.contracts (id, customer_id, amount, signed_on, terms) VALUES\n${contracts.join(',\n')};\n`;
out += `SELECT pg_catalog.setval(pg_catalog.pg_get_serial_sequence('crm.contracts', 'id'), 1000);\n\n`;
// shares: alice's customer 1 shared with bob (no end); dave's customer shared with alice for 7 days
const daveRow = rows.find((r) => r.owner === 'dave');
out += `-- record shares: alice shares customer 1 with bob; dave shares customer ${daveRow.id} with alice for a week
SELECT pgwarden.share('customers', '1', 'bob');
SELECT pgwarden.share('customers', '${daveRow.id}', 'alice', now() + interval '7 days');

-- tom's temporary grant "double11": east retail customers, read-only, for 30 days
SELECT pgwarden.grant_access('tom', 'customers', '{"region": ["east"], "customer_type": ["retail"]}', now() + interval '30 days', 'select', 'double11');
`;
process.stdout.write(out);
