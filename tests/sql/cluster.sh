# cluster.sh: sourced by the tests/sql/*.t scripts. Starts throwaway
# PostgreSQL clusters in a temporary directory, stopped and removed on exit.
#   sql_setup PORT...     starts one cluster per port; DSN_1, DSN_2... name them
#                         (SQL_PG_OPTIONS: extra server options, "-c k=v ...")
#   sql_run FILE.lua ARGS runs a test workflow quietly (TAP on stdout)
. tests/lib/pg.sh
WFENGINE=${WFENGINE:-./wfengine}
SQL_TMP=$(mktemp -d /tmp/wf-sql-test.XXXXXX)
SQL_PORTS=""

sql_cleanup() {
  for port in $SQL_PORTS; do pg_stop "$SQL_TMP/pg$port"; done
  rm -rf "$SQL_TMP"
}
trap sql_cleanup EXIT INT TERM

sql_setup() {
  i=1
  for port in "$@"; do
    # shellcheck disable=SC2086 # SQL_PG_OPTIONS: extra "-c name=value" words
    if ! pg_start "$SQL_TMP/pg$port" "$port" ${SQL_PG_OPTIONS:-} >"$SQL_TMP/start$port.log" 2>&1; then
      echo "1..0 # SKIP cannot start PostgreSQL on port $port: $(tail -3 "$SQL_TMP/start$port.log")"
      exit 0
    fi
    SQL_PORTS="$SQL_PORTS $port"
    eval "DSN_$i='host=127.0.0.1 port=$port user=postgres dbname=postgres'"
    i=$((i + 1))
  done
}

sql_psql() {
  port=$1
  shift
  "$(pg_bindir)/psql" -X -q -At -h 127.0.0.1 -p "$port" -U postgres "$@"
}

sql_run() {
  file=$1
  shift
  WFENGINE_PATH="$PWD/tests/lib${WFENGINE_PATH:+:$WFENGINE_PATH}" "$WFENGINE" run -q "$file" --state "$SQL_TMP/state" "$@"
}

# TAP from several runs and from the shell, renumbered into one stream.
SQL_TAP_COUNT=0
SQL_TAP_FAILED=0
sql_tap_merge() {
  while IFS= read -r line; do
    case "$line" in
    "not ok "*)
      SQL_TAP_COUNT=$((SQL_TAP_COUNT + 1)) SQL_TAP_FAILED=$((SQL_TAP_FAILED + 1))
      echo "not ok $SQL_TAP_COUNT ${1:+[$1] }${line#not ok * }" ;;
    "ok "*)
      SQL_TAP_COUNT=$((SQL_TAP_COUNT + 1))
      rest=${line#ok }
      echo "ok $SQL_TAP_COUNT ${1:+[$1] }${rest#* }" ;;
    1..*) ;;
    *) echo "$line" ;;
    esac
  done
}
sql_ok() { # sql_ok CONDITION-EXIT-STATUS NAME
  SQL_TAP_COUNT=$((SQL_TAP_COUNT + 1))
  if [ "$1" = 0 ]; then echo "ok $SQL_TAP_COUNT - $2"
  else echo "not ok $SQL_TAP_COUNT - $2"; SQL_TAP_FAILED=$((SQL_TAP_FAILED + 1)); fi
}
sql_tap_done() { echo "1..$SQL_TAP_COUNT"; }
