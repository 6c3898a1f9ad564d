#!/usr/bin/env python3
# pool.t: the PostgreSQL state (issue [9]) against a real cluster on port
# 26820: runs, show and resume through it; a lock key refused across two
# working directories; submit and workers, a worker killed -9 while its run
# is mid-step and a replacement taking over; fencing (a worker stopped past
# its lease, the run taken over, then woken: not one more event or action).
# Faults are triggered from observed rows, never from sleeps.
import os
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import pgstate  # noqa: E402
import wftest  # noqa: E402

t = wftest.Tap()
TMP = tempfile.mkdtemp(prefix="wf-pool-")
pg = pgstate.Cluster(t, 26820, os.path.join(TMP, "pg"), cwd=TMP)
URL, DSN, EXE, psql, engine, until = pg.url, pg.dsn, pgstate.EXE, pg.psql, pg.engine, t.until
WORK = os.path.join(wftest.ROOT, "tests", "state", "work.lua")
procs = pg.procs


def start_worker(name, *extra):
    return pg.worker(name, "--state", URL, *extra)


pg.start("-c", "fsync=on")
try:
    r = engine("runs", "--state", URL)
    t.like(r.stderr, "state init", "before init: refused, naming `wfengine state init`")
    r = engine("state", "init", "--state", URL)
    t.is_(r.returncode, 0, "state init creates the tables")
    if r.returncode: t.diag(r.stderr[-800:])
    t.is_(engine("state", "init", "--state", URL).returncode, 0, "state init again: nothing to do")
    psql("CREATE TABLE attempts (id serial, run_id text, step text, at timestamptz DEFAULT clock_timestamp())")

    # ---- run, runs, show, resume in the foreground ----
    r = engine("run", WORK, "-p", "dsn=" + DSN, "-p", "pause=0", "--state", URL, "--json")
    t.is_(r.returncode, 0, "run --state postgresql://: succeeded")
    if r.returncode: t.diag(r.stderr[-800:])
    r = engine("run", WORK, "-p", "dsn=" + DSN, "-p", "pause=0", "-p", "target=b", "--state", URL,
               "--fail-at", "two", "--on-failure", "pause", "-q")
    t.is_(r.returncode, 5, "a run paused at step two")
    paused = engine("runs", "--state", URL, "--status", "paused", "--json").stdout.split('"run_id":"')[1][:25]
    r = engine("show", paused, "--state", URL)
    t.like(r.stdout, "paused", "show reads the run from PostgreSQL")
    t.like(engine("runs", "--state", URL).stdout, "holds lock target:b", "runs: the paused run holds its key")

    # ---- the lock key across two working directories ----
    other = os.path.join(TMP, "elsewhere")
    os.makedirs(other)
    r = engine("run", WORK, "-p", "dsn=" + DSN, "-p", "pause=0", "-p", "target=b", "--state", URL,
               cwd=other)
    t.is_(r.returncode, wftest.USAGE, "another directory, same key: refused")
    t.like(r.stderr, "held by run " + paused, "the refusal names the holder run")
    r = engine("resume", paused, "--state", URL, "-q", cwd=other)
    t.is_(r.returncode, 0, "resume from another directory finishes the paused run")
    if r.returncode: t.diag(r.stderr[-800:])
    r = engine("run", WORK, "-p", "dsn=" + DSN, "-p", "pause=0", "-p", "target=b", "--state", URL,
               "-q", cwd=other)
    t.is_(r.returncode, 0, "the key is free again once its run succeeded")
    t.is_(psql("SELECT count(*) FROM wfengine.runs WHERE status = 'succeeded'"), "3",
          "three runs succeeded")

    # ---- submit and workers; kill -9 a worker mid-step ----
    psql("TRUNCATE attempts")
    ids = []
    for i in range(8):
        r = engine("submit", WORK, "-p", "dsn=" + DSN, "-p", "pause=0.4", "-p", "target=s%d" % i,
                   "--state", URL)
        ids.append(r.stdout.strip())
    t.is_(len([x for x in ids if len(x) == 25]), 8, "submit prints each run's id")
    t.is_(psql("SELECT count(*) FROM wfengine.runs WHERE status = 'queued'"), "8", "8 runs queued")
    a = start_worker("a", "--concurrency", "3", "--lease", "2")
    victim = until(lambda: psql("SELECT run_id FROM attempts ORDER BY id LIMIT 1"), "a first attempt")
    os.killpg(a.pid, signal.SIGKILL)
    a.wait()
    b = start_worker("b", "--concurrency", "4", "--lease", "2")
    c = start_worker("c", "--concurrency", "4", "--lease", "2")
    done = until(lambda: psql("SELECT count(*) FROM wfengine.runs WHERE run_id IN (%s) AND status "
                              "IN ('succeeded', 'compensated')" % ",".join("'%s'" % x for x in ids))
                 == "8", "8 runs done", timeout=90)
    t.ok(done, "every submitted run ends succeeded after the kill -9 and the takeover")
    t.ok(int(psql("SELECT epoch FROM wfengine.runs WHERE run_id = '%s'" % victim) or 0) >= 2,
         "the killed worker's run was taken over (a new epoch)")
    extra = psql("""SELECT count(*) FROM (SELECT run_id, step, count(*) AS n FROM attempts
        GROUP BY run_id, step) a JOIN (SELECT run_id, event::json->>'step' AS step, count(*) AS n
        FROM wfengine.events WHERE event::json->>'type' = 'step_started' GROUP BY 1, 2) e
        USING (run_id, step) WHERE a.n > e.n""")
    t.is_(extra, "0", "no action attempt that was not journaled first (nothing repeated silently)")
    t.is_(psql("""SELECT count(*) FROM (SELECT run_id, event::json->>'step' FROM wfengine.events
        WHERE event::json->>'type' = 'step_succeeded' GROUP BY 1, 2 HAVING count(*) > 1) x"""), "0",
          "no step completed twice")
    for r_id in ids:
        r = engine("show", r_id, "--state", URL, "--json")
        if r.returncode != 0 or '"succeeded"' not in r.stdout:
            t.diag("run %s does not replay: %s" % (r_id, r.stderr))
            break
    else:
        t.ok(True, "every journal replays (show --json)")
    for p in (b, c):
        p.send_signal(signal.SIGTERM)
    t.is_([p.wait(timeout=30) for p in (b, c)], [0, 0], "SIGTERM: the idle workers stop, exit 0")

    # ---- fencing: SIGSTOP past the lease, takeover, SIGCONT ----
    psql("TRUNCATE attempts")
    r = engine("submit", WORK, "-p", "dsn=" + DSN, "-p", "pause=0.5", "-p", "target=f", "--state", URL)
    fid = r.stdout.strip()
    a = start_worker("stopped", "--lease", "2")
    until(lambda: psql("SELECT count(*) FROM attempts WHERE run_id = '%s'" % fid) == "1", "its first action")
    os.killpg(a.pid, signal.SIGSTOP)
    b = start_worker("taker", "--lease", "2")
    took = until(lambda: psql("SELECT status FROM wfengine.runs WHERE run_id = '%s'" % fid) == "succeeded",
                 "the takeover to finish the run", timeout=60)
    t.ok(took, "another worker took the stopped worker's run over and finished it")
    events = psql("SELECT count(*) FROM wfengine.events WHERE run_id = '%s'" % fid)
    attempts = psql("SELECT count(*) FROM attempts WHERE run_id = '%s'" % fid)
    os.killpg(a.pid, signal.SIGCONT)
    a.send_signal(signal.SIGTERM)
    a.wait(timeout=30)
    t.is_(psql("SELECT count(*) FROM wfengine.events WHERE run_id = '%s'" % fid), events,
          "after SIGCONT: not one more event from the fenced worker")
    t.is_(psql("SELECT count(*) FROM attempts WHERE run_id = '%s'" % fid), attempts,
          "after SIGCONT: not one more action from it")
    r = engine("show", fid, "--state", URL)
    t.like(r.stdout, "succeeded", "the run reads succeeded")
    b.send_signal(signal.SIGTERM)
    b.wait(timeout=30)
    # ---- NOTIFY: an idle worker is woken, submit --wait follows live ----
    w = start_worker("notified", "--lease", "5")
    until(lambda: psql("SELECT count(*) FROM pg_stat_activity WHERE query = 'LISTEN wfengine_queue'")
          == "1", "the worker to LISTEN")
    t0 = time.monotonic()
    r = engine("submit", WORK, "-p", "dsn=" + DSN, "-p", "pause=0", "-p", "target=w", "--state", URL,
               "--wait")
    elapsed = time.monotonic() - t0
    t.is_(r.returncode, 0, "submit --wait: the run's exit code (0, succeeded)")
    t.like(r.stdout + r.stderr, "[3/3] Three", "submit --wait shows the run's steps (the human view)")
    t.ok(elapsed < 3, "an idle worker took the run at once (NOTIFY; its slow poll is 5 s): %.1fs" % elapsed)
    r = engine("submit", WORK, "-p", "dsn=" + DSN, "-p", "pause=0", "-p", "target=w", "--state", URL,
               "--fail-at", "two", "--on-failure", "pause", "--wait", "-q")
    t.is_(r.returncode, 5, "submit --wait: a paused run's exit code (5)")
    w.send_signal(signal.SIGTERM)
    t.is_(w.wait(timeout=30), 0, "the notified worker stops on SIGTERM")
    # ---- the snapshot: modules in subdirectories of workflows/, no secret ----
    proj = os.path.join(TMP, "proj")
    os.makedirs(os.path.join(proj, "workflows", "sub"))
    with open(os.path.join(proj, "workflows", "sub", "mod.lua"), "w") as f:
        f.write("return { answer = 42 }\n")
    with open(os.path.join(proj, "flow.lua"), "w") as f:
        f.write('local mod = require "sub.mod"\nreturn workflow { name = "nested", steps = {\n'
                '  step "one" { run = function(ctx) return { answer = mod.answer, dsn = ctx.config.db.dsn ~= nil } end },\n'
                "} }\n")
    secret_config = os.path.join(proj, "team.yaml")
    with open(secret_config, "w") as f:
        f.write("db:\n  dsn: host=db.example password=Sup3rSecretPw\napi_token: TokTokTok1234\n")
    r = engine("submit", os.path.join(proj, "flow.lua"), "-c", secret_config, "--state", URL)
    nested = r.stdout.strip()
    t.is_(r.returncode, 0, "submit of a workflow requiring workflows/sub/mod.lua", r.stderr)
    snap = psql("SELECT snapshot FROM wfengine.runs WHERE run_id = '%s'" % nested)
    t.ok("workflows/sub/mod.lua" in snap, "the snapshot holds the module from a subdirectory of workflows/")
    t.ok("Sup3rSecretPw" not in snap and "TokTokTok1234" not in snap,
         "the snapshot holds no secret: neither a DSN's password nor a credential-named key")
    r = engine("show", nested, "--state", URL)
    t.ok(r.returncode == 0 and "is queued and has not started yet" in r.stdout,
         "show of a submitted run no worker has started: queued, not 'never started'", r.stdout + r.stderr)
    worker_tmp = os.path.join(TMP, "worker-tmp")
    os.makedirs(worker_tmp)
    w = pg.worker("nested", "--state", URL, "-c", secret_config, env=dict(os.environ, TMPDIR=worker_tmp))
    done = until(lambda: psql("SELECT status FROM wfengine.runs WHERE run_id = '%s'" % nested)
                 in ("succeeded", "failed", "compensated", "paused"), "the nested run to end")
    r = engine("show", nested, "--state", URL, "--json")
    t.like(r.stdout, '"answer":42', "a worker runs it from the snapshot, the module found (%s)" % done)
    t.like(r.stdout, '"dsn":true', "... with the secret config value back from the worker's own config")
    w.send_signal(signal.SIGTERM)
    w.wait(timeout=30)
    left = [os.path.join(d, f) for d, _, fs in os.walk(worker_tmp) for f in fs]
    t.ok(left == [] and os.listdir(worker_tmp) == [],
         "the worker removed the snapshot it wrote ($TMPDIR empty: no code, no config with its secrets)",
         repr(left or os.listdir(worker_tmp)))
    # ---- resume RUN --workflow FILE stores the edited code as the snapshot ----
    r = engine("submit", os.path.join(proj, "flow.lua"), "-c", secret_config, "--state", URL,
               "--fail-at", "one", "--on-failure", "pause")
    edited = r.stdout.strip()
    w = start_worker("edited", "-c", secret_config)
    until(lambda: psql("SELECT status FROM wfengine.runs WHERE run_id = '%s'" % edited) == "paused",
          "the run to pause at its injected failure")
    w.send_signal(signal.SIGTERM)
    w.wait(timeout=30)
    with open(os.path.join(proj, "flow2.lua"), "w") as f:
        f.write("-- edited after the pause: marker 7f3a\n" + open(os.path.join(proj, "flow.lua")).read())
    r = engine("resume", edited, "--workflow", os.path.join(proj, "flow2.lua"), "-c", secret_config,
               "--state", URL, "-q")
    t.is_(r.returncode, 0, "resume --workflow FILE of a queued run succeeds", r.stderr)
    snap = psql("SELECT snapshot FROM wfengine.runs WHERE run_id = '%s'" % edited)
    t.ok("marker 7f3a" in snap and "Sup3rSecretPw" not in snap,
         "resume --workflow stored the edited file as the run's snapshot (config kept, no secret)")
    # ---- confirm answered from the state; Ctrl-C while it waits ----
    CONFIRM = os.path.join(wftest.ROOT, "tests", "state", "confirm.lua")
    marks = os.path.join(TMP, "marks")

    def asked(before):
        return psql("""SELECT run_id FROM wfengine.events WHERE event::json->>'type' = 'confirm_asked'
            AND run_id NOT IN (%s) LIMIT 1""" % (",".join("'%s'" % x for x in before) or "''"))

    def answer(run_id, yes):
        psql("""INSERT INTO wfengine.answers (run_id, step, yes) VALUES ('%s', 'ask', %s);
            SELECT pg_notify('wfengine_events', '%s')""" % (run_id, yes, run_id))

    seen = []
    for yes, code, what in ((True, 0, "yes: the step acts, exit 0"), (False, None, "no: the step is declined")):
        p = subprocess.Popen([EXE, "run", CONFIRM, "-p", "marks=" + marks, "--state", URL, "-q",
                              "--confirm-from-state"], cwd=TMP, stdin=subprocess.DEVNULL,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        procs.append(p)
        rid = until(lambda: asked(seen), "confirm_asked")
        seen.append(rid)
        answer(rid, "true" if yes else "false")
        out, err = p.communicate(timeout=30)
        if code is not None:
            t.is_(p.returncode, code, "--confirm-from-state answered " + what)
        else:
            t.ok(p.returncode not in (0, 4), "--confirm-from-state answered " + what + " (exit %d)" % p.returncode)
    t.is_(open(marks).read().split(), ["acted"], "the action ran once: for the yes only")
    t.like(psql("SELECT string_agg(event::json->>'type', ' ' ORDER BY seq) FROM wfengine.events "
                "WHERE run_id = '%s'" % seen[0]), "confirm_asked confirm_answered step_started",
           "the question and its answer are journaled before the step starts")
    p = subprocess.Popen([EXE, "run", CONFIRM, "-p", "marks=" + marks, "--state", URL, "-q",
                          "--confirm-from-state"], cwd=TMP, stdin=subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    procs.append(p)
    rid = until(lambda: asked(seen), "confirm_asked")
    p.send_signal(signal.SIGINT)
    p.communicate(timeout=30)
    t.is_(p.returncode, 4, "Ctrl-C while waiting for the answer: interrupted (exit 4)")
    t.like(psql("SELECT event FROM wfengine.events WHERE run_id = '%s' ORDER BY seq DESC LIMIT 1" % rid),
           "run_interrupted", "run_interrupted is journaled in PostgreSQL")
    t.is_(psql("SELECT coalesce(owner, 'none') FROM wfengine.runs WHERE run_id = '%s'" % rid), "none",
          "and the run's lease is given back")
finally:
    pg.stop()
t.done()
