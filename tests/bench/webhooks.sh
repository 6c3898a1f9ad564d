#!/bin/sh
# webhooks.sh: benchmark of step 29 (not a test). APPS partner apps (default
# 100) behind a stdlib Python HTTP server on loopback that answers every
# request after DELAY_MS (default 50 ms); one workflow posts one webhook to
# each app, one at a time and with http.parallel, ROUNDS times interleaved;
# prints the medians with min/max and the ratio.
#   APPS=100 DELAY_MS=50 ROUNDS=5 sh tests/bench/webhooks.sh
set -eu
cd "$(dirname "$0")/../.."
WFENGINE=${WFENGINE:-./wfengine}
APPS=${APPS:-100}
DELAY_MS=${DELAY_MS:-50}
ROUNDS=${ROUNDS:-5}
PORT=${PORT:-26195}
PY=$(command -v python3)
TMP=$(mktemp -d /tmp/wf-bench-hooks.XXXXXX)
cat >"$TMP/server.py" <<'PY'
import http.server, json, sys, time
delay = float(sys.argv[2]) / 1000
class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # else delayed ACKs add 40 ms per request
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        time.sleep(delay)
        body = json.dumps({"ok": True, "app": self.path}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
class Server(http.server.ThreadingHTTPServer):
    request_queue_size = 1024
    daemon_threads = True
Server(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
PY
"$PY" "$TMP/server.py" "$PORT" "$DELAY_MS" &
SERVER=$!
cleanup() { kill "$SERVER" 2>/dev/null || true; rm -rf "$TMP"; }
trap cleanup EXIT INT TERM
for _ in $(seq 1 50); do
  "$PY" -c "import socket; socket.create_connection(('127.0.0.1', $PORT), 0.2)" 2>/dev/null && break
  sleep 0.1
done

cat >"$TMP/hooks.lua" <<'LUA'
local http = require "wf.http"
local function requests(ctx)
  local list = {}
  for i = 1, tonumber(ctx.params.apps) do
    list[i] = { method = "POST", url = string.format("http://127.0.0.1:%s/apps/%d/webhook",
      ctx.params.port, i), json = { event = "sandbox.created", tenant = "bench", app = i } }
  end
  return list
end
return workflow { name = "bench_webhooks",
  params = { port = { required = true }, apps = { default = "100" }, mode = { required = true } },
  steps = { step "webhooks" { timeout = 600, run = function(ctx)
    local list = requests(ctx)
    local ok = 0
    if ctx.params.mode == "parallel" then
      for _, r in ipairs(http.parallel(list)) do if r.status == 200 then ok = ok + 1 end end
    else
      for _, req in ipairs(list) do if http.request(req).status == 200 then ok = ok + 1 end end
    end
    assert(ok == #list, "every app answered 200")
  end } } }
LUA
now() { date +%s.%N; }
run() { # run MODE: seconds of one run of the workflow
  start=$(now)
  "$WFENGINE" run -q "$TMP/hooks.lua" --state "$TMP/state" -p port="$PORT" -p apps="$APPS" -p mode="$1" >/dev/null
  awk "BEGIN { print $(now) - $start }"
}
run parallel >/dev/null # warm up (first Python import, page cache)
for round in $(seq 1 "$ROUNDS"); do
  run sequential >>"$TMP/sequential"
  run parallel >>"$TMP/parallel"
done
stats() { sort -n "$1" | awk '{ v[NR] = $1 } END { printf "%.3f %.3f %.3f", (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2, v[1], v[NR] }'; }
set -- $(stats "$TMP/sequential")
seq_med=$1 seq_min=$2 seq_max=$3
set -- $(stats "$TMP/parallel")
par_med=$1 par_min=$2 par_max=$3
printf '\nwebhooks (step 29): %s apps answering after %s ms, median of %s (min-max), whole wfengine runs\n' \
  "$APPS" "$DELAY_MS" "$ROUNDS"
printf '  %-28s %7.3f s  (%.3f-%.3f)\n' "one at a time" "$seq_med" "$seq_min" "$seq_max" \
  "http.parallel" "$par_med" "$par_min" "$par_max"
printf '  http.parallel is %.1fx faster (floor: %s x %s ms = %.2f s one at a time)\n' \
  "$(awk "BEGIN { print $seq_med / $par_med }")" "$APPS" "$DELAY_MS" "$(awk "BEGIN { print $APPS * $DELAY_MS / 1000 }")"
