-- The reference CRM's seed data (SCENARIO.md). Run as a superuser after pgwarden apply.
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
  (1, 'Acme Ltd', 'alice', 'east', 'enterprise', 'lead', false, '13810000000', 'contact1@acme.example.com', '1101011970011000', '1 Nanjing Rd'),
  (2, 'Globex Co', 'alice', 'east', 'retail', 'churned', false, '13810007919', 'contact2@globex.example.com', '1101011971021011', '2 Huaihai Rd'),
  (3, 'Initech Group', 'alice', 'north', 'vip', 'active', false, '13810015838', 'contact3@initech.example.com', '1101011972031022', '3 Changan Ave'),
  (4, 'Umbrella Inc', 'alice', 'east', 'enterprise', 'lead', false, '13810023757', 'contact4@umbrella.example.com', '1101011973041033', '4 Zhongshan Rd'),
  (5, 'Hooli Ltd', 'alice', 'east', 'retail', 'churned', false, '13810031676', 'contact5@hooli.example.com', '1101011974051044', '5 Nanjing Rd'),
  (6, 'Vandelay Co', 'alice', 'north', 'vip', 'active', false, '13810039595', 'contact6@vandelay.example.com', '1101011975061055', '6 Huaihai Rd'),
  (7, 'Stark Group', 'alice', 'east', 'enterprise', 'lead', false, '13810047514', 'contact7@stark.example.com', '1101011976071066', '7 Changan Ave'),
  (8, 'Wayne Inc', 'alice', 'east', 'retail', 'churned', false, '13810055433', 'contact8@wayne.example.com', '1101011977081077', '8 Zhongshan Rd'),
  (9, 'Wonka Ltd', 'bob', 'north', 'vip', 'active', false, '13810063352', 'contact9@wonka.example.com', '1101011978091088', '9 Nanjing Rd'),
  (10, 'Tyrell Co', 'bob', 'east', 'enterprise', 'lead', false, '13810071271', 'contact10@tyrell.example.com', '1101011979011099', '10 Huaihai Rd'),
  (11, 'Cyberdyne Group', 'bob', 'east', 'retail', 'churned', false, '13810079190', 'contact11@cyberdyne.example.com', '1101011980021100', '11 Changan Ave'),
  (12, 'Soylent Inc', 'bob', 'north', 'vip', 'active', false, '13810087109', 'contact12@soylent.example.com', '1101011981031111', '12 Zhongshan Rd'),
  (13, 'Oscorp Ltd', 'bob', 'east', 'enterprise', 'lead', false, '13810095028', 'contact13@oscorp.example.com', '1101011982041122', '13 Nanjing Rd'),
  (14, 'Gringotts Co', 'bob', 'east', 'retail', 'churned', false, '13810102947', 'contact14@gringotts.example.com', '1101011983051133', '14 Huaihai Rd'),
  (15, 'Monarch Group', 'pat', 'north', 'vip', 'active', false, '13810110866', 'contact15@monarch.example.com', '1101011984061144', '15 Changan Ave'),
  (16, 'Aperture Inc', 'pat', 'east', 'enterprise', 'lead', false, '13810118785', 'contact16@aperture.example.com', '1101011985071155', '16 Zhongshan Rd'),
  (17, 'Black Mesa Ltd', 'pat', 'east', 'retail', 'churned', false, '13810126704', 'contact17@blackmesa.example.com', '1101011986081166', '17 Nanjing Rd'),
  (18, 'Blue Sun Co', 'pat', 'north', 'vip', 'active', false, '13810134623', 'contact18@bluesun.example.com', '1101011987091177', '18 Huaihai Rd'),
  (19, 'Duff Group', 'dave', 'north', 'enterprise', 'lead', false, '13810142542', 'contact19@duff.example.com', '1101011988011188', '19 Changan Ave'),
  (20, 'Gekko Inc', 'dave', 'west', 'retail', 'churned', false, '13810150461', 'contact20@gekko.example.com', '1101011989021199', '20 Zhongshan Rd'),
  (21, 'Krusty Ltd', 'dave', 'north', 'vip', 'active', false, '13810158380', 'contact21@krusty.example.com', '1101011990031200', '21 Nanjing Rd'),
  (22, 'Massive Dynamic Co', 'dave', 'west', 'enterprise', 'lead', false, '13810166299', 'contact22@massivedynamic.example.com', '1101011991041211', '22 Huaihai Rd'),
  (23, 'Nakatomi Group', 'dave', 'north', 'retail', 'churned', false, '13810174218', 'contact23@nakatomi.example.com', '1101011992051222', '23 Changan Ave'),
  (24, 'Ollivander Inc', 'dave', 'west', 'vip', 'active', false, '13810182137', 'contact24@ollivander.example.com', '1101011993061233', '24 Zhongshan Rd'),
  (25, 'Pied Piper Ltd', 'dave', 'north', 'enterprise', 'lead', false, '13810190056', 'contact25@piedpiper.example.com', '1101011994071244', '25 Nanjing Rd'),
  (26, 'Prestige Co', 'carol', 'east', 'retail', 'churned', false, '13810197975', 'contact26@prestige.example.com', '1101011995081255', '26 Huaihai Rd'),
  (27, 'Sirius Group', 'walt', 'north', 'vip', 'active', false, '13810205894', 'contact27@sirius.example.com', '1101011996091266', '27 Changan Ave'),
  (28, 'Spacely Inc', 'vera', 'east', 'enterprise', 'lead', false, '13810213813', 'contact28@spacely.example.com', '1101011997011277', '28 Zhongshan Rd'),
  (29, 'Virtucon Ltd', 'alice', 'east', 'retail', 'churned', false, '13810221732', 'contact29@virtucon.example.com', '1101011998021288', '29 Nanjing Rd'),
  (30, 'Weyland Co', 'alice', 'north', 'vip', 'active', false, '13810229651', 'contact30@weyland.example.com', '1101011999031299', '30 Huaihai Rd'),
  (31, 'Yoyodyne Group', 'alice', 'east', 'enterprise', 'lead', false, '13810237570', 'contact31@yoyodyne.example.com', '1101011970041300', '31 Changan Ave'),
  (32, 'Zorg Inc', 'alice', 'east', 'retail', 'churned', false, '13810245489', 'contact32@zorg.example.com', '1101011971051311', '32 Zhongshan Rd'),
  (33, 'Bluth Ltd', 'alice', 'north', 'vip', 'active', false, '13810253408', 'contact33@bluth.example.com', '1101011972061322', '33 Nanjing Rd'),
  (34, 'Dunder Co', 'alice', 'east', 'enterprise', 'lead', false, '13810261327', 'contact34@dunder.example.com', '1101011973071333', '34 Huaihai Rd'),
  (35, 'Kramerica Group', 'alice', 'east', 'retail', 'churned', false, '13810269246', 'contact35@kramerica.example.com', '1101011974081344', '35 Changan Ave'),
  (36, 'Los Pollos Inc', 'alice', 'north', 'vip', 'active', false, '13810277165', 'contact36@lospollos.example.com', '1101011975091355', '36 Zhongshan Rd'),
  (37, 'Mooby Ltd', NULL, 'east', 'enterprise', 'lead', true, '13810285084', 'contact37@mooby.example.com', '1101011976011366', '37 Nanjing Rd'),
  (38, 'Nuka Co', NULL, 'east', 'retail', 'churned', true, '13810293003', 'contact38@nuka.example.com', '1101011977021377', '38 Huaihai Rd'),
  (39, 'Omni Group', NULL, 'north', 'vip', 'active', true, '13810300922', 'contact39@omni.example.com', '1101011978031388', '39 Changan Ave'),
  (40, 'Planet Express Inc', NULL, 'east', 'enterprise', 'lead', true, '13810308841', 'contact40@planetexpress.example.com', '1101011979041399', '40 Zhongshan Rd'),
  (41, 'Quark Ltd', NULL, 'east', 'retail', 'churned', true, '13810316760', 'contact41@quark.example.com', '1101011980051400', '41 Nanjing Rd'),
  (42, 'Rekall Co', NULL, 'north', 'vip', 'active', true, '13810324679', 'contact42@rekall.example.com', '1101011981061411', '42 Huaihai Rd'),
  (43, 'Sterling Group', NULL, 'east', 'enterprise', 'lead', true, '13810332598', 'contact43@sterling.example.com', '1101011982071422', '43 Changan Ave'),
  (44, 'Tessier Inc', NULL, 'east', 'retail', 'churned', true, '13810340517', 'contact44@tessier.example.com', '1101011983081433', '44 Zhongshan Rd');
SELECT pg_catalog.setval(pg_catalog.pg_get_serial_sequence('crm.customers', 'id'), 1000);

INSERT INTO crm.contacts (id, customer_id, name, title, phone, email) VALUES
  (1, 1, 'Wang Fang', 'CTO', '13920104729', 'person1@example.com'),
  (2, 2, 'Zhang Min', 'Buyer', '13920209458', 'person2@example.com'),
  (3, 3, 'Chen Jie', 'CFO', '13920314187', 'person3@example.com'),
  (4, 3, 'Liu Yang', 'CEO', '13920418916', 'person4@example.com'),
  (5, 4, 'Li Wei', 'CTO', '13920523645', 'person5@example.com'),
  (6, 5, 'Wang Fang', 'Buyer', '13920628374', 'person6@example.com'),
  (7, 6, 'Zhang Min', 'CFO', '13920733103', 'person7@example.com'),
  (8, 6, 'Chen Jie', 'CEO', '13920837832', 'person8@example.com'),
  (9, 7, 'Liu Yang', 'CTO', '13920942561', 'person9@example.com'),
  (10, 8, 'Li Wei', 'Buyer', '13921047290', 'person10@example.com'),
  (11, 9, 'Wang Fang', 'CFO', '13921152019', 'person11@example.com'),
  (12, 9, 'Zhang Min', 'CEO', '13921256748', 'person12@example.com'),
  (13, 10, 'Chen Jie', 'CTO', '13921361477', 'person13@example.com'),
  (14, 11, 'Liu Yang', 'Buyer', '13921466206', 'person14@example.com'),
  (15, 12, 'Li Wei', 'CFO', '13921570935', 'person15@example.com'),
  (16, 12, 'Wang Fang', 'CEO', '13921675664', 'person16@example.com'),
  (17, 13, 'Zhang Min', 'CTO', '13921780393', 'person17@example.com'),
  (18, 14, 'Chen Jie', 'Buyer', '13921885122', 'person18@example.com'),
  (19, 15, 'Liu Yang', 'CFO', '13921989851', 'person19@example.com'),
  (20, 15, 'Li Wei', 'CEO', '13922094580', 'person20@example.com'),
  (21, 16, 'Wang Fang', 'CTO', '13922199309', 'person21@example.com'),
  (22, 17, 'Zhang Min', 'Buyer', '13922304038', 'person22@example.com'),
  (23, 18, 'Chen Jie', 'CFO', '13922408767', 'person23@example.com'),
  (24, 18, 'Liu Yang', 'CEO', '13922513496', 'person24@example.com'),
  (25, 19, 'Li Wei', 'CTO', '13922618225', 'person25@example.com'),
  (26, 20, 'Wang Fang', 'Buyer', '13922722954', 'person26@example.com'),
  (27, 21, 'Zhang Min', 'CFO', '13922827683', 'person27@example.com'),
  (28, 21, 'Chen Jie', 'CEO', '13922932412', 'person28@example.com'),
  (29, 22, 'Liu Yang', 'CTO', '13923037141', 'person29@example.com'),
  (30, 23, 'Li Wei', 'Buyer', '13923141870', 'person30@example.com'),
  (31, 24, 'Wang Fang', 'CFO', '13923246599', 'person31@example.com'),
  (32, 24, 'Zhang Min', 'CEO', '13923351328', 'person32@example.com'),
  (33, 25, 'Chen Jie', 'CTO', '13923456057', 'person33@example.com'),
  (34, 26, 'Liu Yang', 'Buyer', '13923560786', 'person34@example.com'),
  (35, 27, 'Li Wei', 'CFO', '13923665515', 'person35@example.com'),
  (36, 27, 'Wang Fang', 'CEO', '13923770244', 'person36@example.com'),
  (37, 28, 'Zhang Min', 'CTO', '13923874973', 'person37@example.com'),
  (38, 29, 'Chen Jie', 'Buyer', '13923979702', 'person38@example.com'),
  (39, 30, 'Liu Yang', 'CFO', '13924084431', 'person39@example.com'),
  (40, 30, 'Li Wei', 'CEO', '13924189160', 'person40@example.com'),
  (41, 31, 'Wang Fang', 'CTO', '13924293889', 'person41@example.com'),
  (42, 32, 'Zhang Min', 'Buyer', '13924398618', 'person42@example.com'),
  (43, 33, 'Chen Jie', 'CFO', '13924503347', 'person43@example.com'),
  (44, 33, 'Liu Yang', 'CEO', '13924608076', 'person44@example.com'),
  (45, 34, 'Li Wei', 'CTO', '13924712805', 'person45@example.com'),
  (46, 35, 'Wang Fang', 'Buyer', '13924817534', 'person46@example.com'),
  (47, 36, 'Zhang Min', 'CFO', '13924922263', 'person47@example.com'),
  (48, 36, 'Chen Jie', 'CEO', '13925026992', 'person48@example.com'),
  (49, 37, 'Liu Yang', 'CTO', '13925131721', 'person49@example.com'),
  (50, 38, 'Li Wei', 'Buyer', '13925236450', 'person50@example.com'),
  (51, 39, 'Wang Fang', 'CFO', '13925341179', 'person51@example.com'),
  (52, 39, 'Zhang Min', 'CEO', '13925445908', 'person52@example.com'),
  (53, 40, 'Chen Jie', 'CTO', '13925550637', 'person53@example.com'),
  (54, 41, 'Liu Yang', 'Buyer', '13925655366', 'person54@example.com'),
  (55, 42, 'Li Wei', 'CFO', '13925760095', 'person55@example.com'),
  (56, 42, 'Wang Fang', 'CEO', '13925864824', 'person56@example.com'),
  (57, 43, 'Zhang Min', 'CTO', '13925969553', 'person57@example.com'),
  (58, 44, 'Chen Jie', 'Buyer', '13926074282', 'person58@example.com');
SELECT pg_catalog.setval(pg_catalog.pg_get_serial_sequence('crm.contacts', 'id'), 1000);

INSERT INTO crm.deals (id, customer_id, owner, title, stage, amount) VALUES
  (1, 2, 'alice', 'Deal 1', 'proposal', 1234.50),
  (2, 4, 'alice', 'Deal 2', 'won', 2469.00),
  (3, 6, 'alice', 'Deal 3', 'lost', 3703.50),
  (4, 8, 'alice', 'Deal 4', 'prospect', 4938.00),
  (5, 10, 'bob', 'Deal 5', 'proposal', 6172.50),
  (6, 12, 'bob', 'Deal 6', 'won', 7407.00),
  (7, 14, 'bob', 'Deal 7', 'lost', 8641.50),
  (8, 16, 'pat', 'Deal 8', 'prospect', 9876.00),
  (9, 18, 'pat', 'Deal 9', 'proposal', 11110.50),
  (10, 20, 'dave', 'Deal 10', 'won', 12345.00),
  (11, 22, 'dave', 'Deal 11', 'lost', 13579.50),
  (12, 24, 'dave', 'Deal 12', 'prospect', 14814.00),
  (13, 26, 'carol', 'Deal 13', 'proposal', 16048.50),
  (14, 28, 'vera', 'Deal 14', 'won', 17283.00),
  (15, 30, 'alice', 'Deal 15', 'lost', 18517.50),
  (16, 32, 'alice', 'Deal 16', 'prospect', 19752.00),
  (17, 34, 'alice', 'Deal 17', 'proposal', 20986.50),
  (18, 36, 'alice', 'Deal 18', 'won', 22221.00);
SELECT pg_catalog.setval(pg_catalog.pg_get_serial_sequence('crm.deals', 'id'), 1000);

INSERT INTO crm.contracts (id, customer_id, amount, signed_on, terms) VALUES
  (1, 1, 10000.50, DATE '2026-02-15', 'Standard terms v2'),
  (2, 4, 20000.50, DATE '2026-03-15', 'Standard terms v3'),
  (3, 7, 30000.50, DATE '2026-04-15', 'Standard terms v1'),
  (4, 10, 40000.50, DATE '2026-05-15', 'Standard terms v2'),
  (5, 13, 50000.50, DATE '2026-06-15', 'Standard terms v3'),
  (6, 16, 60000.50, DATE '2026-07-15', 'Standard terms v1'),
  (7, 19, 70000.50, DATE '2026-08-15', 'Standard terms v2'),
  (8, 22, 80000.50, DATE '2026-09-15', 'Standard terms v3'),
  (9, 25, 90000.50, DATE '2026-01-15', 'Standard terms v1'),
  (10, 28, 100000.50, DATE '2026-02-15', 'Standard terms v2'),
  (11, 31, 110000.50, DATE '2026-03-15', 'Standard terms v3'),
  (12, 34, 120000.50, DATE '2026-04-15', 'Standard terms v1'),
  (13, 37, 130000.50, DATE '2026-05-15', 'Standard terms v2'),
  (14, 40, 140000.50, DATE '2026-06-15', 'Standard terms v3'),
  (15, 43, 150000.50, DATE '2026-07-15', 'Standard terms v1');
SELECT pg_catalog.setval(pg_catalog.pg_get_serial_sequence('crm.contracts', 'id'), 1000);

-- record shares: alice shares customer 1 with bob; dave shares customer 19 with alice for a week
SELECT pgwarden.share('customers', '1', 'bob');
SELECT pgwarden.share('customers', '19', 'alice', now() + interval '7 days');

-- tom's temporary grant "double11": east retail customers, read-only, for 30 days
SELECT pgwarden.grant_access('tom', 'customers', '{"region": ["east"], "customer_type": ["retail"]}', now() + interval '30 days', 'select', 'double11');
