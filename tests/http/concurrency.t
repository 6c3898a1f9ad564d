#!/usr/bin/env bash
# wf.http: http.parallel concurrency; a step timeout that cancels a request
# closes its connection (the server sees it). TAP numbers are left out so the
# workflow's lines and the checks below count as one plan.
set -u
. tests/http/lib.sh
http_server_start 26203
state=$(mktemp -d)
out=$("$WFENGINE" run -q --state "$state" tests/http/concurrency.lua -p url="$HTTP_URL" 2>"$state/stderr")
code=$?
checks=$("$PY" - "$HTTP_PORT" "$code" "$state/stderr" <<'PY'
import json, sys, time, urllib.request
port, code, stderr = sys.argv[1], int(sys.argv[2]), sys.argv[3]
base = "http://127.0.0.1:%s" % port
def ok(cond, name):
    print("%sok - %s" % ("" if cond else "not ", name))
ok(code == 1, "the run with a timed-out step fails with exit 1 (got %d)" % code)
ok("abandoned" in open(stderr).read(), "the error names the step")
seen = {}
for _ in range(40):
    seen = json.load(urllib.request.urlopen(base + "/observed/step_timeout"))
    if seen.get("closed"):
        break
    time.sleep(0.05)
ok(seen.get("closed") is True, "the server saw the abandoned request's connection closed")
ok(seen.get("after", 99) < 5, "... soon after the 1 s step timeout (%.2f s)" % seen.get("after", 99))
PY
)
all=$(printf '%s\n%s\n' "$out" "$checks" | grep -v '^1\.\.' | sed -E 's/^(not )?ok [0-9]+ /\1ok /')
printf '%s\n' "$all"
echo "1..$(printf '%s\n' "$all" | grep -cE '^(not )?ok')"
