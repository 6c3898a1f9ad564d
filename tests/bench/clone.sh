#!/bin/bash
# clone.sh: the whole clone_sandbox.lua in a lab of its own at SCALE
# (default 1; not a test): brings the lab up on ports 26420-26423 (data in a
# temporary directory), runs the 31 steps with --json and prints each step's
# wall time and share of the run, the ratio of step 13 (the proof scan) to
# step 8 (the copy with the rewrite in its stream; goal <= 0.20), and the
# whole run against step 8 plus the lab's timed waits (steps 2 and 30;
# goal <= 1.5x).
#   SCALE=1 bash tests/bench/clone.sh ; SCALE=10 bash tests/bench/clone.sh
set -eu
cd "$(dirname "$0")/../.."
WFENGINE=${WFENGINE:-./wfengine}
TMP=$(mktemp -d /tmp/wf-bench-clone.XXXXXX)
export LAB_DATA=$TMP/lab SCALE=${SCALE:-1} LAB_PG_SOURCE_PORT=26420 LAB_PG_SANDBOX_PORT=26421 \
  LAB_IMAP_PORT=26422 LAB_EMULATOR_PORT=26423
cleanup() { sh tests/lab/down >/dev/null 2>&1 || true; rm -rf "$TMP"; }
trap cleanup EXIT INT TERM
echo "clone: lab up at SCALE=$SCALE..."
sh tests/lab/up >"$TMP/up.log" 2>&1 || { tail -20 "$TMP/up.log"; exit 1; }
start=$(date +%s.%N)
"$WFENGINE" run clone_sandbox.lua -c tests/lab/lab.yaml --state "$TMP/state" -y --json \
  -p source=cust1001 -p target=sbx2001 >"$TMP/events" 2>"$TMP/err" || { tail -20 "$TMP/err"; exit 1; }
end=$(date +%s.%N)
python3 - "$TMP/events" "$(awk "BEGIN { print $end - $start }")" "$SCALE" <<'PY'
import json, sys
events = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
total, scale = float(sys.argv[2]), sys.argv[3]
steps = [(e["step"], e.get("elapsed", 0), e.get("result") or {}) for e in events if e.get("type") == "step_succeeded"]
print("clone at SCALE=%s: %.1f s wall, 31 steps" % (scale, total))
for name, sec, _ in sorted(steps, key=lambda s: -s[1])[:8]:
    print("  %-28s %7.2f s  %5.1f %%" % (name, sec, 100 * sec / total))
t = {name: sec for name, sec, _ in steps}
r = {name: res for name, _, res in steps}
s8, s13 = t.get("copy_database", 0), t.get("rewrite_email_addresses", 0)
waits = t.get("wait_customer_task", 0) + t.get("wait_iis_operations", 0)
print("  step 13 / step 8: %.2f (goal <= 0.20); step 8 rewrote %s values, step 13 %s in place"
      % (s13 / s8 if s8 else 0, r.get("copy_database", {}).get("rewritten_values"),
         r.get("rewrite_email_addresses", {}).get("in_place_values")))
print("  whole clone / (step 8 + timed waits %.1f s): %.2fx (goal <= 1.5x)" % (waits, total / (s8 + waits) if s8 + waits else 0))
PY
