#!/bin/bash
# wf.sql and lib.databases over the network: a connection that may run in
# clear (sslmode disable/allow/prefer, host not loopback) warns once per host;
# ensure_login sends a SCRAM verifier, never the password, to a server that
# logs every statement, and the login works with the password.
cd "$(dirname "$0")/../.." || exit 1
. tests/sql/cluster.sh
SQL_PG_OPTIONS="-c log_statement=all" sql_setup 26115
role=wf_scram_login password='pw-never-in-the-log-7f3a'
data=$SQL_TMP/pg26115/data
# password (SCRAM) logins for that role only; everyone else stays trusted
{ echo "host all $role 127.0.0.1/32 scram-sha-256"; cat "$data/pg_hba.conf"; } >"$SQL_TMP/hba"
cat "$SQL_TMP/hba" >"$data/pg_hba.conf"
sql_psql 26115 -d postgres -c "SELECT pg_reload_conf()" >/dev/null

WFENGINE_PATH="$PWD/workflows:$PWD/tests/lib" "$WFENGINE" run -q tests/sql/security.lua \
  --state "$SQL_TMP/state" -p dsn="$DSN_1" -p role="$role" -p password="$password" \
  2>"$SQL_TMP/stderr" >"$SQL_TMP/security.tap"
sql_ok $? "the workflow succeeds"
sql_tap_merge <"$SQL_TMP/security.tap"

journal=$(cat "$SQL_TMP"/state/runs/*/events.jsonl "$SQL_TMP/stderr")
warnings=$(printf '%s\n' "$journal" | grep -c 'the connection to 0.0.0.0 does not require TLS (sslmode=prefer)')
[ "$warnings" = 1 ]
sql_ok $? "one warning for the non-loopback host, however many connections ($warnings)"
printf '%s\n' "$journal" | grep -q 'sslmode=verify-full'
sql_ok $? "... recommending sslmode=verify-full"
! printf '%s\n' "$journal" | grep -q 'connection to 127.0.0.1 does not require TLS'
sql_ok $? "no warning for loopback"

grep -q "CREATE ROLE" "$SQL_TMP/pg26115/server.log"
sql_ok $? "the server log holds the CREATE ROLE statement (log_statement = all)"
! grep -qF "$password" "$SQL_TMP/pg26115/server.log"
sql_ok $? "the password is not in the server log"
[ "$(PGPASSWORD=$password sql_psql 26115 -U "$role" -d postgres -c "SELECT current_user" 2>&1)" = "$role" ]
sql_ok $? "the login works with its password (scram-sha-256)"
! PGPASSWORD=wrong sql_psql 26115 -U "$role" -d postgres -c "SELECT 1" >/dev/null 2>&1
sql_ok $? "... and not with another (the password is really checked)"
sql_tap_done
