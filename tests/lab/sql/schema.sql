-- schema.sql: the CRM schema of a customer database, the same on the source
-- (cust1001) and the sandbox (sbx2001). Loaded by tests/lab/seed with psql.
-- Email addresses live in dedicated columns (person.email, company.email,
-- associate.email, mailbox.address, ...) and also inside free text
-- (notes, descriptions, attendee lists), as in the real product.
-- Foreign keys and indexes are in constraints.sql, added after the data
-- (as pg_dump orders it), which keeps seeding fast.

CREATE TABLE company (
  id          serial PRIMARY KEY,
  name        text NOT NULL,
  org_no      text,
  is_own      boolean NOT NULL DEFAULT false,  -- the customer's own company (license holder)
  email       text,
  phone       text,
  address     text,                             -- postal address, may contain a contact email
  notes       text,
  created_at  timestamptz NOT NULL DEFAULT now(),
  updated_at  timestamptz
);

CREATE TABLE person (
  id          serial PRIMARY KEY,
  company_id  integer,
  first_name  text NOT NULL,
  last_name   text NOT NULL,
  email       text,
  email2      text,
  title       text,
  phone       text,
  notes       text,
  created_at  timestamptz NOT NULL DEFAULT now()
);

-- Users of the CRM (people who log in); linked to SuperID users.
CREATE TABLE associate (
  id            serial PRIMARY KEY,
  person_id     integer,
  login         text NOT NULL UNIQUE,
  email         text,
  superid_user  text,                           -- SuperID user id (emulator: u1..u5)
  role          text NOT NULL DEFAULT 'user',
  is_active     boolean NOT NULL DEFAULT true
);

-- Logins used by the system itself and by partner apps (step 12, step 25).
CREATE TABLE system_user (
  id             serial PRIMARY KEY,
  name           text NOT NULL UNIQUE,
  kind           text NOT NULL CHECK (kind IN ('system', 'partner')),
  app_client_id  text,                           -- partner apps: the app's client id
  associate_id   integer,
  created_at     timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE scheduled_task (
  id            serial PRIMARY KEY,
  name          text NOT NULL,
  kind          text NOT NULL,
  cron          text NOT NULL,
  enabled       boolean NOT NULL DEFAULT true,
  owner_id      integer,
  notify_email  text,
  last_run_at   timestamptz
);

CREATE TABLE license (
  id             serial PRIMARY KEY,
  serial_number  text NOT NULL,
  owner_company  text NOT NULL,
  edition        text NOT NULL,
  seats          integer NOT NULL,
  valid_to       date,
  modules        text[] NOT NULL DEFAULT '{}'
);

-- Mailboxes the Service module reads (step 17).
CREATE TABLE mailbox (
  id        serial PRIMARY KEY,
  address   text NOT NULL,
  server    text NOT NULL,                       -- imap://host:port
  username  text,
  folder    text NOT NULL DEFAULT 'INBOX',
  enabled   boolean NOT NULL DEFAULT true
);

CREATE TABLE mail_route (
  id          serial PRIMARY KEY,
  address     text NOT NULL,
  mailbox_id  integer,
  destination text NOT NULL
);

-- Partner apps authorized by this customer; app_id matches the emulator's
-- /apps ids (a1..a4).
CREATE TABLE app_authorization (
  id             serial PRIMARY KEY,
  app_id         text NOT NULL,
  client_id      text NOT NULL,
  app_name       text NOT NULL,
  system_user    text,                           -- NULL when the app uses no system user
  authorized_by  integer,
  scopes         text[] NOT NULL DEFAULT '{}',
  authorized_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE appointment (
  id            bigserial PRIMARY KEY,
  company_id    integer,
  person_id     integer,
  associate_id  integer,
  starts_at     timestamptz NOT NULL,
  ends_at       timestamptz NOT NULL,
  subject       text NOT NULL,
  location      text,
  description   text,
  attendees     text                             -- "Name <email>, Name <email>"
);

CREATE TABLE document (
  id          bigserial PRIMARY KEY,
  company_id  integer,
  person_id   integer,
  name        text NOT NULL,
  mime_type   text NOT NULL,
  sent_to     text,
  body        bytea NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT now()
);
-- Stored uncompressed, so the bytes on disk are the bytes a clone moves.
ALTER TABLE document ALTER COLUMN body SET STORAGE EXTERNAL;
