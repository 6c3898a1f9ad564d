#!/bin/bash
# sql.copy_database between two clusters on a schema with odd identifiers,
# identity/serial columns, sequences, views, partitions, check/unique/foreign
# keys, expression and partial indexes, bytea, jsonb, arrays, NULLs, hostile
# text and non-ASCII; verified table by table. Also its errors and the
# template strategy.
cd "$(dirname "$0")/../.." || exit 1
. tests/sql/cluster.sh
. tests/sql/compare.sh
sql_setup 26130 26131
sql_psql 26130 -d postgres -c "CREATE DATABASE src" -c "CREATE DATABASE broken"
sql_psql 26130 -d src -v ON_ERROR_STOP=1 -f tests/sql/copy_schema.sql >/dev/null
sql_psql 26130 -d broken -c "CREATE FUNCTION public.at_home() RETURNS bool LANGUAGE sql AS \$\$SELECT current_database() = 'broken'\$\$" \
  -c "CREATE TABLE public.guarded (v int CHECK (public.at_home()))" -c "INSERT INTO public.guarded VALUES (1)"
for db in dst dst1 dst_split broken_dst; do sql_psql 26131 -d postgres -c "CREATE DATABASE $db"; done

sql_run tests/sql/copy.lua -p source_port=26130 -p target_port=26131 >"$SQL_TMP/copy.tap"
sql_ok $? "the copy workflow succeeds"
sql_tap_merge copy <"$SQL_TMP/copy.tap"

sql_compare 26130 src 26131 dst
# identity, serial and triggers still work on the copy
[ "$(sql_psql 26131 -d dst -c "INSERT INTO crm.companies (name) VALUES ('New Co') RETURNING id")" = 501 ]
sql_ok $? "identity column continues after the copied rows"
[ "$(sql_psql 26131 -d dst -c "INSERT INTO crm.persons (company_id, email) VALUES (501, 'n@x.org') RETURNING id")" = 60001 ]
sql_ok $? "serial column continues after the copied rows"
[ "$(sql_psql 26131 -d dst -c "SELECT count(*) FROM public.audit WHERE what = 'company New Co'")" = 1 ]
sql_ok $? "triggers fire on the copy"
[ "$(sql_psql 26131 -d dst -c "SELECT nextval('public.invoice_no')")" = 1035 ]
sql_ok $? "a standalone sequence continues where the source was"
! sql_psql 26131 -d dst -c "INSERT INTO crm.persons (company_id) VALUES (424242)" 2>/dev/null
sql_ok $? "foreign keys are enforced on the copy"
[ "$(sql_psql 26131 -d dst -c "SELECT count(*) FROM pg_stats WHERE schemaname = 'crm' AND tablename = 'persons'")" -gt 0 ]
sql_ok $? "the copy is analyzed"

sql_compare 26130 src 26131 dst_split
CMP_SRC_DB=src CMP_DST_DB=dst1
sql_same "one job: rows of crm.persons" "SELECT count(*), md5(string_agg(x::text, '' ORDER BY x::text)) FROM crm.persons x"
sql_same "one job: same indexes" "SELECT indexdef FROM pg_indexes WHERE schemaname <> 'pg_catalog' ORDER BY 1"
[ "$(sql_psql 26131 -d broken_dst -c "SELECT count(*) FROM public.guarded")" = 0 ]
sql_ok $? "a failed copy leaves the target for the caller to drop"
sql_tap_done
