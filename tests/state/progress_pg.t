#!/usr/bin/env python3
# progress_pg.t: a step's progress (the console's progress bar) kept in the
# PostgreSQL state, port 26827 (console on 26828): `state init` makes schema
# version 2 with runs.progress; a run started as the console starts runs
# (--confirm-from-state) stores its step's last progress there, and the
# console's event stream hands it on (event: progress); a version 1 state
# (the column dropped, the version set back) still runs, without progress,
# until `state init` migrates it; a run started from the console on a
# PostgreSQL state is submitted to the workers, and its event stream stays
# open while the run waits for one.
import os
import queue
import sys
import threading
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import pgstate  # noqa: E402
import wfconsole  # noqa: E402
import wftest  # noqa: E402

t = wftest.Tap()
CONSOLE = 26828
pg = pgstate.Cluster(t, 26827, t.path("pg"), cwd=t.dir)
URL, EXE, psql, engine = pg.url, pgstate.EXE, pg.psql, pg.engine
WF = t.workflow("""
return workflow {
  name = "bar",
  steps = {
    step "copy" { run = function(ctx) ctx:progress(40, 100, "bytes"); return true end },
  },
}
""")


def run_bar():
    r = engine("run", WF, "--state", URL, "--confirm-from-state", "--json")
    first = r.stdout.split('"run_id":"')
    return r, first[1].split('"')[0] if len(first) > 1 else "none"


pg.start()
console = None
try:
    r = engine("state", "init", "--state", URL)
    t.like(r.stdout, "schema version 3", "state init: schema version 3")
    t.is_(psql("SELECT schema_version FROM wfengine.meta"), "3", "wfengine.meta says 3")
    t.is_(psql("SELECT count(*) FROM pg_trigger WHERE tgrelid = 'wfengine.events'::regclass "
               "AND NOT tgisinternal"), "0", "no trigger on wfengine.events (the append notifies)")

    r, rid = run_bar()
    t.is_(r.returncode, 0, "a run with --confirm-from-state succeeded")
    t.is_(psql("SELECT progress->>'step', progress->>'done', progress->>'total', progress->>'unit' "
               "FROM wfengine.runs WHERE run_id = '%s'" % rid), "copy|40|100|bytes",
          "the step's last progress is in runs.progress")
    console = wfconsole.Console(EXE, CONSOLE, t.dir, URL, log=t.path("serve.log"), cwd=t.dir)
    stream = console.stream(rid)
    progress = [d for k, d in stream if k == "progress"]
    t.ok(progress and progress[-1].get("done") == 40 and progress[-1].get("step") == "copy",
         "the console's event stream gives the progress from PostgreSQL", diag=[stream])
    t.ok(stream and stream[-1][0] == "end", "the stream ends (the run is over)")
    # a run started from the console on a PostgreSQL state goes to the
    # workers; its stream waits while no worker has taken it (the worker
    # starts once the stream has sent a keepalive: 15 s open, queued)
    code, body = console.call("POST", "/api/runs", {"workflow": os.path.basename(WF)[:-4], "mode": "run",
                                                    "params": {}})
    t.is_(code, 201, "POST /api/runs on a PostgreSQL state: queued", body)
    qid = body.get("run_id") if isinstance(body, dict) else None
    t.is_(psql("SELECT pooled FROM wfengine.runs WHERE run_id = '%s'" % qid), "t",
          "the run was submitted (a pooled run), not started by the console")
    lines = queue.Queue()

    def read_stream():
        try:
            with urllib.request.urlopen(console.request("GET", "/api/runs/%s/events" % qid),
                                        timeout=120) as r:
                for raw in r:
                    lines.put(raw.decode().rstrip("\n"))
        except OSError as e:
            lines.put("error: %s" % e)
        lines.put(None)

    reader = threading.Thread(target=read_stream, daemon=True)
    reader.start()
    before = []
    while True:
        line = lines.get(timeout=120)
        if line is None or line == ": keepalive" or line == "event: end":
            break
        before.append(line)
    t.ok(line == ": keepalive", "while no worker has taken the queued run, its stream stays open",
         diag=before + ["ended with: %r" % (line,)])
    worker = pg.worker("w1", "--state", URL)
    after = []
    while line is not None:
        line = lines.get(timeout=120)
        after.append(line)
    t.ok("event: end" in after and any(a and '"run_succeeded"' in a for a in after),
         "its stream follows it to the end once a worker runs it", diag=after[-6:])
    t.is_(psql("SELECT event::json->>'worker' FROM wfengine.events WHERE run_id = '%s' "
               "AND event::json->>'type' = 'run_started'" % qid), "w1", "a worker ran it")
    worker.terminate()
    worker.wait(30)

    # ---- a version 1 state: works without progress; state init migrates it ----
    psql("ALTER TABLE wfengine.runs DROP COLUMN progress; UPDATE wfengine.meta SET schema_version = 1")
    r, rid = run_bar()
    t.is_(r.returncode, 0, "on a version 1 state the run still succeeds")
    if r.returncode:
        t.diag(r.stderr[-800:])
    t.like(engine("show", rid, "--state", URL).stdout, "succeeded", "show reads it")
    r = engine("state", "init", "--state", URL)
    t.like(r.stdout, "schema version 3", "state init migrates version 1 to 3")
    t.is_(psql("SELECT count(*) FROM information_schema.columns WHERE table_schema = 'wfengine' "
               "AND table_name = 'runs' AND column_name = 'progress'"), "1", "runs.progress is back")
    r, rid = run_bar()
    t.is_(psql("SELECT progress->>'done' FROM wfengine.runs WHERE run_id = '%s'" % rid), "40",
          "after the migration progress is kept again")
finally:
    if console:
        console.stop()
    pg.stop()
t.done()
