#!/usr/bin/env bash
# wf.http in dry-run (reads run, changes reported as "would" lines, secrets
# redacted) and simulate (nothing reaches the server).
set -u
. tests/http/lib.sh
http_server_start 26205
state=$(mktemp -d)
dry=$("$WFENGINE" run -q --dry-run --state "$state" tests/http/modes.lua -p url="$HTTP_URL" 2>"$state/dry.err")
dry_code=$?
printf "%s\n" "$dry" >"$state/dry.out"
sim=$("$WFENGINE" run -q --simulate --state "$state" tests/http/modes.lua -p url="$HTTP_URL" 2>"$state/sim.err")
sim_code=$?
checks=$("$PY" - "$HTTP_URL" "$state" "$dry_code" "$sim_code" <<'PY'
import glob, json, sys, urllib.request
base, state, dry_code, sim_code = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
def ok(cond, name):
    print("%sok - %s" % ("" if cond else "not ", name))
ok(dry_code == 0, "dry-run succeeds (exit %d)" % dry_code)
ok(sim_code == 0, "simulate succeeds (exit %d)" % sim_code)
answered = json.load(urllib.request.urlopen(base + "/count"))["answered"]
ok(answered == 4, "only the 4 reads of the dry-run reached the server (%d)" % answered)
events = []
for path in glob.glob(state + "/runs/*/events.jsonl"):
    events += [json.loads(line) for line in open(path) if line.strip()]
would = [e.get("message", "") for e in events if e.get("type") == "log" and e.get("level") == "would"]
ok(any(m.startswith("POST " + base + "/echo ") and '"token"' in m for m in would),
   "the POST is journaled as a 'would' line with its body")
ok(any(m == "DELETE " + base + "/echo" for m in would), "the DELETE too")
ok(any(m.startswith("PUT ") for m in would), "and the PUT of the parallel group")
text = "".join(open(p).read() for p in glob.glob(state + "/runs/*/events.jsonl"))
ok("tok-very-secret" not in text, "the bearer token never reaches the journal")
ok("tok-very-secret" not in open(state + "/dry.err").read(), "nor the terminal")
ok("insecure" in open(state + "/dry.out").read() + open(state + "/dry.err").read(), "insecure = true is shown")
PY
)
all=$(printf '%s\n%s\n%s\n' "$(printf "%s\n" "$dry" | grep -E "^(not )?ok|^#")" "$sim" "$checks" | grep -v '^1\.\.' | sed -E 's/^(not )?ok [0-9]+ /\1ok /')
printf '%s\n' "$all"
echo "1..$(printf '%s\n' "$all" | grep -cE '^(not )?ok')"
