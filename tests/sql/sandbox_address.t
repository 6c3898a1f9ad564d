#!/bin/bash
# The SQL function sandbox_address() exactly as docs/modules.md gives it
# (wf.mail section): PostgreSQL inlines it, and it gives what
# mail.sandbox_address gives, NULL and edge cases included.
cd "$(dirname "$0")/../.." || exit 1
. tests/sql/cluster.sh
sql_setup 26165
sed -n '/^CREATE FUNCTION sandbox_address/,/^\$\$;/p' docs/modules.md >"$SQL_TMP/function.sql"
[ -s "$SQL_TMP/function.sql" ] && sql_psql 26165 -d postgres -v ON_ERROR_STOP=1 -f "$SQL_TMP/function.sql"
sql_ok $? "docs/modules.md's CREATE FUNCTION sandbox_address runs"
sql_run tests/sql/sandbox_address.lua -p dsn="$DSN_1" >"$SQL_TMP/compare.tap"
sql_ok $? "the comparison workflow succeeds"
sql_tap_merge <"$SQL_TMP/compare.tap"
sql_tap_done
