#!/bin/bash
# tests/lua/durable.t against the PostgreSQL state (tests/state/pg_state.sh).
cd "$(dirname "$0")/../.." || exit 1
. tests/state/pg_state.sh
pg_state_setup 26822
python3 tests/lua/durable.t
