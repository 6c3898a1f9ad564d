#!/bin/bash
# sql.copy_database{ rewrite = ... } and CHECK constraints that see a
# rewritten column (docs/modules.md, wf.sql, "The check rule"): a table's
# length check and a domain's fixed by the fallback, on a partitioned
# parent too; a pattern the rewrite passes left as it is; one no sandbox
# address satisfies added NOT VALID, warned about and reported; checks on
# other columns untouched; merged INHERITS checks.
cd "$(dirname "$0")/../.." || exit 1
. tests/sql/cluster.sh
sql_setup 26174 26175
sql_psql 26174 -d postgres -c "CREATE DATABASE src"
sql_psql 26175 -d postgres -c "CREATE DATABASE dst"
sql_psql 26174 -d src -v ON_ERROR_STOP=1 -f tests/sql/rewrite_checks_schema.sql >/dev/null
sql_ok $? "the source schema loads"
sql_run tests/sql/rewrite_checks.lua -p source_port=26174 -p target_port=26175 >"$SQL_TMP/checks.tap"
sql_ok $? "the workflow succeeds"
sql_tap_merge <"$SQL_TMP/checks.tap"
grep -q "CHECK constraint customer_domain on app.customer added NOT VALID: 2 rewritten rows" "$SQL_TMP/checks.tap"
sql_ok $? "one warning line names the constraint, its table and the rows"
sql_tap_done
