#!/usr/bin/env python3
# worker_clone.t: the clone in the lab through a worker (issue [9]), the
# worker killed -9 mid-copy, another finishing it. Own lab on ports
# 26790-26793 and a PostgreSQL cluster for the state on 26794 (fsync on).
#   1. A clean clone (foreground, file state) gives the reference outcome
#      (faultlab.Lab.outcome, as transient.t).
#   2. The lab reset; a source table is locked (faultlab hold_lock); the
#      clone is submitted (`wfengine submit ... --state URL`) and worker A
#      (its own directory and environment, secrets from its own -c config,
#      --lease 3) claims it. Once the journal shows step_started
#      copy_database AND the copy is seen waiting for the held lock, A's
#      whole process group is killed -9; a table is left in A's half-made
#      sandbox database (standing for the part of the copy a dead worker
#      leaves), then the lock goes.
#   3. Worker B (another directory and environment) takes the run over once
#      A's lease has run out and finishes it.
# Checks (clone.t's invariants): the run succeeded; the final state equals
# the clean clone's (databases, /_state, Service and Held/ folders); each
# app notified once, one SuperID registration; the journal: A's events
# (run_started: worker A, epoch 1) then B's run_resumed (worker B, epoch 2), step 8
# started again and nothing of A's after the takeover; the stored snapshot
# holds none of the lab's secrets.
# No fault is timed: the kill follows observed rows and a held lock.
import json
import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import faultlab  # noqa: E402

t, lab = faultlab.start("worker_clone", 26790)
STATE_PORT = 26794
if faultlab.port_open(STATE_PORT):
    print("1..0 # SKIP port %d is taken" % STATE_PORT)
    sys.exit(0)
URL = "postgresql://postgres@127.0.0.1:%d/postgres" % STATE_PORT
EXE = os.path.abspath(os.path.join(faultlab.ROOT, faultlab.WFENGINE))
CONFIG = os.path.join(faultlab.ROOT, "tests", "lab", "lab.yaml")
T, APPS = faultlab.TARGET, ("a1", "a2", "a3", "a4")
PG_STATE = os.path.join(lab.data, "pg-state")
workers = []


def sh(script, *args):
    return subprocess.run(["sh", "-c", ". tests/lib/pg.sh && " + script, "-"] + list(args),
                          cwd=faultlab.ROOT, capture_output=True, text=True)


def state_sql(query):
    return lab.psql(STATE_PORT, "postgres", query)


def until(predicate, what, timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    t.diag("timed out waiting for " + what)
    return None


def start_worker(name, *extra):
    """A worker on a machine of its own: its own directory, HOME, TMPDIR and
    environment (the lab's ports and secrets for its own -c config)."""
    home = os.path.join(lab.data, "worker-" + name)
    os.makedirs(os.path.join(home, "tmp"))
    env = dict(lab.env, HOME=home, TMPDIR=os.path.join(home, "tmp"))
    log = open(os.path.join(home, "log"), "w")
    p = subprocess.Popen([EXE, "worker", "-c", CONFIG, "--state", URL, "--name", name] + list(extra),
                         cwd=home, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    p.home = home
    workers.append(p)
    return p


def log_of(p):
    with open(os.path.join(p.home, "log")) as f:
        return f.read()


def events(run_id):
    return [json.loads(e) for (e,) in lab.rows(STATE_PORT, "postgres", "SELECT event FROM wfengine.events "
                                               "WHERE run_id = '%s' ORDER BY seq" % run_id)]


def notified():
    log = lab.http("GET", "/_log", auth=False)["requests"]

    def acted(method, path):
        return sum(1 for e in log if e["method"] == method and e["path"] == path
                   and 200 <= int(e.get("status") or 0) < 300 and not e.get("replayed") and not e.get("fault"))
    return {a: acted("POST", "/apps/%s/webhook" % a) for a in APPS}, acted("PUT", "/superid/customers/" + T)


faultlab.up_or_finish(t, lab)
lock = None
try:
    r = sh('pg_start "$1" "$2" -c fsync=on', PG_STATE, str(STATE_PORT))
    if not t.ok(r.returncode == 0, "a PostgreSQL cluster for the state on port %d" % STATE_PORT, r.stderr):
        raise SystemExit
    r = subprocess.run([EXE, "state", "init", "--state", URL], cwd=faultlab.ROOT, env=lab.env,
                       capture_output=True, text=True, timeout=60)
    t.ok(r.returncode == 0, "wfengine state init", r.stderr)

    # ---- 1. the reference: a clean clone -------------------------------------------
    lab.reset()
    clean = lab.clone()
    t.ok(clean.rc == 0, "a clean clone (exit %s, %.0fs): the reference" % (clean.rc, clean.seconds), clean.tail())
    reference = lab.outcome()

    # ---- 2. submit; worker A killed -9 inside step 8 -------------------------------
    lab.reset()
    lock = lab.hold_lock(lab.src, faultlab.SOURCE, "document")
    r = subprocess.run([EXE, "submit", "clone_sandbox.lua", "-c", "tests/lab/lab.yaml", "-p", "source=" +
                        faultlab.SOURCE, "-p", "target=" + T, "-y", "--state", URL], cwd=faultlab.ROOT,
                       env=lab.env, capture_output=True, text=True, timeout=120)
    run_id = r.stdout.strip()
    t.ok(r.returncode == 0 and len(run_id) == 25, "submit queues the clone (%s)" % run_id, r.stdout + r.stderr)
    snapshot = state_sql("SELECT snapshot FROM wfengine.runs WHERE run_id = '%s'" % run_id)
    leaked = [s for s in ("lab-token", "lab-mailadmin", "lab-app") if s in snapshot]
    t.ok(snapshot and not leaked, "the stored snapshot holds none of the lab's secrets", leaked)

    a = start_worker("A", "--lease", "3")

    def in_copy():
        started = [e for e in events(run_id) if e.get("type") == "step_started"]
        return started and started[-1].get("step") == "copy_database" and lock.waiters()
    seen = until(in_copy, "step 8 to start and wait for the held lock", timeout=180)
    t.ok(seen, "worker A is inside step 8: step_started copy_database journaled, the copy waits for the "
         "held source lock", log_of(a))
    os.killpg(a.pid, signal.SIGKILL)
    a.wait()
    gone = until(lambda: subprocess.run(["pgrep", "-g", str(a.pid)], capture_output=True).returncode != 0,
                 "A's process group to die", timeout=30)
    t.ok(gone, "kill -9 of A's whole process group (worker and child)")
    before = events(run_id)
    epoch_a = state_sql("SELECT epoch FROM wfengine.runs WHERE run_id = '%s'" % run_id)
    # what a dead worker leaves of a copy: its half-made database; B's step 8
    # must start again from an empty one (else this table reaches the outcome)
    lab.psql(lab.sbx, T, "CREATE TABLE left_by_worker_a (n int); INSERT INTO left_by_worker_a VALUES (1)")
    lock.release()

    # ---- 3. worker B takes over ------------------------------------------------------
    b = start_worker("B", "--lease", "10")
    status = until(lambda: state_sql("SELECT status FROM wfengine.runs WHERE run_id = '%s' AND status IN "
                                     "('succeeded', 'failed', 'compensated', 'paused')" % run_id),
                   "the run to end", timeout=240)
    t.ok(status == "succeeded", "worker B took the run over and it succeeded (%s)" % status, log_of(b))
    b.send_signal(signal.SIGTERM)
    t.ok(b.wait(timeout=60) == 0, "worker B stops on SIGTERM, exit 0", log_of(b))

    # ---- the invariants of clone.t -------------------------------------------------------
    diffs = lab.differences(reference, lab.outcome())
    t.ok(not diffs, "the same final state as a clean clone (sandbox and source databases, /_state, Service "
         "and Held/ folders)", diffs)
    apps, registrations = notified()
    t.ok(apps == dict.fromkeys(APPS, 1), "every app notified exactly once (%s)" % apps)
    t.ok(registrations == 1, "one SuperID registration (%d)" % registrations)
    mail = lab.mail()
    t.ok(sorted(k for k in mail if k.startswith("Service/%s/" % T)) == ["Service/%s/test" % T]
         and lab.held() == [], "the sandbox keeps its test mailbox only, nothing left in Held/", (mail, lab.held()))

    # ---- the journal: A's epoch, then B's --------------------------------------------
    after = events(run_id)
    t.ok(after[:len(before)] == before, "A's %d events stand unchanged" % len(before))
    started = [e for e in before if e.get("type") == "run_started"]
    resumed = [e for e in after if e.get("type") == "run_resumed"]
    t.ok(epoch_a == "1" and state_sql("SELECT epoch FROM wfengine.runs WHERE run_id = '%s'" % run_id) == "2",
         "the run's epoch: 1 (A's claim), then 2 (B's)")
    claims = [(e.get("worker"), e.get("epoch")) for e in started + resumed]
    t.ok(len(started) == 1 and len(resumed) == 1 and claims == [("A", 1), ("B", 2)]
         and started[0].get("pid") != resumed[0].get("pid"),
         "the journal: run_started by worker A (epoch 1), then run_resumed by worker B (epoch 2) %s" % claims,
         [json.dumps(e)[:300] for e in started + resumed])
    later = after[len(before):]
    t.ok(later and later[0].get("type") == "run_resumed",
         "after the kill the next event is B's run_resumed: nothing from A after the takeover",
         [json.dumps(e)[:200] for e in later[:3]])
    steps_b = [e.get("step") for e in later if e.get("type") == "step_started"]
    done_a = [e.get("step") for e in before if e.get("type") == "step_succeeded"]
    t.ok(steps_b[:1] == ["copy_database"] and not set(done_a) & set(steps_b) and len(done_a) == 7,
         "B started again at step 8 (A's 7 completed steps not repeated)", (done_a, steps_b[:3]))
    t.ok([e.get("step") for e in after if e.get("type") == "step_succeeded"].count("copy_database") == 1,
         "step 8 succeeded once, under B")
    r = subprocess.run([EXE, "show", run_id, "--state", URL, "--json"], cwd=faultlab.ROOT, env=lab.env,
                       capture_output=True, text=True, timeout=60)
    t.ok(r.returncode == 0 and '"succeeded"' in r.stdout, "show replays the journal: succeeded", r.stderr)
finally:
    if lock is not None:
        lock.release()
    for p in workers:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
    sh('pg_stop "$1"', PG_STATE)
    lab.down()
t.done()
