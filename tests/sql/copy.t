#!/bin/bash
# sql.copy_database between two clusters on a schema with odd identifiers,
# identity/serial columns, sequences, views, partitions, check/unique/foreign
# keys, expression and partial indexes, bytea, jsonb, arrays, NULLs, hostile
# text and non-ASCII; verified table by table. Also its errors and the
# template strategy. Then sources whose data mimics pg_dump's script
# (copy_hostile.sql, and generated comments) copied to a third cluster that
# logs every statement: nothing but the copy's own statements may run there.
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

# The hostile copies: the target cluster logs every statement and counts each
# parsed statement apart (pg_stat_statements), even several in one string.
LOGGED=26132
if ! pg_start "$SQL_TMP/pg$LOGGED" $LOGGED -c shared_preload_libraries=pg_stat_statements \
  -c log_statement=all >"$SQL_TMP/start$LOGGED.log" 2>&1; then
  echo "1..0 # SKIP cannot start PostgreSQL with pg_stat_statements: $(tail -3 "$SQL_TMP/start$LOGGED.log")"
  exit 0
fi
SQL_PORTS="$SQL_PORTS $LOGGED"
sql_psql 26130 -d postgres -c "CREATE DATABASE hostile" -c "CREATE DATABASE repro"
sql_psql 26130 -d repro -c "CREATE TABLE t1 (id int PRIMARY KEY, email text)" -c "CREATE INDEX t1_email_idx ON t1 (email)" \
  -c "COMMENT ON INDEX t1_email_idx IS E'note\n--\n-- Name: zz_fake; Type: INDEX; Schema: public; Owner: postgres\n--\n\nCREATE ROLE wf_injected_role; --'"
sql_psql 26130 -d hostile -v ON_ERROR_STOP=1 -f tests/sql/copy_hostile.sql >/dev/null 2>&1
sql_psql $LOGGED -d postgres -c "CREATE DATABASE hostile_dst" -c "CREATE DATABASE repro_dst" -c "CREATE EXTENSION pg_stat_statements" \
  -c "SELECT pg_stat_statements_reset()" >/dev/null
sql_run tests/sql/copy_hostile.lua -p source_port=26130 -p target_port=$LOGGED ${COPY_SEED:+-p seed=$COPY_SEED} \
  >"$SQL_TMP/hostile.tap"
sql_ok $? "the hostile copies succeed"
sql_tap_merge hostile <"$SQL_TMP/hostile.tap"

[ "$(sql_psql $LOGGED -d postgres -c "SELECT count(*) FROM pg_roles WHERE rolname LIKE 'wf\_%'")" = 0 ]
sql_ok $? "no role was created on the target (wf_injected_role, wf_fuzz_role*)"
# every statement the server parsed on the copies' targets, its leading
# comments (pg_restore's entry headers) taken off, is one of the copy's kinds
KINDS='SELECT|SET|BEGIN|COMMIT|COPY|TRUNCATE|ANALYZE|CREATE (UNIQUE )?INDEX|CREATE (TABLE|SCHEMA|FUNCTION|TRIGGER|POLICY|RULE|VIEW|MATERIALIZED VIEW|SEQUENCE)|ALTER (TABLE|INDEX|FUNCTION|SEQUENCE|MATERIALIZED VIEW|SCHEMA)|COMMENT ON|REFRESH MATERIALIZED VIEW'
STATEMENTS="SELECT regexp_replace(s.query, '^(\s|--[^\n]*\n)*', '') AS statement FROM pg_stat_statements s
  JOIN pg_database d ON d.oid = s.dbid WHERE d.datname <> 'postgres'"
others=$(sql_psql $LOGGED -d postgres -c "SELECT statement FROM ($STATEMENTS) s WHERE statement !~ '^($KINDS)\M'")
[ -z "$others" ]
sql_ok $? "no statement outside the copy's kinds ran on the target"
[ -n "$others" ] && echo "$others" | head -5 | sed 's/^/# /'
[ "$(sql_psql $LOGGED -d postgres -c "SELECT count(*) FROM ($STATEMENTS) s WHERE statement ~ '^ALTER TABLE ONLY public.t1 ADD CONSTRAINT t1_pkey PRIMARY KEY USING INDEX t1_pkey'")" -ge 1 ]
sql_ok $? "keys are still built as unique indexes first"
# (a logged statement's later lines start with a tab)
grep -qE "^(.*statement: |$(printf '\t'))COMMENT ON INDEX public.t1_email_idx IS 'note\$" "$SQL_TMP/pg$LOGGED/server.log" &&
  ! grep -q "ERROR:" "$SQL_TMP/pg$LOGGED/server.log"
sql_ok $? "the statement log shows the hostile comment sent whole, and no error"

CMP_SRC_PORT=26130 CMP_SRC_DB=repro CMP_DST_PORT=$LOGGED CMP_DST_DB=repro_dst
sql_same "the issue's case: the same comment" "SELECT obj_description('public.t1_email_idx'::regclass)"
sql_compare 26130 hostile $LOGGED hostile_dst
sql_same "same descriptions of every object" "SELECT pg_describe_object(classoid, objoid, objsubid), description FROM pg_description WHERE objoid >= 16384 ORDER BY 1"
sql_same "same policies" "SELECT tablename, policyname, qual, with_check FROM pg_policies ORDER BY 1, 2"
sql_same "same rules" "SELECT tablename, rulename, definition FROM pg_rules WHERE schemaname = 'public' ORDER BY 1, 2"
sql_tap_done
