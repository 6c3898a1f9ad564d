-- roles.sql: the logins of one customer database, run by tests/lab/seed as
--   psql -d DB -v db=DB -v password=... -f roles.sql
-- DB_app   LOGIN: the application's login (steps 7 and 10 create/grant it)
-- DB_query LOGIN: read-only "customer query" login (step 18 grants it)
-- Roles are cluster-wide: they outlive DROP DATABASE, as SQL Server logins do.
\set ON_ERROR_STOP on
\set QUIET on
SELECT format('CREATE ROLE %I LOGIN PASSWORD %L', :'db' || '_app', :'password')
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'db' || '_app') \gexec
SELECT format('CREATE ROLE %I LOGIN PASSWORD %L', :'db' || '_query', :'password')
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'db' || '_query') \gexec
SELECT format('GRANT CONNECT ON DATABASE %I TO %I, %I', :'db', :'db' || '_app', :'db' || '_query') \gexec
SELECT format('GRANT USAGE ON SCHEMA public TO %I, %I', :'db' || '_app', :'db' || '_query') \gexec
SELECT format('GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO %I', :'db' || '_app') \gexec
SELECT format('GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO %I', :'db' || '_app') \gexec
SELECT format('GRANT SELECT ON ALL TABLES IN SCHEMA public TO %I', :'db' || '_query') \gexec
