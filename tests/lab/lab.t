#!/bin/sh
# lab.t: tests/lab/up on the lab ports in a scratch data directory at a
# small SCALE, checks that each service answers and the seeded row counts,
# then tests/lab/down. Skips when a lab port is taken (a lab already up).
cd "$(dirname "$0")/../.." || exit 1
PY=$(command -v python3 || echo /usr/bin/python3)
export LAB_DATA="$PWD/tests/tmp/lab-t"
export SCALE=0.02
. tests/lab/env.sh
n=0
fail=0
ok() { n=$((n + 1)); if [ "$1" = 0 ]; then echo "ok $n - $2"; else echo "not ok $n - $2"; fail=1; fi; }
for p in "$LAB_PG_SOURCE_PORT" "$LAB_PG_SANDBOX_PORT" "$LAB_IMAP_PORT" "$LAB_EMULATOR_PORT"; do
  if lab_port_open "$p"; then echo "1..0 # SKIP port $p is taken (is the lab up?)"; exit 0; fi
done
for t in /usr/lib/postgresql/*/bin/initdb /usr/sbin/dovecot; do
  [ -x "$t" ] || { echo "1..0 # SKIP $t missing: make deps"; exit 0; }
done
rm -rf "$LAB_DATA"
mkdir -p "$LAB_DATA"
trap 'sh tests/lab/down >/dev/null 2>&1; rm -rf "$LAB_DATA"' EXIT
trap 'exit 1' INT TERM HUP PIPE

sh tests/lab/up >"$LAB_DATA/up.log" 2>&1
rc=$?
ok $rc "lab up"
[ $rc = 0 ] || sed "s/^/# /" "$LAB_DATA/up.log" >&2
sh tests/lab/up >/dev/null 2>&1
ok $? "lab up again is fine"
sh tests/lab/status >/dev/null 2>&1
ok $? "status: every service up"

. tests/lib/pg.sh
q() { lab_psql "$1" -d "$2" -At -c "$3" 2>&1; }
r=$(q "$LAB_PG_SOURCE_PORT" cust1001 "SELECT (SELECT count(*) FROM company) || ' ' || (SELECT count(*) FROM person) || ' ' || (SELECT count(*) FROM appointment) || ' ' || (SELECT count(*) FROM document)")
[ "$r" = "200 2005 10000 300" ]; ok $? "cust1001 row counts at SCALE=0.02 (got: $r)"
r=$(q "$LAB_PG_SOURCE_PORT" cust1001 "SELECT count(*) FILTER (WHERE email ~ '[A-Z]') > 0 AND count(*) FILTER (WHERE email LIKE '%+%') > 0 AND count(*) FILTER (WHERE email LIKE '%@mail.%') > 0 FROM person")
[ "$r" = t ]; ok $? "addresses in mixed case, plus-addressed, on subdomains"
r=$(q "$LAB_PG_SOURCE_PORT" cust1001 "SELECT string_agg(app_id, ',' ORDER BY app_id) FROM app_authorization")
[ "$r" = "a1,a2,a3" ]; ok $? "cust1001 app authorizations match the emulator's apps ($r)"
r=$(q "$LAB_PG_SOURCE_PORT" cust1001 "SELECT serial_number FROM license")
[ "$r" = "1001-4471-ACME" ]; ok $? "cust1001 license"
r=$(q "$LAB_PG_SANDBOX_PORT" sbx2001 "SELECT (SELECT serial_number FROM license) || ' ' || (SELECT count(*) FROM scheduled_task WHERE enabled) || ' ' || (SELECT count(*) FROM person WHERE email NOT LIKE '%@mailinator.com')")
[ "$r" = "TEST-2001-0001 0 0" ]; ok $? "sbx2001 is an older sandbox: test license, tasks off, addresses rewritten ($r)"
r=$(q "$LAB_PG_SANDBOX_PORT" postgres "SELECT string_agg(rolname, ',' ORDER BY rolname) FROM pg_roles WHERE rolname LIKE 'sbx2001%'")
[ "$r" = "sbx2001_app,sbx2001_query" ]; ok $? "sandbox logins ($r)"
PGPASSWORD=$LAB_DB_APP_PASSWORD "$(pg_bindir)/psql" -X -h 127.0.0.1 -p "$LAB_PG_SANDBOX_PORT" -U sbx2001_query -d sbx2001 -Atc "SELECT count(*) FROM company" >/dev/null 2>&1
ok $? "sbx2001_query can read"

"$PY" - "$LAB_IMAP_PORT" "$LAB_IMAP_ADMIN_USER" "$LAB_IMAP_ADMIN_PASSWORD" <<'PY'
import imaplib, sys
m = imaplib.IMAP4("127.0.0.1", int(sys.argv[1]))
m.login(sys.argv[2], sys.argv[3])
typ, boxes = m.list('""', "Service/sbx2001/*")
names = sorted(b.decode().rsplit(" ", 1)[-1].strip('"') for b in boxes if b)
typ, n = m.select('"Service/sbx2001/support"', readonly=True)
sys.exit(0 if names == ["Service/sbx2001/old-campaign", "Service/sbx2001/support", "Service/sbx2001/test"] and n[0] == b"1" else 1)
PY
ok $? "IMAP: admin logs in and sees the sandbox's Service folders"

"$PY" - "$LAB_EMULATOR_PORT" "$LAB_EMULATOR_TOKEN" <<'PY'
import json, sys, urllib.request
req = urllib.request.Request("http://127.0.0.1:%s/tenants/sbx2001" % sys.argv[1],
                             headers={"Authorization": "Bearer " + sys.argv[2]})
with urllib.request.urlopen(req, timeout=5) as r:
    sys.exit(0 if json.load(r)["kind"] == "sandbox" else 1)
PY
ok $? "emulator answers with the token"

sh tests/lab/seed --force >/dev/null 2>&1
r=$(q "$LAB_PG_SOURCE_PORT" cust1001 "SELECT count(*) FROM person")
[ "$r" = 2005 ]; ok $? "seed --force rebuilds ($r persons)"

sh tests/lab/down >/dev/null 2>&1
ok $? "lab down"
sh tests/lab/status >/dev/null 2>&1
[ $? = 1 ]; ok $? "status: down"
sh tests/lab/down >/dev/null 2>&1
ok $? "down when nothing runs is fine"
echo "1..$n"
exit $fail
