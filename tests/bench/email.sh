#!/bin/bash
# email.sh: benchmark of step 13, the e-mail rewrite (not a test). PERSONS
# rows (default 1,000,000) in a throwaway cluster; the rewrite into the
# sandbox domain, timed as whole wfengine runs, interleaved, ROUNDS times:
#   set-based: one UPDATE with the SQL sandbox_address() of docs/modules.md
#              (wf.mail section), the same rules as mail.sandbox_address
#   row by row: keyset batches of 1,000 rows read with conn:query, each row
#              rewritten by mail.sandbox_address in Lua and written back with
#              conn:exec (one round trip per changed row), in one transaction;
#              on the first RBR_ROWS rows only (default 100,000: at the rate
#              measured, all of them would take minutes), reported per second
# Then checks that both give what mail.sandbox_address gives.
#   PERSONS=1000000 RBR_ROWS=100000 ROUNDS=3 sh tests/bench/email.sh
set -eu
cd "$(dirname "$0")/../.."
PERSONS=${PERSONS:-1000000}
RBR_ROWS=${RBR_ROWS:-100000}
ROUNDS=${ROUNDS:-3}
PORT=${PORT:-26197}
WFENGINE=${WFENGINE:-./wfengine}
. tests/lib/pg.sh
BIN=$(pg_bindir)
TMP=$(mktemp -d /tmp/wf-bench-email.XXXXXX)
cleanup() { pg_stop "$TMP/pg"; rm -rf "$TMP"; }
trap cleanup EXIT INT TERM
pg_start "$TMP/pg" "$PORT" "-c shared_buffers=256MB -c max_wal_size=4GB" >/dev/null
chmod 777 "$TMP"
psql_() { PGOPTIONS="-c client_min_messages=warning" "$BIN/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PORT" -U postgres -d postgres "$@"; }
now() { date +%s.%N; }

echo "email rewrite: generating $PERSONS persons..."
# the function exactly as docs/modules.md gives it
sed -n '/^CREATE FUNCTION sandbox_address/,/^\$\$;/p' docs/modules.md >"$TMP/function.sql"
[ -s "$TMP/function.sql" ] || { echo "email.sh: no sandbox_address in docs/modules.md" >&2; exit 1; }
psql_ -f "$TMP/function.sql"
psql_ <<SQL
CREATE TABLE persons_orig (id bigint PRIMARY KEY, email text);
INSERT INTO persons_orig
  SELECT g, CASE
    WHEN g % 97 = 0 THEN NULL
    WHEN g % 89 = 0 THEN 'no address ' || g
    WHEN g % 83 = 0 THEN 'Already.' || g || '@Mailinator.com'
    WHEN g % 7 = 0 THEN ' First.Last+' || g || '@C' || (g % 5000) || '.Example.COM '
    ELSE 'person' || g || '@c' || (g % 5000) || '.example.com' END
  FROM generate_series(1, $PERSONS) g;
VACUUM ANALYZE persons_orig;
SQL
reset() {
  psql_ -c "DROP TABLE IF EXISTS persons" -c "CREATE TABLE persons (id bigint PRIMARY KEY, email text)" \
    -c "INSERT INTO persons SELECT * FROM persons_orig" -c "VACUUM ANALYZE persons" -c CHECKPOINT
}

cat >"$TMP/email.lua" <<'LUA'
local sql = require "wf.sql"
local mail = require "wf.mail"
local DOMAIN = "mailinator.com"
return workflow { name = "bench_email",
  params = { dsn = { required = true }, mode = { required = true }, rows = { default = "0" } },
  steps = { step "rewrite" { timeout = 3600, run = function(ctx)
    local db <close> = sql.connect(ctx.params.dsn)
    if ctx.params.mode == "set" then
      local n = db:exec("UPDATE persons SET email = sandbox_address(email, $1)", DOMAIN)
      io.stdout:write("ROWS ", n, "\n")
    elseif ctx.params.mode == "rows" then
      local limit, last, seen, changed = tonumber(ctx.params.rows), 0, 0, 0
      db:tx(function()
        while seen < limit do
          local batch = db:query("SELECT id, email FROM persons WHERE id > $1 ORDER BY id LIMIT $2",
            last, math.min(1000, limit - seen))
          if #batch == 0 then break end
          for _, row in ipairs(batch) do
            local new = mail.sandbox_address(row.email, DOMAIN)
            if new ~= row.email then
              db:exec("UPDATE persons SET email = $1 WHERE id = $2", new, row.id)
              changed = changed + 1
            end
            last = row.id
          end
          seen = seen + #batch
        end
      end)
      io.stdout:write("ROWS ", seen, "\n")
    else -- check: every rewritten row is what mail.sandbox_address gives
      local bad, n = 0, 0
      local limit = tonumber(ctx.params.rows)
      local last = 0
      while true do
        local batch = db:query([[SELECT o.id, o.email AS before, p.email AS after FROM persons_orig o
          JOIN persons p USING (id) WHERE o.id > $1 ORDER BY o.id LIMIT 5000]], last)
        if #batch == 0 or n >= limit then break end
        for _, row in ipairs(batch) do
          if mail.sandbox_address(row.before, DOMAIN) ~= row.after then bad = bad + 1 end
          last, n = row.id, n + 1
        end
      end
      io.stdout:write("CHECKED ", n, " MISMATCHES ", bad, "\n")
      assert(bad == 0, "the set-based rewrite differs from mail.sandbox_address")
    end
  end } } }
LUA
DSN="host=127.0.0.1 port=$PORT user=postgres dbname=postgres"
run() { # run MODE ROWS: prints "seconds rows"
  reset >/dev/null
  start=$(now)
  out=$("$WFENGINE" run -q "$TMP/email.lua" --state "$TMP/state" -p dsn="$DSN" -p mode="$1" -p rows="$2")
  end=$(now)
  rows=$(echo "$out" | awk '/^ROWS/ { print $2 }')
  echo "$(awk "BEGIN { print $end - $start }") $rows"
}
for round in $(seq 1 "$ROUNDS"); do
  run set 0 >>"$TMP/set"
  run rows "$RBR_ROWS" >>"$TMP/rows"
done
# correctness: the set-based result against the Lua function, row by row
reset >/dev/null
"$WFENGINE" run -q "$TMP/email.lua" --state "$TMP/state" -p dsn="$DSN" -p mode=set >/dev/null
check=$("$WFENGINE" run -q "$TMP/email.lua" --state "$TMP/state" -p dsn="$DSN" -p mode=check -p rows="$PERSONS")
total=$("$BIN/psql" -X -At -h 127.0.0.1 -p "$PORT" -U postgres -d postgres -c "SELECT count(*) FROM persons")

set -- $(awk -v n="$total" '{ print n / $1 }' "$TMP/set" | sort -n | awk '{ v[NR] = $1 } END { printf "%.0f %.0f %.0f", (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2, v[1], v[NR] }')
set_med=$1 set_min=$2 set_max=$3
set -- $(awk '{ print $2 / $1 }' "$TMP/rows" | sort -n | awk '{ v[NR] = $1 } END { printf "%.0f %.0f %.0f", (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2, v[1], v[NR] }')
row_med=$1 row_min=$2 row_max=$3
printf '\nemail rewrite (step 13): %s persons, median of %s (min-max), whole wfengine runs\n' "$PERSONS" "$ROUNDS"
printf '  %-44s %9s rows/s  (%s-%s)\n' "set-based UPDATE ... sandbox_address()" "$set_med" "$set_min" "$set_max" \
  "row by row, query + exec (first $RBR_ROWS rows)" "$row_med" "$row_min" "$row_max"
printf '  set-based is %.0fx faster; all %s rows: %.1f s set-based, about %.0f s row by row\n' \
  "$(awk "BEGIN { print $set_med / $row_med }")" "$total" "$(awk "BEGIN { print $total / $set_med }")" \
  "$(awk "BEGIN { print $total / $row_med }")"
echo "  check: $check (set-based result vs mail.sandbox_address)"
