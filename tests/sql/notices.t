#!/bin/bash
# wf.sql: server notices go to the step's log and never fail the statement.
cd "$(dirname "$0")/../.." || exit 1
. tests/sql/cluster.sh
sql_setup 26140
sql_run tests/sql/notices.lua -p dsn="$DSN_1"
journal=$(cat "$SQL_TMP"/state/runs/*/events.jsonl)
if echo "$journal" | grep -q 'NOTICE: database \\"no_such_database_x\\" does not exist'; then
  echo "ok 3 - the notice is journaled in the step's log"
else
  echo "not ok 3 - the notice is journaled in the step's log"
fi
echo "1..3"
