#!/bin/bash
# wf.sql against a real server: type mapping, hostile parameters, every error
# path and its retryable, transactions, quoting, closing and collection.
cd "$(dirname "$0")/../.." || exit 1
. tests/sql/cluster.sh
sql_setup 26110
sql_run tests/sql/basics.lua -p dsn="$DSN_1"
