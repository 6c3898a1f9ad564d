"""faultlab.py: a private lab for the reliability tests (tests/e2e/faults.t,
transient.t, torture_clone.t) and the checks they share.

Each test starts its own lab (tests/lab/up) on four ports of 26700-26799 with
its data under tests/tmp/faults/<name>, SCALE=0.02, so one clone takes about
10 s and nothing meets the default lab or another test's lab.

    t, lab = faultlab.start("faults", 26700)   # ports 26700..26703 (or skip)
    faultlab.up_or_finish(t, lab); lab.reset()
    before = lab.snapshot()
    r = lab.clone("--fail-at", "prepare_database")
    lab.same(before, lab.snapshot())      # -> [] or a list of differences
    lab.down()

A snapshot is what "state as before" means in docs/reliability.md, the way
tests/e2e/clone.t measures it: a checksum over every row of every table of
the sandbox and of the source database (plus each cluster's databases and
roles), the emulator's /_state without replaced-version history and the
running/done state of tasks (time alone changes those), and every message of
the Service/<tenant>/ IMAP folders (folder, subject), and what is left in
Held/, where step 17 keeps the old sandbox's folders until the clone is done
(held()). Python stdlib only.
"""
import hashlib
import imaplib
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
WFENGINE = os.environ.get("WFENGINE", "./wfengine")
FULL = os.environ.get("WF_TEST_FULL", "") not in ("", "0")
SOURCE, TARGET = "cust1001", "sbx2001"
TOKEN = os.environ.get("LAB_EMULATOR_TOKEN", "lab-token")
IMAP_USER = os.environ.get("LAB_IMAP_ADMIN_USER", "mailadmin")
IMAP_PASSWORD = os.environ.get("LAB_IMAP_ADMIN_PASSWORD", "lab-mailadmin")
SANDBOX_DOMAIN = os.environ.get("LAB_SANDBOX_DOMAIN", "sbx2001.sandbox.lab")
# the seeded IMAP folders (tests/lab/seed), put back by reset()
SEED_FOLDERS = {(SOURCE, "acme-industries.com"): ["support", "sales", "invoices"],
                (TARGET, SANDBOX_DOMAIN): ["support", "test", "old-campaign"]}
PRISTINE = TARGET + "_pristine"   # template copy of the seeded sandbox database


class Tap:
    def __init__(self):
        self.n = 0
        self.failed = 0
        self.started = time.time()

    def ok(self, cond, name, detail=None, todo=None):
        self.n += 1
        line = "%s %d - %s" % ("ok" if cond else "not ok", self.n, name.replace("#", "\\#"))
        if todo:
            line += " # TODO " + todo
        print(line)
        if not cond:
            if not todo:
                self.failed += 1
            if detail:
                if not isinstance(detail, str):
                    detail = "\n".join(str(d) for d in detail)
                for l in detail.splitlines()[-60:]:
                    print("#   " + l)
        sys.stdout.flush()
        return cond

    def diag(self, msg):
        for l in str(msg).splitlines():
            print("# " + l)
        sys.stdout.flush()

    def done(self):
        print("# %.0fs" % (time.time() - self.started))
        print("1..%d" % self.n)
        sys.exit(1 if self.failed else 0)


def port_open(port):
    try:
        socket.create_connection(("127.0.0.1", port), 0.5).close()
        return True
    except OSError:
        return False


def pg_bindir():
    base = "/usr/lib/postgresql"
    if not os.path.isdir(base):
        return None
    found = sorted(os.path.join(base, v, "bin") for v in os.listdir(base)
                   if os.path.exists(os.path.join(base, v, "bin", "initdb")))
    return found[-1] if found else None


def events_of(text):
    out = []
    for line in text.splitlines():
        try:
            e = json.loads(line)
        except ValueError:
            continue
        if isinstance(e, dict):
            out.append(e)
    return out


class Run:
    """One finished (or killed) wfengine process."""

    def __init__(self, argv, rc, out, err, seconds, killed=None):
        self.argv, self.rc, self.out, self.err, self.seconds = argv, rc, out, err, seconds
        self.killed = killed  # None, or a description of when SIGKILL was sent
        self.events = events_of(out)

    @property
    def run_id(self):
        return next((e.get("run_id") for e in self.events if e.get("type") == "run_started"), None)

    def types(self, kind, field="step"):
        return [e.get(field) for e in self.events if e.get("type") == kind]

    def tail(self, n=30):
        lines = ["argv: " + " ".join(self.argv), "rc=%s %.1fs%s" % (self.rc, self.seconds,
                 " killed " + self.killed if self.killed else "")]
        lines += ["stderr: " + l for l in self.err.splitlines()[-12:]]
        lines += [json.dumps(e)[:300] for e in self.events[-n:]]
        return "\n".join(lines)


class Lab:
    def __init__(self, name, base_port):
        self.name = name
        self.data = os.path.join(ROOT, "tests", "tmp", "faults", name)
        self.state_dir = os.path.join(self.data, "state")
        self.src, self.sbx, self.imap, self.emu = base_port, base_port + 1, base_port + 2, base_port + 3
        self.env = dict(os.environ, LAB_DATA=self.data, SCALE=os.environ.get("WF_FAULTS_SCALE", "0.02"),
                        LAB_PG_SOURCE_PORT=str(self.src), LAB_PG_SANDBOX_PORT=str(self.sbx),
                        LAB_IMAP_PORT=str(self.imap), LAB_EMULATOR_PORT=str(self.emu),
                        LAB_TASK_SECONDS="1", LAB_IIS_SECONDS="1")
        self.env.pop("SANDBOX_MAIL_DOMAIN", None)
        self.env.pop("WFENGINE_STATE", None)
        self.config = "tests/lab/lab.yaml"
        self.pg_bin = pg_bindir()
        self.is_up = False

    # ---- life cycle ------------------------------------------------------------

    def skip_reason(self):
        for port in (self.src, self.sbx, self.imap, self.emu):
            if port_open(port):
                return "port %d is taken" % port
        if not self.pg_bin or not os.path.exists("/usr/sbin/dovecot"):
            return "PostgreSQL or Dovecot missing: make deps"
        if not os.path.exists(os.path.join(ROOT, WFENGINE)) and not os.path.exists(WFENGINE):
            return "%s not built: make" % WFENGINE
        return None

    def sh(self, args, timeout=600):
        p = subprocess.run(args, cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=timeout)
        return p.returncode, p.stdout + p.stderr

    def up(self):
        shutil.rmtree(self.data, ignore_errors=True)
        os.makedirs(self.data)
        rc, out = self.sh(["sh", "tests/lab/up"])
        self.is_up = True
        if rc != 0:
            return rc, out
        # a template copy of the seeded sandbox, so reset() takes a second
        self.psql(self.sbx, "postgres", "CREATE DATABASE %s TEMPLATE %s" % (PRISTINE, TARGET))
        return 0, out

    def down(self):
        if self.is_up:
            self.sh(["sh", "tests/lab/down"])
        if not os.environ.get("WF_FAULTS_KEEP"):
            shutil.rmtree(self.data, ignore_errors=True)

    def reset(self):
        """Back to the seeded lab: emulator, sandbox database and logins, IMAP folders."""
        self.http("DELETE", "/_faults", auth=False)
        self.http("POST", "/_reset", {"task_seconds": 1, "iis_seconds": 1}, auth=False)
        for (db,) in self.rows(self.sbx, "postgres", "SELECT datname FROM pg_database WHERE datname LIKE '%s%%' "
                                                     "AND datname <> '%s'" % (TARGET, PRISTINE)):
            self.psql(self.sbx, "postgres", 'DROP DATABASE "%s" WITH (FORCE)' % db)
        self.psql(self.sbx, "postgres", "CREATE DATABASE %s TEMPLATE %s" % (TARGET, PRISTINE))
        for login in ("app", "query"):
            self.psql(self.sbx, "postgres", "DO $$BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = "
                      "'%s_%s') THEN CREATE ROLE %s_%s LOGIN; END IF; END$$" % (TARGET, login, TARGET, login))
        m = self.imap_login()
        for pattern in ("Service/%s/*" % TARGET, "Held/*"):
            typ, boxes = m.list('""', pattern)
            for b in sorted((b.decode().rsplit(" ", 1)[-1].strip('"') for b in boxes if b), key=len, reverse=True):
                m.delete('"%s"' % b)  # a \Noselect parent answers NO: it goes with its children
        for (tenant, domain), folders in SEED_FOLDERS.items():
            if tenant != TARGET:
                continue
            for box in folders:
                name = "Service/%s/%s" % (tenant, box)
                m.create('"%s"' % name)
                msg = ("From: customer@example.org\r\nTo: %s@%s\r\nSubject: lab message for %s\r\n\r\nHello.\r\n"
                       % (box, domain, name)).encode()
                m.append('"%s"' % name, None, imaplib.Time2Internaldate(time.time()), msg)
        m.logout()
        time.sleep(1.2)  # the seeded task t3 finishes (task-seconds 1)

    # ---- services ----------------------------------------------------------------

    def psql(self, port, db, query):
        p = subprocess.run([os.path.join(self.pg_bin, "psql"), "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-F",
                            "\t", "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "-d", db, "-c", query],
                           capture_output=True, text=True, timeout=300, env=dict(self.env, PGCONNECT_TIMEOUT="10"))
        if p.returncode != 0:
            raise RuntimeError("psql :%d/%s: %s" % (port, db, p.stderr.strip()))
        return p.stdout.rstrip("\n")

    def hold_lock(self, port, db, table):
        """Takes ACCESS EXCLUSIVE on table in an open transaction of a psql session of its
        own and returns it once the lock is held; .waiters() lists the backends blocked
        behind it, .release() rolls back. Lets a test act while the engine is provably
        inside the statement that waits for the lock, instead of guessing an instant."""
        return HeldLock(self, port, db, table)

    def rows(self, port, db, query):
        out = self.psql(port, db, query)
        return [line.split("\t") for line in out.split("\n")] if out else []

    def checksum(self, port, db, drop=None):
        """md5 over every table's rows (sorted), the cluster's databases and its roles.
        drop = {table: [columns]}: left out of the rows (for comparing two clean runs)."""
        h = hashlib.md5()
        h.update(self.psql(port, "postgres", "SELECT string_agg(datname, ',' ORDER BY datname) FROM pg_database")
                 .encode())
        h.update(self.psql(port, "postgres", "SELECT string_agg(rolname, ',' ORDER BY rolname) FROM pg_roles")
                 .encode())
        if self.psql(port, "postgres", "SELECT count(*) FROM pg_database WHERE datname = '%s'" % db) != "1":
            return "missing:" + h.hexdigest()
        for (table,) in self.rows(port, db, "SELECT format('%I.%I', schemaname, tablename) FROM pg_tables "
                                            "WHERE schemaname NOT IN ('pg_catalog', 'information_schema') "
                                            "ORDER BY 1"):
            h.update(table.encode())
            short = table.split(".", 1)[1]
            if drop and short in drop:
                cols = [c for (c,) in self.rows(port, db, "SELECT quote_ident(column_name) FROM "
                        "information_schema.columns WHERE table_schema = 'public' AND table_name = '%s' "
                        "ORDER BY ordinal_position" % short) if c not in drop[short]]
                q = "SELECT md5(coalesce(string_agg(r::text, E'\\n' ORDER BY r::text), '')) FROM " \
                    "(SELECT ROW(%s) AS r FROM %s) t" % (", ".join(cols), table)
            else:
                q = "SELECT md5(coalesce(string_agg(t::text, E'\\n' ORDER BY t::text), '')) FROM %s t" % table
            h.update(self.psql(port, db, q).encode())
        return h.hexdigest()

    def table_sums(self, port, db):
        """{table: md5 of its rows}: to say which table differs."""
        out = {}
        for (table,) in self.rows(port, db, "SELECT format('%I.%I', schemaname, tablename) FROM pg_tables "
                                            "WHERE schemaname NOT IN ('pg_catalog', 'information_schema')"):
            out[table] = self.psql(port, db, "SELECT md5(coalesce(string_agg(t::text, E'\\n' ORDER BY t::text), ''))"
                                             " FROM %s t" % table)
        return out

    def http(self, method, path, body=None, auth=True, timeout=15):
        headers = {"Content-Type": "application/json"}
        if auth:
            headers["Authorization"] = "Bearer " + TOKEN
        req = urllib.request.Request("http://127.0.0.1:%d%s" % (self.emu, path), method=method, headers=headers,
                                     data=None if body is None else json.dumps(body).encode())
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return json.load(r)

    def fault(self, **f):
        return self.http("POST", "/_faults", f, auth=False)

    def faults(self):
        return self.http("GET", "/_faults", auth=False)["faults"]

    def wait_held(self, seconds=300):
        """Blocks until a request waits in an emulator "hold" fault (polled; bounded)."""
        deadline = time.time() + seconds
        while time.time() < deadline:
            if any(f.get("hold") and f.get("hits") for f in self.faults()):
                return True
            time.sleep(0.05)
        return False

    def release_held(self):
        return self.http("POST", "/_faults/release", {}, auth=False)

    def raw_state(self):
        return self.http("GET", "/_state", auth=False)

    def imap_login(self):
        m = imaplib.IMAP4("127.0.0.1", self.imap)
        m.login(IMAP_USER, IMAP_PASSWORD)
        return m

    def mail(self):
        """{folder: sorted subjects} of every Service/ folder."""
        m = self.imap_login()
        typ, boxes = m.list('""', "Service/*")
        out = {}
        for name in sorted(b.decode().rsplit(" ", 1)[-1].strip('"') for b in boxes if b):
            typ, _ = m.select('"%s"' % name, readonly=True)
            if typ != "OK":
                continue  # Service, Service/<tenant>: \\Noselect parents
            subjects = []
            typ, data = m.search(None, "ALL")
            ids = data[0].split() if data and data[0] else []
            for i in ids:
                typ, d = m.fetch(i, "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
                subjects.append(d[0][1].decode(errors="replace").strip())
            out[name] = sorted(subjects)
        m.logout()
        return out

    def held(self):
        """Every folder of the holding area Held/ (where step 17 keeps the old sandbox's
        Service folders until the clone succeeded), \\Noselect parents included."""
        m = self.imap_login()
        typ, boxes = m.list('""', "Held/*")
        m.logout()
        return sorted(b.decode().rsplit(" ", 1)[-1].strip('"') for b in boxes if b)

    # ---- snapshots -----------------------------------------------------------------

    @staticmethod
    def strip_state(s, volatile=()):
        """/_state without recorded history and task running/done (time alone moves those);
        volatile: more keys to drop (timestamps that differ between two clean runs)."""
        def strip(v):
            if isinstance(v, dict):
                return {k: strip(x) for k, x in v.items()
                        if k not in ("history", "environment_history") and k not in volatile
                        and not (k == "state" and "finishes_at" in v)}
            if isinstance(v, list):
                return [strip(x) for x in v]
            return v
        return strip(s)

    def snapshot(self, volatile=()):
        """Exactly what a compensation must restore (history and task running/done aside)."""
        return {"sandbox": self.checksum(self.sbx, TARGET), "source": self.checksum(self.src, SOURCE),
                "state": self.strip_state(self.raw_state(), volatile), "mail": self.mail(), "held": self.held()}

    def outcome(self):
        """The final state of a clone, comparable between two runs: as snapshot(), but
        without what differs between two clean runs from the same seeded lab: times
        (registration, cloning, notification, task), run ids in webhook bodies, the ids
        the emulator and the sequences hand out, and now() defaults in the rows the
        clone inserts."""
        return {"sandbox": self.checksum(self.sbx, TARGET, VOLATILE_COLUMNS),
                "source": self.checksum(self.src, SOURCE),
                "state": canonical(self.strip_state(self.raw_state(), VOLATILE_KEYS)), "mail": self.mail(),
                "held": self.held()}

    @staticmethod
    def differences(a, b, ignore=()):
        """[] when snapshots a and b agree, else readable differences."""
        out = []
        for k in ("sandbox", "source"):
            if k not in ignore and a[k] != b[k]:
                out.append("%s database checksum %s -> %s" % (k, a[k], b[k]))
        if "state" not in ignore and a["state"] != b["state"]:
            out.append("/_state differs:")
            out += diff_json(a["state"], b["state"])
        if "mail" not in ignore and a["mail"] != b["mail"]:
            out.append("mailboxes differ: %s -> %s" % (json.dumps(a["mail"]), json.dumps(b["mail"])))
        if "mail" not in ignore and a.get("held") != b.get("held"):
            out.append("held folders (Held/) differ: %s -> %s" % (a.get("held"), b.get("held")))
        return out

    # ---- the engine --------------------------------------------------------------

    def clone_argv(self, *extra):
        return [WFENGINE, "clone_sandbox.lua", "-c", self.config, "--state", self.state_dir, "-y", "--json",
                "-p", "source=" + SOURCE, "-p", "target=" + TARGET] + list(extra)

    def engine(self, argv, timeout=600, kill=None, on_event=None):
        """Runs wfengine. kill = fn(event, seconds since start) -> delay or None: once it
        returns a number for an event (None for each line), SIGKILL follows after that delay.
        on_event = fn(event): called for every event as it is printed (keep it short)."""
        t0 = time.time()
        p = subprocess.Popen(argv, cwd=ROOT, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
        out, err = [], []
        t_err = threading.Thread(target=lambda: err.append(p.stderr.read()), daemon=True)
        t_err.start()
        killed = [None]
        timer = [None]

        def do_kill(why):
            if p.poll() is None:
                try:
                    os.kill(p.pid, signal.SIGKILL)
                    killed[0] = why
                except ProcessLookupError:
                    pass

        watchdog = threading.Timer(timeout, do_kill, ["by the %ds watchdog" % timeout])
        watchdog.daemon = True
        watchdog.start()
        for line in p.stdout:
            out.append(line)
            if on_event is not None:
                try:
                    on_event(json.loads(line))
                except ValueError:
                    pass
            if kill is not None and timer[0] is None:
                try:
                    e = json.loads(line)
                except ValueError:
                    continue
                delay = kill(e, time.time() - t0)
                if delay is not None:
                    why = "%.2fs after %s %s" % (delay, e.get("type"), e.get("step") or "")
                    timer[0] = threading.Timer(delay, do_kill, [why])
                    timer[0].daemon = True
                    timer[0].start()
        p.wait()
        watchdog.cancel()
        if timer[0] is not None:
            timer[0].cancel()
        t_err.join(5)
        return Run(argv, p.returncode, "".join(out), "".join(err), time.time() - t0, killed[0])

    def clone(self, *extra, **kw):
        return self.engine(self.clone_argv(*extra), **kw)

    def resume(self, run_id, **kw):
        return self.engine([WFENGINE, "resume", run_id, "--state", self.state_dir, "-y", "--json"], **kw)

    def rollback(self, run_id, **kw):
        return self.engine([WFENGINE, "rollback", run_id, "--state", self.state_dir, "-y", "--json"], **kw)

    def restart_sandbox_pg(self):
        """pg_ctl restart -m fast of the sandbox cluster: every session is cut."""
        return self.sh(["sh", "-c", '. tests/lib/pg.sh; pg_as "$(pg_bindir)/pg_ctl" -D "$1/data" -m fast -w '
                        "-t 60 restart >/dev/null", "-", os.path.join(self.data, "pg-sandbox")])

    def dovecot(self, action):
        """dovecot_stop / dovecot_start of the lab's IMAP server."""
        d = os.path.join(self.data, "dovecot")
        if action == "stop":
            return self.sh(["sh", "-c", ". tests/lib/dovecot.sh; dovecot_stop \"$1\"", "-", d])
        return self.sh(["sh", "-c", ". tests/lib/dovecot.sh; dovecot_start \"$1\" \"$2\"", "-", d, str(self.imap)])

    def show(self, run_id):
        p = subprocess.run([WFENGINE, "show", run_id, "--state", self.state_dir, "--json"], cwd=ROOT,
                           env=self.env, capture_output=True, text=True, timeout=60)
        return p.returncode, p.stdout + p.stderr

    def steps(self):
        p = subprocess.run([WFENGINE, "plan", "clone_sandbox.lua", "--format", "json"], cwd=ROOT, env=self.env,
                           capture_output=True, text=True, timeout=60)
        return [s["id"] for s in json.loads(p.stdout)["steps"]]


# outcome(): left out when comparing the final states of two runs
class HeldLock:
    def __init__(self, lab, port, db, table):
        self.lab, self.port, self.db = lab, port, db
        self.p = subprocess.Popen([os.path.join(lab.pg_bin, "psql"), "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1",
                                   "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "-d", db],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=lab.env)
        self.p.stdin.write("BEGIN;\nLOCK TABLE %s IN ACCESS EXCLUSIVE MODE;\nSELECT pg_backend_pid();\n" % table)
        self.p.stdin.flush()
        line = self.p.stdout.readline().strip()
        if not line.isdigit():
            self.p.kill()
            raise RuntimeError("cannot lock %s in %s: %r" % (table, db, line))
        self.pid = int(line)

    def waiters(self):
        """The backends waiting for a lock that this session holds."""
        return [r[0] for r in self.lab.rows(self.port, "postgres", "SELECT pid FROM pg_stat_activity "
                                             "WHERE %d = ANY(pg_blocking_pids(pid))" % self.pid)]

    def wait_for_waiter(self, seconds=300):
        """Blocks until some backend waits for the lock (polled; bounded)."""
        deadline = time.time() + seconds
        while time.time() < deadline:
            if self.waiters():
                return True
            time.sleep(0.05)
        return False

    def release(self):
        if self.p.poll() is None:
            self.p.stdin.write("ROLLBACK;\n")
            self.p.stdin.close()
            self.p.wait(60)


VOLATILE_KEYS = ("created_at", "finishes_at", "received_at", "registered_at", "cloned_at", "run_id", "modified")
VOLATILE_COLUMNS = {"system_user": ["id", "created_at"], "app_authorization": ["id", "authorized_at"],
                    "mailbox": ["id"], "mail_route": ["id", "mailbox_id", "destination"]}


def canonical(v):
    """Generated ids out: a dict of records keyed by their own id becomes a sorted list of
    the records without id; a list of records loses their ids and is sorted."""
    if isinstance(v, dict):
        items = {k: canonical(x) for k, x in v.items()}
        if items and all(isinstance(x, dict) and x.get("id") == k for k, x in v.items()) \
                and any(re.match(r"^[a-z]+[0-9]+$", k) for k in v):
            return sorted((json.dumps({a: b for a, b in x.items() if a != "id"}, sort_keys=True)
                           for x in items.values()))
        return items
    if isinstance(v, list):
        out = [canonical(x) for x in v]
        if out and all(isinstance(x, dict) for x in out):
            return sorted(json.dumps({a: b for a, b in x.items() if a != "id"}, sort_keys=True) for x in out)
        return out
    return v


def counts(mail):
    """{folder: number of messages} of a snapshot's "mail"."""
    return {folder: len(subjects) for folder, subjects in mail.items()}


def diff_json(a, b):
    import difflib
    return list(difflib.unified_diff(json.dumps(a, indent=1, sort_keys=True).splitlines(),
                                     json.dumps(b, indent=1, sort_keys=True).splitlines(), lineterm="", n=2))[2:80]


def seed_from(label, default):
    """The seed for a randomised test: $<label> if set, else `default` (printed by the caller)."""
    v = os.environ.get(label)
    return int(v) if v not in (None, "") else default


def date_seed():
    return int(time.strftime("%Y%m%d", time.gmtime()))


def start(name, port):
    """The preamble of a lab test: from the repository root, a Tap and the
    Lab `name` on ports port..port+3; prints the TAP skip line and exits
    when the lab cannot run here (a port taken, PostgreSQL or Dovecot
    missing)."""
    os.chdir(ROOT)
    t = Tap()
    lab = Lab(name, port)
    why = lab.skip_reason()
    if why:
        print("1..0 # SKIP " + why)
        sys.exit(0)
    return t, lab


def up_or_finish(t, lab):
    """Starts the lab; when it does not come up, the failure is a test
    (with tests/lab/up's output), the lab goes down and the test ends."""
    rc, out = lab.up()
    if not t.ok(rc == 0, "lab up on ports %d-%d" % (lab.src, lab.emu), out):
        lab.down()
        t.done()

