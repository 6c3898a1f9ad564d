#!/bin/bash
# wf.sql conn:wait_notify against a real server (tests/sql/notify.lua).
cd "$(dirname "$0")/../.." || exit 1
. tests/sql/cluster.sh
sql_setup 26160
sql_run tests/sql/notify.lua -p dsn="$DSN_1"
