#!/bin/bash
# wf.sql modes: a step timeout cancels the running statement on the server
# (the connection stays usable, or is closed if a transaction was open);
# dry-run reads read-only and writes nothing, reporting "would execute"
# lines without secrets; simulate opens no connection at all.
cd "$(dirname "$0")/../.." || exit 1
. tests/sql/cluster.sh
sql_setup 26120 26121
sql_psql 26120 -d postgres -c "CREATE TABLE ledger (id int PRIMARY KEY, note text)" \
  -c "INSERT INTO ledger VALUES (1, 'a')"
sql_psql 26121 -d postgres -c "CREATE DATABASE empty_target"
TARGET="host=127.0.0.1 port=26121 user=postgres dbname=empty_target"

sql_run tests/sql/modes.lua -p dsn="$DSN_1" -p mode=run >"$SQL_TMP/run.tap"
sql_ok $? "run mode: exit 0"
sql_tap_merge run <"$SQL_TMP/run.tap"
grep -q "canceling statement due to user request" "$SQL_TMP/pg26120/server.log"
sql_ok $? "the server log shows the statement cancelled"

sql_run tests/sql/modes.lua -n -p dsn="$DSN_1" -p mode=dry-run -p target="$TARGET" >"$SQL_TMP/dry.tap"
sql_ok $? "dry-run: exit 0"
sql_tap_merge dry-run <"$SQL_TMP/dry.tap"
[ "$(sql_psql 26120 -d postgres -c "SELECT count(*) || ':' || min(note) FROM ledger")" = "1:a" ]
sql_ok $? "dry-run wrote nothing"
[ "$(sql_psql 26121 -d empty_target -c "SELECT count(*) FROM pg_class WHERE relnamespace = 'public'::regnamespace")" = 0 ]
sql_ok $? "dry-run copy_database copied nothing"
journal=$(cat "$SQL_TMP"/state/runs/*/events.jsonl)
echo "$journal" | grep 'execute: INSERT INTO ledger' | grep -q '"level":"would"'
sql_ok $? "would-lines are journaled"
echo "$journal" | grep -q '"message":"copy [0-9]* tables'
sql_ok $? "copy_database dry-run reports what it would copy"
! echo "$journal" | grep -q 's3cr3t-token'
sql_ok $? "the secret parameter is redacted from would-lines"

sql_run tests/sql/modes.lua --simulate -p dsn="host=127.0.0.1 port=1 user=nobody" -p mode=simulate >"$SQL_TMP/sim.tap"
sql_ok $? "simulate: exit 0"
sql_tap_merge simulate <"$SQL_TMP/sim.tap"
sql_tap_done
