#!/usr/bin/env python3
# clone.t: clone_sandbox.lua end to end in a lab of its own (ports
# 26410-26413, data in tests/tmp/e2e-clone, SCALE=0.02), so it never meets a
# running lab. Checks, in order: the SQL address rewrite against
# mail.sandbox_address; --simulate with no lab; parameters refused with exit
# 2; a production target refused before anything changes; --dry-run changes
# nothing and says what it would do; a --fail-at after the copy puts the old
# sandbox and every service back; then the real clone and each step's effect
# from the databases, Dovecot and the emulator's /_state. Python stdlib only.
import hashlib, imaplib, json, os, re, shutil, socket, subprocess, sys, time, urllib.request

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
os.chdir(ROOT)
WFENGINE = os.environ.get("WFENGINE", "./wfengine")
DATA = os.path.join(ROOT, "tests", "tmp", "e2e-clone")
STATE = os.path.join(DATA, "state")
ENV = dict(os.environ, LAB_DATA=DATA, SCALE="0.02", LAB_PG_SOURCE_PORT="26410",
           LAB_PG_SANDBOX_PORT="26411", LAB_IMAP_PORT="26412", LAB_EMULATOR_PORT="26413",
           LAB_TASK_SECONDS="1", LAB_IIS_SECONDS="1")
ENV.pop("SANDBOX_MAIL_DOMAIN", None)
SRC, SBX, IMAP, EMU = 26410, 26411, 26412, 26413
TOKEN = ENV.get("LAB_EMULATOR_TOKEN", "lab-token")
IMAP_USER = ENV.get("LAB_IMAP_ADMIN_USER", "mailadmin")
IMAP_PASSWORD = ENV.get("LAB_IMAP_ADMIN_PASSWORD", "lab-mailadmin")
DOMAIN = "mailinator.com"
CLONE = [WFENGINE, "clone_sandbox.lua", "-c", "tests/lab/lab.yaml", "--state", STATE, "-y"]

n = 0
failed = False


def ok(cond, name, detail=None):
    global n, failed
    n += 1
    print("%s %d - %s" % ("ok" if cond else "not ok", n, name))
    if not cond:
        failed = True
        if detail is not None:
            for line in str(detail).splitlines()[-40:]:
                print("#   " + line)
    sys.stdout.flush()
    return cond


def port_open(port):
    try:
        socket.create_connection(("127.0.0.1", port), 0.5).close()
        return True
    except OSError:
        return False


def pg_bindir():
    found = sorted(d for d in (os.path.join("/usr/lib/postgresql", v, "bin")
                               for v in os.listdir("/usr/lib/postgresql"))
                   if os.path.exists(os.path.join(d, "initdb"))) if os.path.isdir("/usr/lib/postgresql") else []
    return found[-1] if found else None


def run(args, env=None, timeout=900):
    p = subprocess.run(args, env=env or ENV, capture_output=True, text=True, timeout=timeout)
    return p.returncode, p.stdout, p.stderr


def psql(port, db, query):
    p = subprocess.run([os.path.join(PG_BIN, "psql"), "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-F", "\t",
                        "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "-d", db, "-c", query],
                       capture_output=True, text=True, timeout=300)
    if p.returncode != 0:
        raise RuntimeError("psql: " + p.stderr)
    return p.stdout.rstrip("\n")


def rows(port, db, query):
    out = psql(port, db, query)
    return [line.split("\t") for line in out.split("\n")] if out else []


def checksum(port, db):
    """md5 of every table's rows (sorted), plus the database list and roles of the cluster."""
    h = hashlib.md5()
    for (table,) in rows(port, db, "SELECT format('%I.%I', schemaname, tablename) FROM pg_tables "
                                   "WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1"):
        h.update(table.encode())
        h.update(psql(port, db, "SELECT md5(coalesce(string_agg(t::text, E'\\n' ORDER BY t::text), '')) FROM %s t"
                      % table).encode())
    h.update(psql(port, "postgres", "SELECT string_agg(datname, ',' ORDER BY datname) FROM pg_database").encode())
    h.update(psql(port, "postgres", "SELECT string_agg(rolname, ',' ORDER BY rolname) FROM pg_roles").encode())
    return h.hexdigest()


def http(method, path, body=None, auth=True):
    headers = {"Content-Type": "application/json"}
    if auth:
        headers["Authorization"] = "Bearer " + TOKEN
    req = urllib.request.Request("http://127.0.0.1:%d%s" % (EMU, path), method=method, headers=headers,
                                 data=None if body is None else json.dumps(body).encode())
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.load(r)


def state():
    """/_state without what time alone changes (task states) and replaced-version history."""
    s = http("GET", "/_state", auth=False)

    def strip(v):
        if isinstance(v, dict):
            return {k: strip(x) for k, x in v.items()
                    if k not in ("history", "environment_history") and not (k == "state" and "finishes_at" in v)}
        if isinstance(v, list):
            return [strip(x) for x in v]
        return v
    s = strip(s)
    return json.dumps(s, sort_keys=True)


def superid_state(tenant):
    return http("GET", "/superid/tenants/%s/state" % tenant)["state"]


def imap_folders(tenant):
    return imap_list("Service/%s/*" % tenant)


def imap_list(pattern):
    m = imaplib.IMAP4("127.0.0.1", IMAP)
    m.login(IMAP_USER, IMAP_PASSWORD)
    typ, boxes = m.list('""', pattern)
    names = sorted(b.decode().rsplit(" ", 1)[-1].strip('"') for b in boxes if b)
    m.logout()
    return names


def imap_counts(tenant):
    """{folder: number of messages} of the tenant's Service folders."""
    m = imaplib.IMAP4("127.0.0.1", IMAP)
    m.login(IMAP_USER, IMAP_PASSWORD)
    out = {}
    for name in imap_folders(tenant):
        typ, data = m.status('"%s"' % name, "(MESSAGES)")
        out[name] = int(re.search(rb"MESSAGES (\d+)", data[0]).group(1)) if typ == "OK" else None
    m.logout()
    return out


def events(stdout):
    out = []
    for line in stdout.splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            pass
    return out


def sandbox_address(address, domain):
    """mail.sandbox_address, for comparing samples (the SQL itself is checked against the real one)."""
    if address is None or "@" not in address:
        return address
    ws = " \t\n\v\f\r"
    a, d = address.strip(ws), domain.strip(ws)
    local, part = a.rsplit("@", 1)
    low = lambda s: "".join(chr(ord(c) + 32) if "A" <= c <= "Z" else c for c in s)
    if low(part) == low(d):
        return a
    return local + "_" + low(part) + "@" + low(d)


PG_BIN = pg_bindir()
for port in (SRC, SBX, IMAP, EMU):
    if port_open(port):
        print("1..0 # SKIP port %d is taken" % port)
        sys.exit(0)
if not PG_BIN or not os.path.exists("/usr/sbin/dovecot"):
    print("1..0 # SKIP PostgreSQL or Dovecot missing: make deps")
    sys.exit(0)
if not os.path.exists(WFENGINE):
    print("1..0 # SKIP %s not built: make" % WFENGINE)
    sys.exit(0)

started = time.time()
shutil.rmtree(DATA, ignore_errors=True)
os.makedirs(DATA)

# ---- rehearsal and validation, no lab ------------------------------------------

rc, out, err = run([WFENGINE, "clone_sandbox.lua", "--simulate", "--state", STATE, "--json", "-y",
                    "-p", "source=cust1001", "-p", "target=sbx2001"])
ev = events(out)
succeeded = [e["step"] for e in ev if e.get("type") == "step_succeeded"]
ok(rc == 0 and len(succeeded) == 31, "--simulate runs all 31 steps with no lab (exit %d, %d succeeded)"
   % (rc, len(succeeded)), err)

rc, out, err = run([WFENGINE, "clone_sandbox.lua", "--simulate", "--state", STATE, "-y", "-p", "source=cust1001",
                    "-p", "target=sbx2001", "--fail-at", "update_company_license"])
ok(rc == 1, "--simulate --fail-at update_company_license compensates (exit %d)" % rc, out + err)

for label, params in [("hostile target id", ["source=cust1001", "target=sbx2001; DROP DATABASE x"]),
                      ("quoted target id", ["source=cust1001", 'target=sbx"2001']),
                      ("empty target", ["source=cust1001", "target="]),
                      ("empty source", ["source=", "target=sbx2001"]),
                      ("target == source", ["source=cust1001", "target=cust1001"]),
                      ("upper-case id", ["source=CUST1001", "target=sbx2001"]),
                      ("bad mail domain", ["source=cust1001", "target=sbx2001", "mail_domain=evil@x.com"]),
                      ("mail domain without a dot", ["source=cust1001", "target=sbx2001", "mail_domain=localhost"])]:
    args = [WFENGINE, "clone_sandbox.lua", "--state", STATE, "-y"]
    for p in params:
        args += ["-p", p]
    rc, out, err = run(args)
    ok(rc == 2, "refused before anything runs: %s (exit %d)" % (label, rc), out + err)

# ---- the lab -------------------------------------------------------------------

rc, out, err = run(["sh", "tests/lab/up"], timeout=600)
if not ok(rc == 0, "lab up on ports %d-%d in %s" % (SRC, EMU, DATA), out + err):
    run(["sh", "tests/lab/down"])
    print("1..%d" % n)
    sys.exit(1)

try:
    rc, out, err = run([WFENGINE, "tests/e2e/addresses_check.lua", "-c", "tests/lab/lab.yaml", "--state", STATE, "-y"])
    ok(rc == 0, "step 13's SQL gives exactly mail.sandbox_address on tricky values and free text", out + err)

    # issue [10]: production addresses in every text-bearing type, one
    # overflowing its varchar(30) once rewritten; whole-address columns (by
    # their names) holding several addresses, as text and in a text[]
    psql(SRC, "cust1001", """CREATE EXTENSION IF NOT EXISTS citext;
      CREATE DOMAIN mail_address AS varchar(60) CHECK (VALUE LIKE '%@%');
      CREATE TYPE contact_card AS (name text, mail varchar(60), cc text[]);
      ALTER TABLE person ADD COLUMN extra jsonb, ADD COLUMN cc text[], ADD COLUMN settings json,
        ADD COLUMN grid varchar(80)[][], ADD COLUMN ci citext, ADD COLUMN dom mail_address,
        ADD COLUMN card contact_card, ADD COLUMN cards contact_card[], ADD COLUMN code char(40),
        ADD COLUMN short_mail varchar(30), ADD COLUMN cc_email text, ADD COLUMN cc_emails text[];
      UPDATE person SET
        extra = '{"contact": {"mail": "Per.Olsen@Kunde.NO"}, "notes": "ring kari@firma.no", "x@keys.no": 1}',
        cc = '{ola@nordmann.no,x@y.com}', settings = '{"to": ["j@json.no", "k\\u0040esc.no"]}',
        grid = '{{a@b.no,c@d.no},{e@f.no,NULL}}', ci = 'CI.User@Example.COM', dom = 'dom@kunde.no',
        card = ROW('Ann', 'Ann@Comp.NO', '{t@tags.no}'), cards = ARRAY[ROW('Bo', 'bo@x.no', NULL)::contact_card],
        code = 'kari@firma.no', short_mail = 'a.very.long.name@company.no',
        cc_email = ' Per@Kunde.NO, kari@firma.no; ole@x.no ', cc_emails = '{"a@b.no c@D.no",e@mailinator.com}'
      WHERE id IN (SELECT id FROM person ORDER BY id LIMIT 3)""")

    # let the seeded customer task finish, so /_state is stable
    time.sleep(1.5)
    src0, sbx0, state0, folders0 = checksum(SRC, "cust1001"), checksum(SBX, "sbx2001"), state(), imap_folders("sbx2001")
    counts0 = imap_counts("sbx2001")
    ok(counts0 == {"Service/sbx2001/old-campaign": 1, "Service/sbx2001/support": 1, "Service/sbx2001/test": 1},
       "the seeded old sandbox has three Service folders of one message each", counts0)

    # a production tenant as target: refused by step 1's read-only check
    rc, out, err = run(CLONE + ["-p", "source=sbx2001", "-p", "target=cust1001"])
    ok(rc == 1 and "not a sandbox" in out + err, "a production target is refused at step 1 (exit %d)" % rc, out + err)
    ok(checksum(SRC, "cust1001") == src0 and state() == state0,
       "... and nothing changed (source checksum, /_state)")

    # dry-run
    rc, out, err = run(CLONE + ["--dry-run", "--json", "-p", "source=cust1001", "-p", "target=sbx2001"])
    ev = events(out)
    would = [e for e in ev if e.get("type") == "log" and e.get("level") == "would"]
    would_steps = sorted({e.get("step") for e in would})
    ok(rc == 0 and len([e for e in ev if e.get("type") == "step_succeeded"]) == 31,
       "--dry-run: every step (exit %d)" % rc, err + out[-3000:])
    ok(len(would) >= 20 and "drop_database" in would_steps and "notify_apps" in would_steps,
       "--dry-run lists what it would do (%d would lines in %d steps)" % (len(would), len(would_steps)),
       "\n".join(json.dumps(e) for e in would[:10]))
    ok(checksum(SRC, "cust1001") == src0 and checksum(SBX, "sbx2001") == sbx0, "--dry-run: databases unchanged")
    ok(state() == state0 and imap_counts("sbx2001") == counts0 and imap_list("Held/*") == [],
       "--dry-run: /_state and mailboxes unchanged (folders, messages, nothing held)")
    ok(any(e.get("step") == "provision_mail_service" and "rename mailbox Service/sbx2001/support to Held/sbx2001/" \
           in e.get("message", "") for e in would), "--dry-run: step 17 would move the folders aside",
       "\n".join(json.dumps(e) for e in would if e.get("step") == "provision_mail_service"))

    # a failure after the copy: everything back
    rc, out, err = run(CLONE + ["--json", "-p", "source=cust1001", "-p", "target=sbx2001",
                                "--fail-at", "prepare_database"])
    ev = events(out)
    comp = [e["step"] for e in ev if e.get("type") == "compensation_succeeded"]
    ok(rc == 1 and any(e.get("type") == "run_compensated" for e in ev),
       "--fail-at prepare_database: exit 1, compensated (%s)" % ",".join(comp), err + out[-3000:])
    ok(checksum(SBX, "sbx2001") == sbx0, "... the old sandbox is back (checksum, no renamed copy left)")
    ok(checksum(SRC, "cust1001") == src0, "... the source is untouched")
    ok(imap_counts("sbx2001") == counts0 and imap_list("Held/*") == [],
       "... the Service folders with their messages, nothing held", (imap_counts("sbx2001"), imap_list("Held/*")))
    s1 = state()
    ok(s1 == state0, "... /_state as before", "\n".join(
        l for l in __import__("difflib").unified_diff(
            json.dumps(json.loads(state0), indent=1, sort_keys=True).splitlines(),
            json.dumps(json.loads(s1), indent=1, sort_keys=True).splitlines(), lineterm="")))

    # the clone
    t0 = time.time()
    rc, out, err = run(CLONE + ["--json", "-p", "source=cust1001", "-p", "target=sbx2001"])
    ev = events(out)
    run_id = next((e.get("run_id") for e in ev if e.get("type") == "run_started"), None)
    ok(rc == 0 and any(e.get("type") == "run_succeeded" for e in ev),
       "the clone succeeds (exit %d, %.0fs)" % (rc, time.time() - t0), err + out[-4000:])
    ok(checksum(SRC, "cust1001") == src0, "source unchanged (checksum before and after)")

    # step 13: a schema-agnostic scan of every column of every table (each
    # row as text): no address outside the sandbox domain but the sandbox's
    # own test mailbox (step 17)
    mailbox = psql(SBX, "sbx2001", "SELECT string_agg(DISTINCT address, ' ') FROM mailbox")
    allowed = "@%s(?![A-Za-z0-9-]|\\.[A-Za-z0-9-])" % re.escape(DOMAIN)
    bad = []
    with_at = 0
    for (t,) in rows(SBX, "sbx2001", "SELECT format('%I.%I', schemaname, tablename) FROM pg_tables "
                                    "WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1"):
        text = "x::text"
        for address in (mailbox or "").split():
            text = "replace(%s, '%s', '')" % (text, address.replace("'", "''"))
        with_at += int(psql(SBX, "sbx2001", "SELECT count(*) FROM %s x WHERE strpos(x::text, '@') > 0" % t))
        k = psql(SBX, "sbx2001", "SELECT count(*) FROM %s x WHERE regexp_replace(%s, '%s', '', 'gi') ~ '@[A-Za-z0-9-]'"
                 % (t, text, allowed))
        if k != "0":
            bad.append("%s: %s rows, e.g. %s" % (t, k, psql(SBX, "sbx2001", "SELECT x::text FROM %s x WHERE "
                       "regexp_replace(%s, '%s', '', 'gi') ~ '@[A-Za-z0-9-]' LIMIT 1" % (t, text, allowed))[:300]))
    ok(not bad and with_at > 1000, "every address in every column of every table is @%s or the test mailbox "
       "(%d rows with @)" % (DOMAIN, with_at), "\n".join(bad))
    r = rows(SBX, "sbx2001", "SELECT extra::text, cc::text, short_mail, card::text FROM person ORDER BY id LIMIT 1")
    ok(r and r[0][1] == "{ola_nordmann.no@mailinator.com,x_y.com@mailinator.com}"
       and "Per.Olsen_kunde.no@mailinator.com" in r[0][0] and "x_keys.no@mailinator.com" in r[0][0]
       and re.match(r"^[0-9a-f]{15}@mailinator\.com$", r[0][2]) and "Ann_comp.no@mailinator.com" in r[0][3],
       "jsonb (keys too), text[], a composite and an overflowing varchar(30) rewritten in the copy stream", r)
    ev13 = [e for e in ev if e.get("type") == "step_succeeded" and e.get("step") == "rewrite_email_addresses"]
    res13 = ev13[0].get("result", {}) if ev13 else {}
    r = rows(SBX, "sbx2001", "SELECT cc_email, cc_emails::text FROM person ORDER BY id LIMIT 1")
    ok(r == [["Per_kunde.no@mailinator.com, kari_firma.no@mailinator.com; ole_x.no@mailinator.com",
              '{"a_b.no@mailinator.com c_d.no@mailinator.com",e@mailinator.com}']]
       and res13.get("changed", {}).get("person.cc_email") == 3 and res13.get("changed", {}).get("person.cc_emails") == 3
       and res13.get("in_place_values") == 0 and res13.get("in_place_columns") == 0,
       "whole-address columns holding several addresses (text, text[]): all rewritten in step 8's stream, "
       "step 13 rewrites 0 in place (changed %s, in place %s)" % (
           {c: res13.get("changed", {}).get(c) for c in ("person.cc_email", "person.cc_emails")},
           res13.get("in_place_values")), r)
    ok(res13.get("stream_values", 0) > 1000 and res13.get("in_place_values") == 0
       and res13.get("values") == res13.get("stream_values")
       and sum(res13.get("changed", {}).values()) == res13.get("values")
       and all(res13.get("changed", {}).get(c, 0) == 3 for c in ("person.extra", "person.cc", "person.card")),
       "step 13 counts the stream's rewrite per column (jsonb, arrays, composites too) and rewrites nothing "
       "in place (%s)" % json.dumps(res13), res13)
    src_at = int(psql(SRC, "cust1001", "SELECT count(*) FROM person WHERE email ILIKE '%@mailinator.com'"))
    ok(src_at == 0, "the source keeps its production addresses")
    for t, cols_ in (("person", "email, email2"), ("company", "email"), ("associate", "email")):
        q = "SELECT id, %s FROM %s ORDER BY id" % (cols_, t)
        a, b = rows(SRC, "cust1001", q), rows(SBX, "sbx2001", q)
        diffs = [(x, y) for x, y in zip(a, b)
                 if [sandbox_address(v, DOMAIN) if v != "" else v for v in x[1:]] != y[1:]]
        ok(len(a) == len(b) and not diffs, "%s.%s = sandbox_address(source value) on every row" % (t, cols_),
           diffs[:5])
    notes = rows(SBX, "sbx2001", "SELECT notes FROM person WHERE notes LIKE '%@%' LIMIT 1")
    ok(notes and re.search(r"_[a-z0-9.-]+@mailinator\.com", notes[0][0]), "addresses inside free text rewritten",
       notes)

    # steps 11, 12, 20, 25, 26 in the database
    ok(psql(SBX, "sbx2001", "SELECT count(*) FROM scheduled_task WHERE enabled") == "0"
       and psql(SRC, "cust1001", "SELECT count(*) FROM scheduled_task WHERE enabled") != "0",
       "scheduled tasks disabled (still enabled on the source)")
    ok(psql(SBX, "sbx2001", "SELECT string_agg(name, ',' ORDER BY name) FROM system_user WHERE kind = 'system' "
                            "AND associate_id IS NULL") == "batch,replication,system,webapi", "system users fixed")
    ok(psql(SBX, "sbx2001", "SELECT serial_number || '/' || owner_company FROM license")
       == "TEST-2001-0001/TEST Acme Industries AS", "serial number and owner company of the test tenant")
    ok(psql(SBX, "sbx2001", "SELECT name FROM company WHERE is_own") == "TEST Acme Industries AS",
       "own company renamed")
    ok(psql(SBX, "sbx2001", "SELECT count(*) FROM app_authorization a LEFT JOIN system_user s ON s.name = a.system_user "
                            "WHERE a.system_user IS NOT NULL AND s.id IS NULL") == "0"
       and psql(SBX, "sbx2001", "SELECT string_agg(app_id, ',' ORDER BY app_id) FROM app_authorization") == "a1,a2,a3,a4"
       and psql(SBX, "sbx2001", "SELECT count(*) FROM system_user WHERE name = 'app_legacy_fax'") == "1",
       "partner system users: the copy's apps plus the old sandbox's Legacy Fax")
    ok(psql(SBX, "sbx2001", "SELECT has_table_privilege('sbx2001_app', 'person', 'UPDATE') AND "
                            "has_database_privilege('sbx2001_query', 'sbx2001', 'CONNECT')") == "t"
       and psql(SBX, "sbx2001", "SELECT has_table_privilege('sbx2001_query', 'person', 'SELECT') AND NOT "
                                "has_table_privilege('sbx2001_query', 'person', 'UPDATE')") == "t",
       "logins: app reads and writes, query only reads")
    ok(psql(SBX, "postgres", "SELECT count(*) FROM pg_database WHERE datname LIKE 'sbx2001\\_old\\_%'") == "0"
       and "cloned" in psql(SBX, "postgres", "SELECT shobj_description(oid, 'pg_database') FROM pg_database "
                                              "WHERE datname = 'sbx2001'"),
       "the old sandbox database was dropped at the end; the new one says where it comes from")

    # step 17: one test mailbox
    ok(imap_folders("sbx2001") == ["Service/sbx2001/test"] and imap_folders("cust1001")
       == ["Service/cust1001/invoices", "Service/cust1001/sales", "Service/cust1001/support"],
       "IMAP: the sandbox keeps one Service mailbox, test (the source's untouched)", imap_folders("sbx2001"))
    ok(imap_counts("sbx2001") == {"Service/sbx2001/test": 1}, "IMAP: test keeps its message", imap_counts("sbx2001"))
    ok(imap_list("Held/*") == [], "IMAP: step 31 deleted the held folders, nothing left in Held/",
       imap_list("Held/*"))
    held_logs = [e.get("message") for e in ev if e.get("type") == "log" and "held" in str(e.get("message"))]
    ok(any("moved Service/sbx2001/support to Held/sbx2001/" in str(e.get("message")) for e in ev
           if e.get("type") == "log") and any("2 held Service folders deleted" in str(m) for m in held_logs),
       "the log says what step 17 moved aside and what step 31 deleted", held_logs)
    ok(psql(SBX, "sbx2001", "SELECT count(*) || ' ' || min(address) FROM mailbox") == "1 test@sbx2001.sandbox.lab"
       and psql(SBX, "sbx2001", "SELECT count(*) FROM mail_route") == "1", "database: one mailbox, one route")
    routes = http("GET", "/tenants/sbx2001/mail-routes")["mail_routes"]
    ok([r["address"] for r in routes] == ["test@sbx2001.sandbox.lab"], "control plane: one mail route", routes)

    # the control plane, SuperID, storage
    tenant = http("GET", "/tenants/sbx2001")
    ok(tenant["mode"] == "running", "tenant running")
    ok(http("GET", "/tenants/sbx2001/iis/operations")["active"] == 0
       and len(tenant["iis_operations"]) == 2, "IIS operations done")
    ok(http("GET", "/tenants/sbx2001/cluster")["generation"] == "old", "connected to the old cluster")
    ok(any(t["kind"] == "recycle" and t["state"] == "done" for t in tenant["tasks"].values()), "recycled")
    reg = http("GET", "/superid/customers/sbx2001")
    env = http("GET", "/superid/environments/cust1001-test")
    ok(reg["kind"] == "sandbox" and reg["environment"] == "cust1001-test", "SuperID registration", reg)
    ok(env["tenant"] == "sbx2001" and env["cloned_at"] != "2023-05-10T12:00:00Z", "SuperID test environment replaced", env)
    ok(superid_state("sbx2001") == "Normal", "SuperID state back to Normal")
    sid = http("GET", "/superid/tenants/sbx2001")
    ok(sorted(sid["users"]) == sorted(sid["plans"]) == ["u1", "u2", "u3", "u4", "u5"]
       and sid["plans"]["u1"] == ["sandbox-admin"] and sid["plans"]["u2"] == ["sandbox-user"],
       "users synced with their sandbox plans (u9 withdrawn)", sid)
    for path, key in (("/storage/%s/templates", "blobs"), ("/storage/%s/ejpackages", "blobs"),
                      ("/soarc/%s/packages", "packages")):
        a = sorted((b["name"], b["md5"]) for b in http("GET", path % "cust1001")[key])
        b = sorted((b["name"], b["md5"]) for b in http("GET", path % "sbx2001")[key])
        ok(a == b and a, "%s copied" % (path % "sbx2001"), (a, b))
    counts = {a: sum(1 for x in http("GET", "/apps/%s/notifications" % a)["notifications"]
                     if x["tenant"] == "sbx2001" and x["event"] == "BackupRestored") for a in ("a1", "a2", "a3", "a4")}
    ok(counts == {"a1": 1, "a2": 1, "a3": 1, "a4": 1}, "every authorized app notified exactly once", counts)

    # show
    rc, out, err = run([WFENGINE, "show", run_id or "?", "--state", STATE])
    ok(rc == 0 and ("wait_iis_operations" in out or "Wait for customers IIS" in out),
       "wfengine show lists the run", out + err)

    # past the irreversible step a failure pauses (exit 5); resume finishes
    rc, out, err = run(CLONE + ["--json", "-p", "source=cust1001", "-p", "target=sbx2001",
                                "--fail-at", "enter_running_mode"])
    ev = events(out)
    run2 = next((e.get("run_id") for e in ev if e.get("type") == "run_started"), None)
    ok(rc == 5 and any(e.get("type") == "run_paused" for e in ev)
       and http("GET", "/tenants/sbx2001/mode")["mode"] == "offline_maintenance",
       "a failure after notify_apps pauses, nothing undone (exit %d)" % rc, err + out[-2000:])
    # resume does not remember the config file (engine): give it again
    rc, out, err = run([WFENGINE, "resume", run2 or "?", "-c", "tests/lab/lab.yaml", "--state", STATE, "-y"])
    counts = {a: sum(1 for x in http("GET", "/apps/%s/notifications" % a)["notifications"]
                     if x["tenant"] == "sbx2001") for a in ("a1", "a2", "a3", "a4")}
    ok(rc == 0 and http("GET", "/tenants/sbx2001/mode")["mode"] == "running"
       and counts == {"a1": 2, "a2": 2, "a3": 2, "a4": 2},
       "resume finishes the paused run; each run notified each app once (exit %d, %s)" % (rc, counts), out + err)
finally:
    run(["sh", "tests/lab/down"])
    shutil.rmtree(DATA, ignore_errors=True)

print("# %.0fs" % (time.time() - started))
print("1..%d" % n)
sys.exit(1 if failed else 0)
