#!/usr/bin/env python3
# workers.t: many workers sharing nothing but PostgreSQL (port 26824).
# 1. 3 workers, each with its own working directory, TMPDIR and HOME; 12
#    queued runs of tests/state/many.lua (60 under WF_TEST_FULL=1), a third
#    of them compensating; workers are killed -9 (their process group: the
#    machine is gone) at instants chosen from observed rows (a new action
#    attempt, a new journal event) and replaced. Every run ends succeeded or
#    compensated; no completed step's action (nor a compensated step's
#    compensation) is repeated; every journal replays.
# 2. PostgreSQL restarted (fast shutdown) once an action attempt is seen:
#    the workers reconnect and go on; nothing lost or doubled.
import json
import os
import random
import signal
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import pgstate  # noqa: E402
import wftest  # noqa: E402

t = wftest.Tap()
FULL = bool(os.environ.get("WF_TEST_FULL"))
RUNS = 60 if FULL else 12
KILLS = 12 if FULL else 4
SEED = int(os.environ.get("WF_WORKERS_SEED", "20261201"))
rng = random.Random(SEED)
TMP = tempfile.mkdtemp(prefix="wf-workers-")
pg = pgstate.Cluster(t, 26824, os.path.join(TMP, "pg"), cwd=TMP)
URL, DSN, EXE, psql, kill_group = pg.url, pg.dsn, pgstate.EXE, pg.psql, pgstate.kill_group
MANY = os.path.join(wftest.ROOT, "tests", "state", "many.lua")
serial = [0]


def until(predicate, what, timeout=60):
    return t.until(predicate, what, timeout, poll=0.02)


def start_worker():
    """A worker on a machine of its own: its own directory and environment."""
    serial[0] += 1
    name = "w%d" % serial[0]
    home = os.path.join(TMP, name)
    os.makedirs(os.path.join(home, "tmp"))
    env = {"PATH": os.environ["PATH"], "HOME": home, "TMPDIR": os.path.join(home, "tmp"),
           "WFENGINE_STATE": URL}
    return pg.worker(name, "--concurrency", "2", "--lease", "2", cwd=home, env=env,
                     log=os.path.join(home, "log"))


FAILING = set()


def submit(n, ids):
    for i in range(n):
        r = subprocess.run([EXE, "submit", MANY, "-p", "dsn=" + DSN, "-p", "pause=0.1", "-p",
                            "fail=%d" % (i % 3 == 2), "--state", URL], cwd=TMP, capture_output=True,
                           text=True)
        if r.returncode != 0:
            t.diag(r.stderr)
        ids.append(r.stdout.strip())
        if i % 3 == 2:
            FAILING.add(ids[-1])


def in_list(ids):
    return ",".join("'%s'" % x for x in ids)


def all_done(ids):
    return psql("SELECT count(*) FROM wfengine.runs WHERE run_id IN (%s) AND status IN "
                "('succeeded', 'compensated')" % in_list(ids)) == str(len(ids))


def check(ids, what):
    t.ok(until(lambda: all_done(ids), "every run to end", timeout=300 if FULL else 120),
         "%s: every run ends succeeded or compensated" % what)
    statuses = dict(line.split("|") for line in psql(
        "SELECT run_id, status FROM wfengine.runs WHERE run_id IN (%s)" % in_list(ids)).splitlines())
    bad = [x for x in ids if (statuses.get(x) == "compensated") != (x in FAILING)]
    t.is_(bad, [], "%s: the failing runs, and only they, are compensated" % what)
    # an attempt made after its step's completion was committed is a repeat
    repeated = psql("""SELECT string_agg(a.run_id || ' ' || a.step || ' ' || a.kind, ', ')
        FROM attempts a JOIN wfengine.events e ON e.run_id = a.run_id
          AND e.event::json->>'step' = a.step
          AND e.event::json->>'type' = CASE a.kind WHEN 'do' THEN 'step_succeeded'
                                        ELSE 'compensation_succeeded' END
        WHERE a.run_id IN (%s) AND a.events_before >= e.seq""" % in_list(ids))
    t.is_(repeated, "", "%s: no completed step's action (or compensation) repeated" % what)
    unjournaled = psql("""SELECT count(*) FROM (SELECT run_id, step, count(*) n FROM attempts
        WHERE kind = 'do' AND run_id IN (%s) GROUP BY 1, 2) a
        LEFT JOIN (SELECT run_id, event::json->>'step' step, count(*) n FROM wfengine.events
          WHERE event::json->>'type' = 'step_started' GROUP BY 1, 2) e USING (run_id, step)
        WHERE a.n > coalesce(e.n, 0)""" % in_list(ids))
    t.is_(unjournaled, "0", "%s: every action attempt was journaled before it ran" % what)
    twice = psql("""SELECT count(*) FROM (SELECT run_id, event::json->>'step' FROM wfengine.events
        WHERE run_id IN (%s) AND event::json->>'type' IN ('step_succeeded', 'compensation_succeeded')
        GROUP BY run_id, event::json->>'step', event::json->>'type' HAVING count(*) > 1) x""" % in_list(ids))
    t.is_(twice, "0", "%s: no step completed twice in a journal" % what)
    unreadable = []
    for rid in ids:
        r = subprocess.run([EXE, "show", rid, "--state", URL, "--json"], cwd=TMP, capture_output=True,
                           text=True)
        try:
            status = json.loads(r.stdout)["status"]
        except (ValueError, KeyError):
            status = None
        if status not in ("succeeded", "compensated"):
            unreadable.append("%s: %s %s" % (rid, status, r.stderr.strip()[-200:]))
    t.is_(unreadable, [], "%s: every journal replays (show --json)" % what)


pg.start("-c", "fsync=on")
try:
    r = subprocess.run([EXE, "state", "init", "--state", URL], capture_output=True, text=True)
    t.is_(r.returncode, 0, "state init")
    psql("""CREATE TABLE attempts (id serial, run_id text, step text, kind text, events_before int,
        at timestamptz DEFAULT clock_timestamp())""")

    # ---- 1. the kill matrix ----
    t.diag("seed %d, %d runs, %d kills" % (SEED, RUNS, KILLS))
    ids = []
    submit(RUNS, ids)
    live = [start_worker() for _ in range(3)]
    for k in range(KILLS):
        # the instant: the next action attempt, or the next journal event
        if rng.random() < 0.5:
            mark = int(psql("SELECT coalesce(max(id), 0) FROM attempts") or 0) + rng.randint(1, 4)
            seen = until(lambda: int(psql("SELECT coalesce(max(id), 0) FROM attempts") or 0) >= mark,
                         "attempt %d" % mark, timeout=60)
        else:
            mark = int(psql("SELECT count(*) FROM wfengine.events") or 0) + rng.randint(1, 8)
            seen = until(lambda: int(psql("SELECT count(*) FROM wfengine.events") or 0) >= mark,
                         "event %d" % mark, timeout=60)
        if not seen or all_done(ids):
            break
        victim = live.pop(rng.randrange(len(live)))
        kill_group(victim)
        live.append(start_worker())
    check(ids, "kill matrix")
    taken = psql("SELECT count(*) FROM wfengine.runs WHERE run_id IN (%s) AND epoch > 1" % in_list(ids))
    t.ok(int(taken or 0) >= 1, "kill matrix: runs were taken over (%s with epoch > 1)" % taken)

    # ---- 2. PostgreSQL restarted mid-run ----
    restart_ids = []
    submit(6, restart_ids)
    until(lambda: psql("SELECT count(*) FROM attempts WHERE run_id IN (%s)" % in_list(restart_ids))
          not in ("", "0"), "an attempt of the restart runs")
    r = pg.sh("pg_as \"$(pg_bindir)/pg_ctl\" -D %s/data -m fast -w restart >/dev/null" % pg.dir)
    t.is_(r.returncode, 0, "PostgreSQL restarted (fast: every connection cut)")
    check(restart_ids, "after the restart")
    for p in live:
        p.send_signal(signal.SIGTERM)
    t.is_([p.wait(timeout=60) for p in live], [0] * len(live), "the workers stop on SIGTERM, exit 0")
finally:
    pg.stop()
t.done()
