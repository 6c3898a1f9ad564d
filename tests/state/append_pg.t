#!/usr/bin/env python3
# append_pg.t: how events reach the PostgreSQL state, port 26825 (the
# server logs every statement). Events the engine acts on (run_started,
# step_started, the ending: journal.synced) are one prepared statement
# each (wfengine_append), carrying the events held since the last one
# (a step's result): a 3-step run is 5 appends for its 8 events, in order.
# An event held with nothing after it (a log line in a long step) still
# reaches the state alone: the step waits for it to be visible before it
# ends. Texts with quotes, backslashes, braces and commas survive the
# array the batch travels in. A worker's child runs the queued runs one
# after the other, claiming the next itself: 3 runs queued before a worker
# with --concurrency 1 starts are run by one process (run_started's pid).
import json
import os
import signal
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import pgstate  # noqa: E402
import wftest  # noqa: E402

t = wftest.Tap()
pg = pgstate.Cluster(t, 26825, t.path("pg"), cwd=t.dir)
URL, psql, engine = pg.url, pg.psql, pg.engine
GO = t.path("go")
ODD = 'a"b\\c{x,y} \\"q\\", '
WF3 = t.workflow("""
return workflow {
  name = "three",
  steps = {
    step "one" { run = function(ctx) return %s end },
    step "two" { run = function(ctx) return 2 end },
    step "three" { run = function(ctx) return { list = { 1, 2 } } end },
  },
}
""" % wftest.lua_string(ODD), name="three.lua")
WAIT = t.workflow("""
return workflow {
  name = "wait",
  steps = {
    step "long" { run = function(ctx)
      ctx:log("visible before the step ends")
      while not io.open(%s) do ctx:sleep(0.02) end
      return true
    end },
  },
}
""" % wftest.lua_string(GO), name="wait.lua")


def server_log():
    with open(os.path.join(pg.dir, "server.log"), encoding="utf-8", errors="replace") as f:
        return f.read()


pg.start("-c", "fsync=on", "-c", "log_statement=all")
try:
    engine("state", "init", "--state", URL)
    before = server_log().count("execute wfengine_append")
    r = engine("run", WF3, "--state", URL, "-q")
    t.is_(r.returncode, 0, "the 3-step run succeeded")
    if r.returncode:
        t.diag(r.stderr[-800:])
    rid = psql("SELECT run_id FROM wfengine.runs WHERE workflow = 'three'")
    types = psql("SELECT string_agg(event::json->>'type', ' ' ORDER BY seq) FROM wfengine.events "
                 "WHERE run_id = '%s'" % rid)
    t.is_(types, "run_started step_started step_succeeded step_started step_succeeded step_started "
          "step_succeeded run_succeeded", "its 8 events, in order")
    t.is_(server_log().count("execute wfengine_append") - before, 5,
          "5 prepared appends: each step's result went with the next step_started")
    result = psql("SELECT event FROM wfengine.events WHERE run_id = '%s' AND seq = 3" % rid)
    t.is_(json.loads(result or "{}").get("result"), ODD,
          "quotes, backslashes, braces and commas survive the batch")
    t.is_(psql("SELECT status FROM wfengine.runs WHERE run_id = '%s'" % rid), "succeeded",
          "the run's row says succeeded")

    p = engine("run", WAIT, "--state", URL, "-q", wait=False)
    seen = False
    for _ in range(3000):  # the run's own end bounds it: it waits for GO
        if psql("SELECT count(*) FROM wfengine.events WHERE event::json->>'type' = 'log'") == "1":
            seen = True
            break
        if p.poll() is not None:
            break
        subprocess.run(["sleep", "0.02"])
    t.ok(seen, "a log line held with nothing after it reaches the state while its step runs")
    open(GO, "w").close()
    out, err = p.communicate(timeout=60)
    t.is_(p.returncode, 0, "the waiting run then succeeds", result=None)
    if p.returncode:
        t.diag(err[-800:])

    ids = [engine("submit", WF3, "--state", URL).stdout.strip() for _ in range(3)]
    env = dict(os.environ)
    env.pop("WFENGINE_STATE", None)
    worker = pg.worker("w", "--state", URL, "--concurrency", "1", "-q", env=env)
    done = ""
    for _ in range(3000):  # bounded by the runs' own ends
        done = psql("SELECT count(*) FROM wfengine.runs WHERE pooled AND status = 'succeeded'")
        if done == "3" or worker.poll() is not None:
            break
        subprocess.run(["sleep", "0.02"])
    t.is_(done, "3", "the worker ran the 3 queued runs")
    pids = psql("SELECT count(DISTINCT event::json->>'pid') FROM wfengine.events WHERE run_id IN (%s) "
                "AND event::json->>'type' = 'run_started'" % ",".join("'%s'" % i for i in ids))
    t.is_(pids, "1", "one child process ran them, one after the other")
    os.killpg(worker.pid, signal.SIGTERM)
    worker.wait(timeout=60)
finally:
    pg.stop()
t.done()
