#!/bin/bash
# copy.sh: benchmark of sql.copy_database (not a test). Generates a CRM-shaped
# database (companies, persons with emails, appointments, documents with
# bytea, five secondary indexes, foreign keys) of about SIZE_MB in one
# cluster, then times, interleaved, ROUNDS times each:
#   copy_database to a second cluster (jobs = JOBS, default the core count)
#   pg_dump -Fd -jJOBS -Z0 + pg_restore -jJOBS, then ANALYZE
#   pg_dump | psql, then ANALYZE
#   copy_database with rewrite = { domain = "mailinator.com" } (every
#     text-bearing column rewritten in the stream, issue [10])
#   pgcopydb clone --table-jobs JOBS --index-jobs JOBS, then ANALYZE
#     (Debian package pgcopydb, installed here when root; skipped without)
#   CREATE DATABASE ... TEMPLATE ... STRATEGY WAL_LOG and FILE_COPY (same cluster)
# Each method starts on flushed clusters (CHECKPOINT on both, then sync,
# untimed), and the two copy_database variants take turns going first.
# It prints the medians with min/max, the ratios, copy_database's phase
# breakdown and wfengine's peak RSS. BASELINE=/path/to/an/older/wfengine
# times that binary's copy_database too, in the same rounds (before/after).
#   SIZE_MB=1024 ROUNDS=3 JOBS=2 sh tests/bench/copy.sh
set -eu
cd "$(dirname "$0")/../.."
SIZE_MB=${SIZE_MB:-1024}
ROUNDS=${ROUNDS:-3}
JOBS=${JOBS:-$(nproc)}
BASELINE=${BASELINE:-}
PORT_A=${PORT_A:-26190}
PORT_B=${PORT_B:-26191}
WFENGINE=${WFENGINE:-./wfengine}
. tests/lib/pg.sh
BIN=$(pg_bindir)
TMP=$(mktemp -d /tmp/wf-bench.XXXXXX)
cleanup() { pg_stop "$TMP/a"; pg_stop "$TMP/b"; rm -rf "$TMP"; }
trap cleanup EXIT INT TERM
SETTINGS="-c shared_buffers=512MB -c max_wal_size=8GB -c checkpoint_timeout=30min -c maintenance_work_mem=256MB -c wal_level=minimal -c max_wal_senders=0"
pg_start "$TMP/a" "$PORT_A" "$SETTINGS"
pg_start "$TMP/b" "$PORT_B" "$SETTINGS"
chmod 777 "$TMP"
psql_a() { "$BIN/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PORT_A" -U postgres "$@"; }
psql_b() { "$BIN/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PORT_B" -U postgres "$@"; }
now() { date +%s.%N; }
# settle: before each timed method, the previous method's writes are
# flushed (a CHECKPOINT on both clusters, then sync), untimed; otherwise
# each method pays for its predecessor's dirty pages and WAL (pg_dump |
# psql leaves about the database's size of both) and the first method of a
# round is the one that pays most
settle() {
  psql_a -d postgres -c CHECKPOINT
  psql_b -d postgres -c CHECKPOINT
  sync
}

echo "generating a CRM database of about $SIZE_MB MB..."
S=$(awk "BEGIN { print $SIZE_MB / 1024 }")
psql_a -d postgres -c "CREATE DATABASE crm"
psql_a -d crm <<SQL
CREATE TABLE companies (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, name text NOT NULL,
  domain text NOT NULL, created timestamptz NOT NULL);
CREATE TABLE persons (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  company_id bigint NOT NULL REFERENCES companies, email text NOT NULL, first_name text,
  last_name text, phone text, created timestamptz NOT NULL);
CREATE TABLE appointments (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  person_id bigint NOT NULL REFERENCES persons, starts timestamptz NOT NULL, minutes int NOT NULL,
  subject text, notes text);
CREATE TABLE documents (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  company_id bigint NOT NULL REFERENCES companies, name text NOT NULL, body bytea NOT NULL);
ALTER TABLE documents ALTER COLUMN body SET STORAGE EXTERNAL; -- keep the bytes' real size
INSERT INTO companies (name, domain, created)
  SELECT 'Company ' || g, 'c' || g || '.example.com', now() - g * interval '1 minute'
  FROM generate_series(1, (50000 * $S)::int) g;
INSERT INTO persons (company_id, email, first_name, last_name, phone, created)
  SELECT 1 + g % (50000 * $S)::int, 'person' || g || '@c' || (g % 5000) || '.example.com',
    'First' || md5(g::text), 'Last' || g, '+1-555-' || g, now() - g * interval '1 second'
  FROM generate_series(1, (1500000 * $S)::int) g;
INSERT INTO appointments (person_id, starts, minutes, subject, notes)
  SELECT 1 + g % (1500000 * $S)::int, now() + g * interval '1 minute', 15 + g % 90,
    'Meeting ' || md5(g::text), repeat(md5((g * 7)::text), 2)
  FROM generate_series(1, (2500000 * $S)::int) g;
INSERT INTO documents (company_id, name, body)
  SELECT 1 + g % (50000 * $S)::int, 'doc' || g || '.pdf',
    decode(repeat(md5(g::text) || md5((g + 1)::text), 12), 'hex')
  FROM generate_series(1, (120000 * $S)::int) g;
CREATE INDEX persons_email ON persons (lower(email));
CREATE INDEX persons_company ON persons (company_id);
CREATE INDEX appointments_person ON appointments (person_id);
CREATE INDEX appointments_starts ON appointments (starts);
CREATE INDEX documents_company ON documents (company_id);
VACUUM ANALYZE;
SQL
psql_a -d crm -At -c "SELECT 'source size: ' || pg_size_pretty(pg_database_size('crm'))"

cat >"$TMP/copy.lua" <<'LUA'
local sql = require "wf.sql"
return workflow { name = "bench_copy", params = { from = { required = true }, to = { required = true },
  jobs = { default = "2" }, rewrite = { default = "" } },
  steps = { step "copy" { timeout = 7200, run = function(ctx)
    local s = sql.copy_database { from = ctx.params.from, to = ctx.params.to, jobs = tonumber(ctx.params.jobs),
      rewrite = ctx.params.rewrite ~= "" and { domain = ctx.params.rewrite } or nil }
    local parts = {}
    for _, k in ipairs { "check", "schema", "data", "sequences", "constraints", "post" } do
      parts[#parts + 1] = string.format("%s=%.2f", k, s.phases[k] or 0)
    end
    -- worker-seconds per kind of work inside the overlapped data phase
    for _, k in ipairs { "data", "indexes", "analyze", "foreign keys" } do
      if s.busy and s.busy[k] then
        parts[#parts + 1] = string.format("busy.%s=%.2f", k:gsub(" ", "_"), s.busy[k])
      end
    end
    if s.rewrite then parts[#parts + 1] = string.format("rewritten=%d", s.rewrite.values) end
    io.stdout:write("PHASES ", table.concat(parts, " "), "\n")
  end } } }
LUA

reset_b() { psql_b -d postgres -c "DROP DATABASE IF EXISTS $1" -c "CREATE DATABASE $1"; }
t_copy() { # t_copy [WFENGINE [PHASES [REWRITE_DOMAIN]]]: seconds; peak RSS (kB) and CPU
  # seconds appended to $TMP/rss and $TMP/cpu (_rewrite, _baseline)
  reset_b t_copy
  settle
  start=$(now)
  /usr/bin/time -f "%M %U %S" -o "$TMP/rss1" "${1:-$WFENGINE}" run -q "$TMP/copy.lua" --state "$TMP/state" -p jobs="$JOBS" \
    -p rewrite="${3:-}" \
    -p from="host=127.0.0.1 port=$PORT_A user=postgres dbname=crm" \
    -p to="host=127.0.0.1 port=$PORT_B user=postgres dbname=t_copy" >>"${2:-$TMP/phases}"
  end=$(now)
  kind=
  [ -n "${1:-}" ] && kind=_baseline
  [ -n "${3:-}" ] && kind=_rewrite
  tail -1 "$TMP/rss1" | cut -d' ' -f1 >>"$TMP/rss$kind"
  tail -1 "$TMP/rss1" | awk '{ print $2 + $3 }' >>"$TMP/cpu$kind"
  awk "BEGIN { print $end - $start }"
}
t_dir() {
  reset_b t_dir
  rm -rf "$TMP/dump"
  settle
  start=$(now)
  "$BIN/pg_dump" -h 127.0.0.1 -p "$PORT_A" -U postgres -Fd -j "$JOBS" -Z0 -f "$TMP/dump" crm
  "$BIN/pg_restore" -h 127.0.0.1 -p "$PORT_B" -U postgres -j "$JOBS" -d t_dir "$TMP/dump"
  psql_b -d t_dir -c ANALYZE
  awk "BEGIN { print $(now) - $start }"
}
t_pgcopydb() {
  reset_b t_pgcopydb
  rm -rf "$TMP/pgcopydb.work"
  settle
  start=$(now)
  pgcopydb clone --dir "$TMP/pgcopydb.work" --table-jobs "$JOBS" --index-jobs "$JOBS" \
    --source "host=127.0.0.1 port=$PORT_A user=postgres dbname=crm" \
    --target "host=127.0.0.1 port=$PORT_B user=postgres dbname=t_pgcopydb" >"$TMP/pgcopydb.log" 2>&1 \
    || { tail -5 "$TMP/pgcopydb.log" >&2; echo 0; return; }
  psql_b -d t_pgcopydb -c ANALYZE
  awk "BEGIN { print $(now) - $start }"
}
t_pipe() {
  reset_b t_pipe
  settle
  start=$(now)
  "$BIN/pg_dump" -h 127.0.0.1 -p "$PORT_A" -U postgres crm | psql_b -d t_pipe >/dev/null
  psql_b -d t_pipe -c ANALYZE
  awk "BEGIN { print $(now) - $start }"
}
t_template() {
  psql_a -d postgres -c "DROP DATABASE IF EXISTS t_$1"
  settle
  start=$(now)
  psql_a -d postgres -c "CREATE DATABASE t_$1 TEMPLATE crm STRATEGY $1"
  awk "BEGIN { print $(now) - $start }"
}

# pgcopydb: from Debian, installed for the benchmark only (not a dependency)
PGCOPYDB=$(command -v pgcopydb || true)
if [ -z "$PGCOPYDB" ] && [ "$(id -u)" = 0 ]; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends pgcopydb >/dev/null 2>&1 || true
  PGCOPYDB=$(command -v pgcopydb || true)
fi
[ -z "$PGCOPYDB" ] && echo "copy.sh: pgcopydb is not installed: measured without it"
: >"$TMP/phases"
: >"$TMP/phases_rewrite"
: >"$TMP/phases_baseline"
for round in $(seq 1 "$ROUNDS"); do
  echo "round $round/$ROUNDS"
  # with and without the rewrite in turn first: the ratio of the two is a goal
  if [ $((round % 2)) = 1 ]; then
    echo "$(t_copy)" >>"$TMP/copy"
    echo "$(t_copy "$WFENGINE" "$TMP/phases_rewrite" mailinator.com)" >>"$TMP/rewrite"
  else
    echo "$(t_copy "$WFENGINE" "$TMP/phases_rewrite" mailinator.com)" >>"$TMP/rewrite"
    echo "$(t_copy)" >>"$TMP/copy"
  fi
  [ -n "$PGCOPYDB" ] && echo "$(t_pgcopydb)" >>"$TMP/pgcopydb"
  [ -n "$BASELINE" ] && echo "$(t_copy "$BASELINE" "$TMP/phases_baseline")" >>"$TMP/baseline"
  echo "$(t_dir)" >>"$TMP/dir"
  echo "$(t_pipe)" >>"$TMP/pipe"
  echo "$(t_template WAL_LOG)" >>"$TMP/wal_log"
  echo "$(t_template FILE_COPY)" >>"$TMP/file_copy"
done
median() { sort -n "$1" | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
range() { sort -n "$1" | awk '{ v[NR] = $1 } END { printf "%.2f-%.2f", v[1], v[NR] }'; }
copy=$(median "$TMP/copy") dir=$(median "$TMP/dir") pipe=$(median "$TMP/pipe")
wal=$(median "$TMP/wal_log") file=$(median "$TMP/file_copy")
best=$(awk "BEGIN { print ($dir < $pipe) ? $dir : $pipe }")
mem=$(awk '/MemTotal/ { printf "%.1f GB", $2 / 1048576 }' /proc/meminfo)
printf '\ncopy: %s MB source (%s), jobs=%s, %s cores, %s memory, load average %s\n' "$SIZE_MB" \
  "$(psql_a -d crm -At -c "SELECT pg_size_pretty(pg_database_size('crm'))")" "$JOBS" "$(nproc)" "$mem" \
  "$(cut -d' ' -f1-3 /proc/loadavg)"
printf 'median of %d interleaved rounds (min-max), each method ending in ANALYZE:\n' "$ROUNDS"
row() { printf '  %-40s %8.2f s  (%s)\n' "$1" "$(median "$2")" "$(range "$2")"; }
row "copy_database (stream, jobs=$JOBS)" "$TMP/copy"
row "copy_database + rewrite (every text column)" "$TMP/rewrite"
[ -n "$BASELINE" ] && row "copy_database, baseline binary" "$TMP/baseline"
[ -n "$PGCOPYDB" ] && row "pgcopydb clone --table-jobs $JOBS --index-jobs $JOBS" "$TMP/pgcopydb"
row "pg_dump -Fd -j$JOBS -Z0 + pg_restore -j$JOBS" "$TMP/dir"
row "pg_dump | psql" "$TMP/pipe"
row "CREATE DATABASE TEMPLATE (WAL_LOG)" "$TMP/wal_log"
row "CREATE DATABASE TEMPLATE (FILE_COPY)" "$TMP/file_copy"
printf '  copy_database / best pg_dump-based: %.2fx (goal <= 0.55x)\n' "$(awk "BEGIN { print $copy / $best }")"
# the machine may be shared: the ratio within each round (methods run
# back to back) is steadier than the ratio of medians
paste "$TMP/copy" "$TMP/dir" "$TMP/pipe" | awk '{ print $1 / ($2 < $3 ? $2 : $3) }' >"$TMP/ratios"
printf '  per-round ratio to the best pg_dump-based: median %.2fx (%s)\n' "$(median "$TMP/ratios")" "$(range "$TMP/ratios")"
if [ -n "$BASELINE" ]; then
  paste "$TMP/baseline" "$TMP/dir" "$TMP/pipe" | awk '{ print $1 / ($2 < $3 ? $2 : $3) }' >"$TMP/ratios_baseline"
  printf '  baseline per-round ratio:                  median %.2fx (%s)\n' "$(median "$TMP/ratios_baseline")" "$(range "$TMP/ratios_baseline")"
fi
[ -n "$BASELINE" ] && printf '  baseline / best pg_dump-based:      %.2fx\n' "$(awk "BEGIN { print $(median "$TMP/baseline") / $best }")"
paste "$TMP/rewrite" "$TMP/copy" | awk '{ print $1 / $2 }' >"$TMP/ratios_rewrite"
printf '  copy_database with / without the rewrite, per round: median %.2fx (%s) (goal <= 1.15x)\n' \
  "$(median "$TMP/ratios_rewrite")" "$(range "$TMP/ratios_rewrite")"
if [ -n "$PGCOPYDB" ]; then
  paste "$TMP/copy" "$TMP/pgcopydb" | awk '{ print $1 / $2 }' >"$TMP/ratios_pgcopydb"
  printf '  copy_database / pgcopydb, per round: median %.2fx (%s) (goal <= 0.6x)\n' \
    "$(median "$TMP/ratios_pgcopydb")" "$(range "$TMP/ratios_pgcopydb")"
fi
printf '  copy_database / FILE_COPY template: %.2fx\n' "$(awk "BEGIN { print $copy / $file }")"
printf '  wfengine peak RSS: %s kB without the rewrite, %s kB with (max of %d rounds)\n' \
  "$(sort -n "$TMP/rss" | tail -1)" "$(sort -n "$TMP/rss_rewrite" | tail -1)" "$ROUNDS"
printf '  wfengine CPU (user + system): %.2f s without the rewrite (%s), %.2f s with (%s)\n' \
  "$(median "$TMP/cpu")" "$(range "$TMP/cpu")" "$(median "$TMP/cpu_rewrite")" "$(range "$TMP/cpu_rewrite")"
echo "copy_database phases (wall seconds; busy = worker-seconds inside the overlapped data phase), per round:"
sed 's/^PHASES /  /' "$TMP/phases"
echo "copy_database + rewrite phases, per round:"
sed 's/^PHASES /  /' "$TMP/phases_rewrite"
if [ -n "$BASELINE" ]; then
  echo "baseline phases:"
  sed 's/^PHASES /  /' "$TMP/phases_baseline"
fi
