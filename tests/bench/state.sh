#!/bin/sh
# State benchmark (make bench, issue [9]): the file journal next to the
# PostgreSQL state (fsync on, synchronous_commit on, full_page_writes on):
# per-step overhead of a real run, event append latency p50/p99, 1,000
# one-step runs through 1, 2 and 4 workers (runs per second), and the
# takeover time after a kill -9 of a worker. Port 26830.
set -eu
cd "$(dirname "$0")/../.."
. tests/lib/pg.sh
WFENGINE=${WFENGINE:-./wfengine}
WFENGINE=$(realpath "$WFENGINE")
ROUNDS=${ROUNDS:-3}
RUNS=${RUNS:-1000}
PORT=26830
LEASE=${LEASE:-2}
tmp=$(mktemp -d /tmp/wf-bench-state.XXXXXX)
URL="postgresql://postgres@127.0.0.1:$PORT/postgres"
cleanup() {
  for pid in $(cat "$tmp/pids" 2>/dev/null); do kill -KILL "-$pid" 2>/dev/null || true; done
  pg_stop "$tmp/pg"
  rm -rf "$tmp"
}
trap cleanup EXIT
pg_start "$tmp/pg" $PORT -c fsync=on -c synchronous_commit=on -c full_page_writes=on \
  -c max_connections=200 >/dev/null
"$WFENGINE" state init --state "$URL" >/dev/null
q() { psql -XAtq -h 127.0.0.1 -p $PORT -U postgres -d postgres -c "$1"; }

gen() { # gen N FILE: a workflow of N no-op steps
  {
    echo 'local steps = {}'
    echo "for i = 1, $1 do steps[#steps + 1] = step(string.format(\"s%04d\", i)) { run = function(ctx) return i end } end"
    echo 'return workflow { name = "noop", steps = steps }'
  } > "$2"
}
gen 1 "$tmp/w1.lua"
gen 31 "$tmp/w31.lua"
gen 300 "$tmp/w300.lua"
cat > "$tmp/sleepy.lua" <<'LUA'
return workflow { name = "sleepy", steps = { step "wait" { run = function(ctx) ctx:sleep(30) end } } }
LUA

seconds() {
  python3 - "$@" <<'PY'
import subprocess, sys, time
t = time.perf_counter()
subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
print("%.6f" % (time.perf_counter() - t))
PY
}
median() { sort -n "$1" | awk '{ v[NR] = $1 } END { printf "%.3f", v[int((NR + 1) / 2)] }'; }
pct() { sort -n "$1" | awk -v p="$2" '{ v[NR] = $1 } END { i = int(NR * p / 100 + 0.999); if (i < 1) i = 1; printf "%.2f", v[i] }'; }

echo "== state: per-step overhead (run300 - run31) / 269, median of $ROUNDS"
r=1
while [ $r -le "$ROUNDS" ]; do
  seconds "$WFENGINE" run "$tmp/w31.lua" -q --state "$tmp/files" >> "$tmp/f31"
  seconds "$WFENGINE" run "$tmp/w300.lua" -q --state "$tmp/files" >> "$tmp/f300"
  seconds "$WFENGINE" run "$tmp/w31.lua" -q --state "$URL" >> "$tmp/p31"
  seconds "$WFENGINE" run "$tmp/w300.lua" -q --state "$URL" >> "$tmp/p300"
  r=$((r + 1))
done
f_step=$(echo "($(median "$tmp/f300") - $(median "$tmp/f31")) * 1000 / 269" | bc -l)
p_step=$(echo "($(median "$tmp/p300") - $(median "$tmp/p31")) * 1000 / 269" | bc -l)
printf "  file:       run31 %ss  run300 %ss  per step %.2f ms\n" "$(median "$tmp/f31")" "$(median "$tmp/f300")" "$f_step"
printf "  postgresql: run31 %ss  run300 %ss  per step %.2f ms\n" "$(median "$tmp/p31")" "$(median "$tmp/p300")" "$p_step"
printf "  ratio postgresql / file: %.2f (goal <= 2)\n" "$(echo "$p_step / $f_step" | bc -l)"

echo "== state: event append latency (300-step run, every append), ms"
WFENGINE_STATE_TIMINGS="$tmp/tf" "$WFENGINE" run "$tmp/w300.lua" -q --state "$tmp/files" >/dev/null
WFENGINE_STATE_TIMINGS="$tmp/tp" "$WFENGINE" run "$tmp/w300.lua" -q --state "$URL" >/dev/null
echo "  file:       p50 $(pct "$tmp/tf" 50)  p99 $(pct "$tmp/tf" 99)  ($(wc -l < "$tmp/tf") appends)"
echo "  postgresql: p50 $(pct "$tmp/tp" 50)  p99 $(pct "$tmp/tp" 99)  ($(wc -l < "$tmp/tp") appends)"

# queue RUNS copies of one submitted one-step run (submit itself is a process
# per run: the figure is the workers')
queue() {
  id=$("$WFENGINE" submit "$tmp/w1.lua" --state "$URL")
  q "INSERT INTO wfengine.runs (run_id, workflow, mode, status, pooled, snapshot, request, started)
     SELECT to_char(now() + i * interval '1 ms', 'YYYYMMDD\"T\"HH24MISS.MS\"Z\"') || '-' || lpad(to_hex(i % 65536), 4, '0'),
       workflow, mode, 'queued', true, snapshot, request, now() + i * interval '1 ms'
     FROM wfengine.runs, generate_series(1, $RUNS - 1) i WHERE run_id = '$id'" >/dev/null
}
worker() { # worker NAME CONCURRENCY
  (cd "$tmp" && exec setsid "$WFENGINE" worker --state "$URL" --name "$1" --concurrency "$2" \
    --lease "$LEASE" -q >"$tmp/$1.log" 2>&1) &
  echo $! >> "$tmp/pids"
}
stop_workers() {
  for pid in $(cat "$tmp/pids" 2>/dev/null); do kill -TERM "-$pid" 2>/dev/null || true; done
  for pid in $(cat "$tmp/pids" 2>/dev/null); do while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done; done
  : > "$tmp/pids"
}
done_count() { q "SELECT count(*) FROM wfengine.runs WHERE pooled AND status = 'succeeded'"; }

echo "== state: $RUNS one-step runs through workers (each --concurrency 2)"
for n in 1 2 4; do
  q "DELETE FROM wfengine.runs" >/dev/null
  queue
  t0=$(date +%s.%N)
  i=1
  while [ $i -le $n ]; do worker "bw$n-$i" 2; i=$((i + 1)); done
  while [ "$(done_count)" -lt "$RUNS" ]; do sleep 0.2; done
  t1=$(date +%s.%N)
  stop_workers
  printf "  %d worker(s): %.1f s, %.1f runs/s\n" $n "$(echo "$t1 - $t0" | bc -l)" "$(echo "$RUNS / ($t1 - $t0)" | bc -l)"
done

echo "== state: takeover after kill -9 of a worker (lease ${LEASE}s), $ROUNDS rounds"
r=1
while [ $r -le "$ROUNDS" ]; do
  q "DELETE FROM wfengine.runs" >/dev/null
  worker victim 1
  victim=$(tail -1 "$tmp/pids")
  id=$("$WFENGINE" submit "$tmp/sleepy.lua" --state "$URL")
  while [ "$(q "SELECT count(*) FROM wfengine.events WHERE run_id = '$id' AND event::json->>'type' = 'step_started'")" = 0 ]; do sleep 0.02; done
  worker taker 1
  while [ "$(q "SELECT count(*) FROM pg_stat_activity WHERE query = 'LISTEN wfengine_queue'")" -lt 2 ]; do sleep 0.02; done
  t0=$(date +%s.%N)
  kill -KILL "-$victim"
  while [ "$(q "SELECT epoch FROM wfengine.runs WHERE run_id = '$id'")" -lt 2 ]; do sleep 0.01; done
  t1=$(date +%s.%N)
  echo "$t1 - $t0" | bc -l >> "$tmp/takeover"
  stop_workers
  r=$((r + 1))
done
printf "  takeover: median %.2f s (min %.2f, max %.2f); goal <= lease + 1 = %d s\n" "$(median "$tmp/takeover")" \
  "$(sort -n "$tmp/takeover" | head -1)" "$(sort -n "$tmp/takeover" | tail -1)" $((LEASE + 1))
