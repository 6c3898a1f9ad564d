#!/bin/bash
# tests/lua/torture.t against the PostgreSQL state (tests/state/pg_state.sh):
# 4 forward and 2 compensating runs; WF_TEST_FULL=1: the file test's 50 and 20.
cd "$(dirname "$0")/../.." || exit 1
. tests/state/pg_state.sh
pg_state_setup 26823
if [ -z "${WF_TEST_FULL:-}" ]; then
  export WF_TORTURE_RUNS=${WF_TORTURE_RUNS:-4} WF_TORTURE_UNWIND_RUNS=${WF_TORTURE_UNWIND_RUNS:-2}
fi
python3 tests/lua/torture.t
