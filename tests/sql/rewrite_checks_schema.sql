-- rewrite_checks_schema.sql: the source of tests/sql/rewrite_checks.t:
-- CHECK constraints that production addresses pass and their rewrite
-- (to @mailinator.com) fails, or passes, or no sandbox address can pass.
SET client_min_messages = warning;
CREATE SCHEMA app;
-- a length check on a text column: fixed by the fallback
CREATE TABLE app.users (
  id int PRIMARY KEY CONSTRAINT users_id_positive CHECK (id > 0),
  email text UNIQUE CONSTRAINT users_email_len CHECK (length(email) <= 30),
  long_email text CONSTRAINT users_long_len CHECK (length(long_email) <= 40),
  name text CONSTRAINT users_name_set CHECK (name <> '')
);
INSERT INTO app.users VALUES
  (1, 'Per.Olsen@Kunde.NO', 'averyverylongname@company.no', 'Per'),
  (2, 'a@b.no', 'c@d.no', 'A'),
  (3, 'Kari.Nordmann@Kunde.NO', NULL, 'Kari'),
  (4, NULL, NULL, 'Nobody');
-- a pattern that the rewrite still matches: nothing changes
CREATE TABLE app.lower_mail (id int PRIMARY KEY,
  email text CONSTRAINT lower_mail_pattern CHECK (email ~ '^[a-z0-9._]+@[a-z0-9.-]+$'));
INSERT INTO app.lower_mail VALUES (1, 'per.olsen@kunde.no');
-- no underscore before the '@': the rewrite adds one
CREATE TABLE app.no_underscore (id int PRIMARY KEY,
  email text CONSTRAINT no_underscore_local CHECK (email NOT LIKE '%\_%@%'));
INSERT INTO app.no_underscore VALUES (1, 'per.olsen@kunde.no'), (2, 'kari@firma.no');
-- the production domain required: no sandbox address satisfies it
CREATE TABLE app.customer (id int PRIMARY KEY,
  email text CONSTRAINT customer_domain CHECK (email LIKE '%@kunde.no'));
INSERT INTO app.customer VALUES (1, 'ola@kunde.no'), (2, 'kari.nordmann@kunde.no');
-- a domain with a check
CREATE DOMAIN app.short_mail AS text CONSTRAINT short_mail_len CHECK (length(VALUE) <= 32);
CREATE TABLE app.contacts (id int PRIMARY KEY, email app.short_mail);
INSERT INTO app.contacts VALUES (1, 'Per.Olsen@Kunde.NO'), (2, 'x@y.no');
-- a check on a partitioned parent (its partitions inherit it)
CREATE TABLE app.events (id int, email text, CONSTRAINT events_len CHECK (length(email) <= 30))
  PARTITION BY RANGE (id);
CREATE TABLE app.events_1 PARTITION OF app.events FOR VALUES FROM (0) TO (100);
CREATE TABLE app.events_2 PARTITION OF app.events FOR VALUES FROM (100) TO (200);
INSERT INTO app.events VALUES (1, 'Per.Olsen@Kunde.NO'), (150, 'Kari.Nordmann@Kunde.NO'), (151, 'a@b.no');
-- legacy inheritance, the check defined in the child too (merged)
CREATE TABLE app.base (id int, email text, CONSTRAINT base_len CHECK (length(email) <= 30));
CREATE TABLE app.derived (CONSTRAINT base_len CHECK (length(email) <= 30)) INHERITS (app.base);
INSERT INTO app.base VALUES (1, 'Per.Olsen@Kunde.NO');
INSERT INTO app.derived VALUES (2, 'Kari.Nordmann@Kunde.NO');
-- a check calling a function of public (its text must be read qualified)
CREATE FUNCTION public.short_enough(t text) RETURNS boolean LANGUAGE sql IMMUTABLE
  AS $$ SELECT length(t) <= 30 $$;
CREATE TABLE app.fn_check (id int PRIMARY KEY, email text CONSTRAINT fn_check_len CHECK (short_enough(email)));
INSERT INTO app.fn_check VALUES (1, 'Per.Olsen@Kunde.NO');
