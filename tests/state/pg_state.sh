# pg_state.sh: sourced by the tests/state/*_pg.t wrappers. Starts a
# throwaway PostgreSQL (fsync on, as the state is used) on the given port,
# runs `wfengine state init` and exports what tests/lib/state_backend.py
# reads (WF_TEST_STATE=postgres, WF_TEST_PG_PORT). Stopped on exit.
#   pg_state_setup PORT
. tests/lib/pg.sh
PG_STATE_TMP=$(mktemp -d /tmp/wf-pgstate.XXXXXX)

pg_state_cleanup() {
  pg_stop "$PG_STATE_TMP/pg"
  rm -rf "$PG_STATE_TMP"
}
trap pg_state_cleanup EXIT INT TERM

pg_state_setup() {
  port=$1
  if ! pg_start "$PG_STATE_TMP/pg" "$port" -c fsync=on >"$PG_STATE_TMP/start.log" 2>&1; then
    echo "1..0 # SKIP cannot start PostgreSQL on port $port: $(tail -3 "$PG_STATE_TMP/start.log")"
    exit 0
  fi
  export WF_TEST_STATE=postgres WF_TEST_PG_PORT="$port"
  # a killed foreground run's lease runs out after 1 s, not 30
  export WFENGINE_STATE_LEASE=1
  if ! ${WFENGINE:-./wfengine} state init --state "postgresql://postgres@127.0.0.1:$port/postgres" >/dev/null; then
    echo "1..0 # SKIP state init failed"
    exit 0
  fi
}
