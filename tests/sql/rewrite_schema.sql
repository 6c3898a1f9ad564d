-- rewrite_schema.sql: the source of tests/sql/rewrite.t: every text-bearing
-- type holding production addresses, and the 1M-value property set.
CREATE EXTENSION citext;
CREATE SCHEMA crm;
CREATE DOMAIN crm.mailaddr AS varchar(40) CHECK (VALUE LIKE '%@%');
CREATE TYPE crm.mood AS ENUM ('calm', 'busy');
CREATE TYPE crm.contact AS (name text, mail varchar(60), tags text[], n int, mood crm.mood);
CREATE TABLE crm.person (
  id int PRIMARY KEY,
  email text,
  notes text,
  short_email varchar(30) UNIQUE,
  long_email varchar(40),
  padded char(40),
  ci citext,
  dom crm.mailaddr,
  cc text[],
  grid varchar(50)[][],
  j json,
  extra jsonb,
  contact crm.contact,
  contacts crm.contact[],
  moods crm.mood[],
  secret text,
  token text,
  motto text,
  kept text
);
INSERT INTO crm.person VALUES
 (1, 'Per.Olsen@Kunde.NO', 'ring kari@firma.no or Ole@X.no.', 'a.very.long.name@company.no',
  'averyverylongname@company.example.com',
  'kari@firma.no', 'CI.User@Example.COM', 'dom@Kunde.no', '{ola@nordmann.no,x@y.com}',
  '{{a@b.no,"c d@e.no"},{NULL,f@g.no}}', '{"to": "J@Json.NO", "k\u0040x.no": ["esc\u0040aped.no", 1]}',
  '{"contact": {"mail": "Per.Olsen@Kunde.NO"}, "notes": "ring kari@firma.no", "kari@keys.no": true}',
  ROW('Ann', 'Ann@Comp.NO', '{t@tags.no}', 7, 'busy'),
  ARRAY[ROW('Bo', 'bo@x.no', NULL, 1, 'calm')::crm.contact, NULL],
  '{calm,busy}', 'top secret', 'tok', 'm', 'keep@me.no'),
 (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
 (3, 'already_x.no@mailinator.com', 'nothing here', 'a@b.no', 'c@d.no', '', '', 'x@mailinator.com', '{}',
  '{}', '[]', '{}', ROW(NULL, NULL, NULL, NULL, NULL), '{}', '{}', '', '', '', '');
-- email_a and email_j: the value of email as an array element and a jsonb
-- string (whole-value addresses too: their names hold "email")
CREATE TABLE crm.vals (id int PRIMARY KEY, email text, v text, orig_email text, orig_v text,
  email_a text[], email_j jsonb);
