#!/bin/sh
# valgrind.sh UNIT_BIN...: memcheck over the unit tests and a simulate run of
# a workflow that uses every binding (and the clone when it exists). Fails
# on any memory error or definite leak. `make valgrind` runs it.
set -u
cd "$(dirname "$0")/../.." || exit 1
command -v valgrind >/dev/null || { echo "valgrind: not installed (apt-get install valgrind)" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
vg() {
  valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite \
    --show-leak-kinds=definite --track-origins=yes "$@"
}
failed=0
for t in "$@"; do
  vg "$t" >"$tmp/out" 2>"$tmp/err"
  rc=$?
  if [ $rc = 99 ] || grep -q '^==[0-9]*==' "$tmp/err"; then
    echo "valgrind: $t: memory errors"; grep '^==' "$tmp/err" | head -40; failed=1
  else
    echo "valgrind: $t: clean (exit $rc)"
  fi
done
cat >"$tmp/all.lua" <<'LUA'
local sql, http, mail, json, yaml = require "wf.sql", require "wf.http", require "wf.mail", require "wf.json", require "wf.yaml"
return workflow {
  name = "valgrind",
  params = { pw = { secret = true, default = "s3cret" } },
  retry = { attempts = 2, delay = 0.5 },
  steps = {
    step "bindings" { run = function(ctx)
      local conn = sql.connect("postgresql://u:" .. ctx.params.pw .. "@127.0.0.1:1/db")
      conn:query("select $1::int", 1)
      http.get("http://127.0.0.1:1/x", { bearer = ctx.params.pw })
      mail.imap { url = "imap://127.0.0.1:1", user = "u", password = ctx.params.pw }:list()
      ctx.state.v = yaml.load(json.encode { a = { 1, 2 }, b = json.decode('{"c":[null,1.5]}') })
      ctx:sleep(3)
      return { ok = true }
    end, compensate = function() end },
    step "fails" { run = function(ctx) ctx:fail("planned", { retryable = true }) end },
  },
}
LUA
for wf in "$tmp/all.lua" $( [ -f clone_sandbox.lua ] && echo clone_sandbox.lua ); do
  extra=""
  [ "$wf" = clone_sandbox.lua ] && extra="-c tests/lab/lab.yaml -y -p source=cust1001 -p target=cust2001"
  # shellcheck disable=SC2086
  vg ./wfengine run "$wf" --simulate --state "$tmp/state" $extra >"$tmp/out" 2>"$tmp/err"
  rc=$?
  if [ $rc = 99 ] || grep -q '^==[0-9]*==' "$tmp/err"; then
    echo "valgrind: simulate $wf: memory errors"; grep '^==' "$tmp/err" | head -40; failed=1
  else
    echo "valgrind: simulate $wf: clean (exit $rc)"
  fi
done
exit $failed
