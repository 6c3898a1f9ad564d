#!/usr/bin/env bash
# wf.http: idempotency keys stable across retries and across resume.
set -u
. tests/http/lib.sh
http_server_start 26204
state=$(mktemp -d)
first=$("$WFENGINE" run -q --state "$state" tests/http/idempotency.lua -p url="$HTTP_URL" -p marker="$state/marker" 2>"$state/stderr1")
code1=$?
run_id=$(ls "$state/runs" | head -1)
second=$("$WFENGINE" resume -q -y --state "$state" "$run_id" 2>"$state/stderr2")
code2=$?
all=$(printf '%s\n%s\n' "$first" "$second" | grep -v '^1\.\.' | sed -E 's/^(not )?ok [0-9]+ /\1ok /')
printf '%s\n' "$all"
[ "$code1" = 5 ] && echo "ok - the first run pauses (exit 5)" || { echo "not ok - the first run pauses (exit $code1)"; cat "$state/stderr1" | sed 's/^/# /'; }
[ "$code2" = 0 ] && echo "ok - the resumed run succeeds" || { echo "not ok - the resumed run succeeds (exit $code2)"; sed 's/^/# /' "$state/stderr2"; }
echo "1..$(( $(printf '%s\n' "$all" | grep -cE '^(not )?ok') + 2 ))"
