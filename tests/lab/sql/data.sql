-- data.sql: fills a customer database created from schema.sql, set-based
-- (generate_series), sized by :scale. Run by tests/lab/seed as
--   psql -v scale=1 -v kind=source|sandbox -f data.sql
-- kind=source: cust1001, the production customer "Acme Industries AS".
-- kind=sandbox: sbx2001, an older production sandbox of it: smaller,
-- different data, addresses already rewritten to @mailinator.com.
-- Helper functions live in pg_temp: nothing of them stays in the database.
\set ON_ERROR_STOP on
\set QUIET on

SELECT :'kind' = 'sandbox' AS is_sandbox,
       CASE WHEN :'kind' = 'sandbox' THEN 0.05 ELSE 1 END * :scale AS f \gset
SELECT greatest(3,    (10000  * :f)::int) AS ncompany,
       greatest(10,   (100000 * :f)::int) AS nperson,
       greatest(10,   (150    * :f)::int) AS nassociate,
       greatest(10,   (400    * :f)::int) AS ntask,
       greatest(10,   (500000 * :f)::int) AS nappointment,
       greatest(5,    (15000  * :f)::int) AS ndocument \gset

CREATE FUNCTION pg_temp.first_name(i bigint) RETURNS text IMMUTABLE LANGUAGE sql AS $$
  SELECT (ARRAY['anna','ole','kari','per','ingrid','lars','nina','erik','sofie','jonas','maria','henrik',
                'emma','thomas','ida','magnus','sara','andreas','linn','kristian'])[1 + (i % 20)::int] $$;
CREATE FUNCTION pg_temp.last_name(i bigint) RETURNS text IMMUTABLE LANGUAGE sql AS $$
  SELECT (ARRAY['hansen','johansen','olsen','larsen','andersen','pedersen','nilsen','kristiansen','jensen',
                'karlsen','johnsen','pettersen','eriksen','berg','haugen','hagen','johannessen','andreassen',
                'jacobsen','dahl','jorgensen','halvorsen','henriksen','lund','sorensen'])[1 + ((i / 20) % 25)::int] $$;
CREATE FUNCTION pg_temp.company_name(c bigint) RETURNS text IMMUTABLE LANGUAGE sql AS $$
  SELECT (ARRAY['Nordic','Fjord','Polar','Viking','Aurora','Granite','Harbor','Birch','Summit','Coastal',
                'Midnight','Glacier'])[1 + (c % 12)::int] || ' ' ||
         (ARRAY['Logistics','Consulting','Foods','Energy','Marine','Software','Retail','Health','Media',
                'Build'])[1 + ((c / 12) % 10)::int] || ' ' || (ARRAY['AS','AB','Oy','ApS','Ltd'])[1 + (c % 5)::int] $$;
CREATE FUNCTION pg_temp.domain(c bigint) RETURNS text IMMUTABLE LANGUAGE sql AS $$
  SELECT lower(split_part(pg_temp.company_name(c), ' ', 1)) || '-' || lower(split_part(pg_temp.company_name(c), ' ', 2))
         || c || (ARRAY['.no','.com','.se','.co.uk','.dk'])[1 + (c % 5)::int] $$;
-- Every shape of address the rewrite must handle: mixed case, plus
-- addressing, (deep) subdomains, upper-case domains, free-mail domains.
CREATE FUNCTION pg_temp.email(i bigint, dom text) RETURNS text IMMUTABLE LANGUAGE sql AS $$
  SELECT CASE i % 9
    WHEN 0 THEN pg_temp.first_name(i) || '.' || pg_temp.last_name(i) || '@' || dom
    WHEN 1 THEN initcap(pg_temp.first_name(i)) || '.' || initcap(pg_temp.last_name(i)) || '@' || dom
    WHEN 2 THEN pg_temp.first_name(i) || '+crm@' || dom
    WHEN 3 THEN pg_temp.first_name(i) || '.' || pg_temp.last_name(i) || '@mail.' || dom
    WHEN 4 THEN upper(pg_temp.first_name(i)) || '@' || upper(dom)
    WHEN 5 THEN left(pg_temp.first_name(i), 1) || pg_temp.last_name(i) || i || '@sales.eu.' || dom
    WHEN 6 THEN pg_temp.first_name(i) || '_' || pg_temp.last_name(i) || '@' || initcap(dom)
    WHEN 7 THEN pg_temp.first_name(i) || '.' || pg_temp.last_name(i) || i || '@gmail.com'
    ELSE pg_temp.last_name(i) || '.' || pg_temp.first_name(i) || '+' || (i % 97) || '@' || dom END $$;
-- The old sandbox's addresses were rewritten by an earlier clone (same rule
-- as mail.sandbox_address: split at the last @, domain lower-cased).
CREATE FUNCTION pg_temp.sandboxed(a text) RETURNS text IMMUTABLE LANGUAGE sql AS $$
  SELECT CASE WHEN a IS NULL OR strpos(a, '@') = 0 THEN a
              WHEN lower(right(a, strpos(reverse(a), '@') - 1)) = 'mailinator.com' THEN a
              ELSE left(a, length(a) - strpos(reverse(a), '@')) || '_' ||
                   lower(right(a, strpos(reverse(a), '@') - 1)) || '@mailinator.com' END $$;

BEGIN;

-- Names and domains once per company; everything else joins to it.
CREATE TEMP TABLE dom AS
SELECT c, pg_temp.company_name(c) AS name, pg_temp.domain(c) AS d FROM generate_series(2, :ncompany) c;
ALTER TABLE dom ADD PRIMARY KEY (c);

INSERT INTO company (id, name, org_no, is_own, email, phone, address, notes, created_at)
SELECT c, name, (900000000 + c * 7)::text, false,
       CASE WHEN c % 4 = 0 THEN 'Post@' || upper(d) ELSE 'post@' || d END,
       '+47 ' || (20000000 + c * 13),
       'Storgata ' || (c % 120 + 1) || ', ' || (1000 + c % 8000) || ' Oslo; invoices to faktura+' || c || '@' || d,
       CASE WHEN c % 3 = 0 THEN 'Key account. Escalate to ' || pg_temp.email(c * 7, d) || ' (CEO) or ' ||
                                pg_temp.email(c * 7 + 3, d) ELSE 'Regular customer since ' || (1995 + c % 28) END,
       now() - (c % 3000) * interval '1 day'
FROM dom;

INSERT INTO person (company_id, first_name, last_name, email, email2, title, phone, notes, created_at)
SELECT c, initcap(pg_temp.first_name(i)), initcap(pg_temp.last_name(i)),
       pg_temp.email(i, d),
       CASE i % 11 WHEN 0 THEN pg_temp.first_name(i) || '.' || pg_temp.last_name(i) || '@Hotmail.COM'
                   WHEN 1 THEN 'n/a' WHEN 2 THEN '' ELSE NULL END,
       (ARRAY['CEO','CFO','Sales manager','Buyer','Consultant','Engineer','Controller'])[1 + i % 7],
       '+47 9' || lpad((i % 10000000)::text, 7, '0'),
       CASE WHEN i % 5 = 0 THEN 'Prefers mail to ' || pg_temp.email(i + 1, d) ||
                                '; assistant: ' || upper(pg_temp.first_name(i + 3)) || '@' || d
            WHEN i % 5 = 1 THEN 'Met at the fair. No email yet.' ELSE NULL END,
       now() - (i % 2000) * interval '1 day'
FROM generate_series(1, :nperson) i JOIN dom ON dom.c = 2 + i % (:ncompany - 1)
ORDER BY i;

\if :is_sandbox
  INSERT INTO company (id, name, org_no, is_own, email, phone, address, notes)
  VALUES (1, 'TEST Acme Industries AS', '913 456 781', true, 'post@acme-industries.com', '+47 22 00 10 01',
          'Industriveien 1, 0484 Oslo', 'Production sandbox of cust1001 (cloned 2023-05-10)');
  INSERT INTO license (serial_number, owner_company, edition, seats, valid_to, modules)
  VALUES ('TEST-2001-0001', 'TEST Acme Industries AS', 'Sandbox', 10, '2024-05-10', '{crm,sale,service}');
\else
  INSERT INTO company (id, name, org_no, is_own, email, phone, address, notes)
  VALUES (1, 'Acme Industries AS', '913 456 781', true, 'post@acme-industries.com', '+47 22 00 10 01',
          'Industriveien 1, 0484 Oslo', 'Our own company. IT contact: it-support@Acme-Industries.com');
  INSERT INTO license (serial_number, owner_company, edition, seats, valid_to, modules)
  VALUES ('1001-4471-ACME', 'Acme Industries AS', 'Enterprise', 250, '2026-12-31', '{crm,sale,service,marketing,project}');
\endif
SELECT setval('company_id_seq', (SELECT max(id) FROM company)) AS company_seq \gset

-- Associates: the first five are the SuperID users u1..u5 of the emulator.
WITH staff(n, fn, ln, local, superid, role) AS (VALUES
  (1, 'Anna', 'Berg', 'anna.berg', 'u1', 'admin'), (2, 'Ole', 'Hansen', 'Ole.Hansen', 'u2', 'user'),
  (3, 'Kari', 'Nordmann', 'kari.nordmann+crm', 'u3', 'user'), (4, 'Per', 'Lie', 'per.lie', 'u4', 'user'),
  (5, 'Acme', 'Admin', 'admin', 'u5', 'admin')),
p AS (INSERT INTO person (company_id, first_name, last_name, email, title)
      SELECT 1, fn, ln, local || '@acme-industries.com', 'Employee' FROM staff ORDER BY n RETURNING id, email)
INSERT INTO associate (person_id, login, email, superid_user, role)
SELECT p.id, lower(split_part(s.local, '+', 1)), p.email, s.superid, s.role
FROM staff s JOIN p ON p.email = s.local || '@acme-industries.com';
INSERT INTO associate (person_id, login, email, superid_user, role, is_active)
SELECT i, 'user' || i, pg_temp.email(i, 'acme-industries.com'), NULL, 'user', i % 10 <> 0
FROM generate_series(6, :nassociate) i;

INSERT INTO system_user (name, kind, app_client_id) VALUES
  ('system', 'system', NULL), ('batch', 'system', NULL), ('webapi', 'system', NULL), ('replication', 'system', NULL);
\if :is_sandbox
  INSERT INTO app_authorization (app_id, client_id, app_name, system_user, authorized_by, scopes) VALUES
    ('a1', 'visma-sync', 'Visma Sync', 'app_visma_sync', 1, '{crm.read,crm.write}'),
    ('a4', 'legacy-fax', 'Legacy Fax', 'app_legacy_fax', 1, '{documents.read}');
  INSERT INTO mailbox (address, server, username, folder) VALUES
    ('support@sbx2001.sandbox.lab', 'imap://127.0.0.1:11143', 'mailadmin', 'Service/sbx2001/support'),
    ('test@sbx2001.sandbox.lab', 'imap://127.0.0.1:11143', 'mailadmin', 'Service/sbx2001/test');
\else
  INSERT INTO app_authorization (app_id, client_id, app_name, system_user, authorized_by, scopes) VALUES
    ('a1', 'visma-sync', 'Visma Sync', 'app_visma_sync', 1, '{crm.read,crm.write}'),
    ('a2', 'mailchimp-connector', 'Mailchimp Connector', 'app_mailchimp', 1, '{crm.read,marketing.write}'),
    ('a3', 'calendar-bridge', 'Calendar Bridge', NULL, 2, '{appointments.write}');
  INSERT INTO mailbox (address, server, username, folder) VALUES
    ('support@acme-industries.com', 'imaps://mail.acme-industries.com:993', 'support', 'INBOX'),
    ('sales@acme-industries.com', 'imaps://mail.acme-industries.com:993', 'sales', 'INBOX'),
    ('invoices@acme-industries.com', 'imaps://mail.acme-industries.com:993', 'invoices', 'INBOX');
\endif
INSERT INTO system_user (name, kind, app_client_id)
SELECT system_user, 'partner', client_id FROM app_authorization WHERE system_user IS NOT NULL;
INSERT INTO mail_route (address, mailbox_id, destination)
SELECT address, id, 'mailbox:' || id FROM mailbox;

INSERT INTO scheduled_task (name, kind, cron, enabled, owner_id, notify_email, last_run_at)
SELECT (ARRAY['Send newsletter','Sync ERP','Reminder mails','Clean up','Invoice run','Report export'])[1 + i % 6] || ' #' || i,
       (ARRAY['mailing','integration','reminder','maintenance','invoice','report'])[1 + i % 6],
       (i % 60) || ' ' || (i % 24) || ' * * *', i % 7 <> 0, 1 + i % 5,
       CASE WHEN i % 2 = 0 THEN pg_temp.email(i, 'acme-industries.com') END,
       now() - (i % 48) * interval '1 hour'
FROM generate_series(1, :ntask) i;

INSERT INTO appointment (company_id, person_id, associate_id, starts_at, ends_at, subject, location, description, attendees)
SELECT p.company_id, p.id, 1 + i % 5,
       timestamptz '2020-01-01' + (i % 200000) * interval '13 minutes',
       timestamptz '2020-01-01' + (i % 200000) * interval '13 minutes' + interval '45 minutes',
       (ARRAY['Follow-up','Demo','Contract review','Kick-off','Quarterly review','Lunch'])[1 + i % 6] || ' with ' || c.name,
       (ARRAY['Teams','Their office','Our office','Phone'])[1 + i % 4],
       CASE WHEN i % 3 = 0 THEN 'Agenda sent to ' || p.email || '. Minutes go to ' || coalesce(q.email, 'nobody') || '.'
            ELSE 'Discuss the offer and next steps.' END,
       p.first_name || ' <' || p.email || '>, ' || q.first_name || ' <' || q.email || '>, Anna Berg <anna.berg@acme-industries.com>'
FROM generate_series(1, :nappointment) i
JOIN person p ON p.id = (1 + (i::bigint * 7919) % :nperson)::int
JOIN person q ON q.id = (1 + (i::bigint * 7919 + 9) % :nperson)::int
JOIN company c ON c.id = p.company_id;

INSERT INTO document (company_id, person_id, name, mime_type, sent_to, body, created_at)
SELECT p.company_id, p.id, 'Offer ' || i || '.pdf', 'application/pdf', p.email,
       decode(repeat(md5(i::text) || md5((i * 31)::text), 64 * (1 + i % 4)), 'hex'),
       now() - (i % 1000) * interval '1 day'
FROM generate_series(1, :ndocument) i
JOIN person p ON p.id = (1 + (i::bigint * 104729) % :nperson)::int;

\if :is_sandbox
  UPDATE company SET email = pg_temp.sandboxed(email);
  UPDATE person SET email = pg_temp.sandboxed(email), email2 = pg_temp.sandboxed(email2);
  UPDATE associate SET email = pg_temp.sandboxed(email);
  UPDATE scheduled_task SET enabled = false;
\endif

COMMIT;
ANALYZE;
