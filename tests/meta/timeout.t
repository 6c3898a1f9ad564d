#!/bin/sh
# make test runs every file through tests/lib/timeout-exec: a file that
# hangs is killed with its children and fails, and one that finishes keeps
# its exit status.
cd "$(dirname "$0")/../.." || exit 1
echo "1..5"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cat >"$tmp/hang.t" <<EOT
#!/bin/sh
sleep 600 &
echo \$! >"$tmp/child"
wait
EOT
chmod +x "$tmp/hang.t"
out=$(WF_TEST_TIMEOUT=2 tests/lib/timeout-exec "$tmp/hang.t" 2>"$tmp/err")
rc=$?
[ "$rc" = 124 ] && echo "ok 1 - a hanging file exits 124" || echo "not ok 1 - a hanging file exits 124 (got $rc)"
case "$out" in *"not ok - $tmp/hang.t did not finish within 2s"*) echo "ok 2 - and says so in TAP" ;;
*) echo "not ok 2 - and says so in TAP: $out" ;; esac
child=$(cat "$tmp/child")
# The kill has happened when timeout-exec returned; the child is reaped by init.
i=0
while kill -0 "$child" 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
kill -0 "$child" 2>/dev/null && echo "not ok 3 - the file's children are killed too" || echo "ok 3 - the file's children are killed too"
printf '#!/bin/sh\necho "1..1"\necho "ok 1"\nexit 3\n' >"$tmp/quick.t"
chmod +x "$tmp/quick.t"
out=$(tests/lib/timeout-exec "$tmp/quick.t")
rc=$?
[ "$rc" = 3 ] && echo "ok 4 - a finished file keeps its status" || echo "not ok 4 - a finished file keeps its status (got $rc)"
grep -q -- '--exec tests/lib/timeout-exec' Makefile && echo "ok 5 - make test runs files through it" ||
  echo "not ok 5 - make test runs files through it"
