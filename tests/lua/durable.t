#!/usr/bin/env python3
# Durable runs (docs/operations.md): resume after pause, kill -9 and SIGINT; resume
# with an edited workflow (allowed and refused); rollback; runs and show;
# lock contention and a killed holder keeping its key; a missing secret on resume; a
# journal with a torn tail and with a garbled middle line.
# The state is files, or PostgreSQL under WF_TEST_STATE=postgres
# (tests/state/durable_pg.t): the same checks hold for both.
import json, os, signal, subprocess, sys, tempfile, time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import state_backend

WFENGINE = os.environ.get("WFENGINE", "./wfengine")
count = failed = 0


def ok(cond, name, detail=None):
    global count, failed
    count += 1
    failed += not cond
    print(("ok" if cond else "not ok") + " %d - %s" % (count, name), flush=True)
    if not cond and detail is not None:
        for line in str(detail).splitlines():
            print("#   " + line)
    return cond


def is_(got, want, name):
    return ok(got == want, name, "got %r, want %r" % (got, want))


def wf(args, env=None, **kw):
    e = dict(os.environ)
    e.update(env or {})
    p = subprocess.run([WFENGINE] + args + ["--state", STATE], capture_output=True, text=True,
                       env=e, timeout=60, **kw)
    return p.returncode, p.stdout, p.stderr


def newest():
    return BACKEND.newest()


def events(run_id):
    return BACKEND.events(run_id)


def types(run_id, step=None):
    return [e["type"] for e in events(run_id) if step is None or e.get("step") == step]


WORKFLOW = r'''
local marks = os.getenv("MARKS")
local function mark(text)
  local f = assert(io.open(marks, "a")); f:write(text, "\n"); f:close()
end
return workflow {
  name = "durable",
  on_failure = os.getenv("POLICY") or "pause",
  lock = function(ctx) return "durable:" .. ctx.params.target end,
  params = {
    target = { default = "t1" },
    password = { secret = true, required = true, env = "DURABLE_PASSWORD" },
  },
  steps = {
    step "one" {
      run = function(ctx) mark("one"); ctx.state.seen = ctx.params.password ~= nil; return { n = 1 } end,
      compensate = function(ctx, r) mark("undo one " .. r.n) end,
    },
    step "two" {
      run = function(ctx)
        mark("two")
        if os.getenv("FAIL_TWO") then error("two is broken") end
        ctx:sleep(tonumber(os.getenv("SLEEP_TWO") or "0"))
        return 2
      end,
      compensate = function(ctx, r) mark("undo two " .. r) end,
    },
    step "three" { run = function(ctx) mark("three " .. tostring(ctx.state.seen)); return 3 end },
  },
}
'''

with tempfile.TemporaryDirectory() as tmp:
    BACKEND = state_backend.open_state(os.path.join(tmp, "state"))
    STATE = BACKEND.state
    PG = BACKEND.kind == "postgres"
    path = os.path.join(tmp, "durable.lua")
    marks = os.path.join(tmp, "marks")
    with open(path, "w") as f:
        f.write(WORKFLOW)
    base = {"MARKS": marks, "DURABLE_PASSWORD": "s3cret-pw"}

    def marks_read():
        if not os.path.exists(marks):
            return []
        return open(marks).read().split()

    def reset_marks():
        if os.path.exists(marks):
            os.remove(marks)

    # pause, then resume without the secret, then with it
    code, out, err = wf(["run", path], dict(base, FAIL_TWO="1"))
    is_(code, 5, "a failing step pauses under on_failure = pause (exit 5)")
    paused = newest()
    code, out, err = wf(["run", path], base)
    is_(code, 2, "a second run on the same lock key is refused while the first is paused")
    ok(paused in err and "paused" in err, "the refusal names the holder run and its state", err)
    code, out, err = wf(["resume", paused], {"MARKS": marks})
    is_(code, 2, "resume without the secret is refused")
    ok("password" in err and "DURABLE_PASSWORD" in err, "the refusal names the missing secret", err)
    reset_marks()
    code, out, err = wf(["resume", paused], base)
    is_(code, 0, "resume after pause succeeds")
    is_(marks_read(), ["two", "three", "true"], "completed steps are not run again; ctx.state came back")
    is_(types(paused, "one").count("step_started"), 1, "step one started once in the journal")
    code, out, err = wf(["resume", paused], base)
    is_(code, 2, "resuming a succeeded run is refused")
    ok("already succeeded" in err, "and says so", err)
    code, out, err = wf(["run", path], base)
    is_(code, 0, "the lock is free again after a successful resume")

    # rollback of a paused run
    code, out, err = wf(["run", path], dict(base, FAIL_TWO="1"))
    run = newest()
    reset_marks()
    code, out, err = wf(["rollback", run], base)
    is_(code, 1, "rollback of a paused run compensates it (exit 1)")
    is_(marks_read(), ["undo", "one", "1"], "only the completed step was undone, with its result")
    code, out, err = wf(["show", run, "--json"], base)
    shown = json.loads(out)
    is_(shown["status"], "compensated", "show --json says compensated")
    is_([s["status"] for s in shown["steps"]], ["succeeded", "failed", "pending"], "show --json lists every step")
    is_(shown["steps"][0]["compensation"], "done", "show --json has the step's undo state")
    code, out, err = wf(["run", path], base)
    is_(code, 0, "the lock is free again after a rollback")

    def wait_for_step_two(before):
        """The id of the run started after `before`, once its step two runs."""
        for _ in range(400):
            time.sleep(0.05)
            runs = BACKEND.runs() - before
            try:
                if runs and "step_started" in types(max(runs), "two"):
                    return max(runs)
            except (FileNotFoundError, ValueError):
                pass
        return None

    # kill -9 in the middle of step two, then resume
    before = BACKEND.runs()
    proc = subprocess.Popen([WFENGINE, "run", path, "--state", STATE, "-q"],
                            env=dict(os.environ, **base, SLEEP_TWO="30"))
    killed = wait_for_step_two(before)
    proc.kill()
    proc.wait()
    ok(BACKEND.wait_released(killed), "the killed run's hold ends (PostgreSQL: its lease runs out)")
    code, out, err = wf(["runs"], base)
    ok(killed in out and "crashed" in out, "runs lists the killed run as crashed", out)
    ok("holds lock durable:t1" in out, "runs says the crashed run still holds its lock key", out)
    code, out, err = wf(["run", path], base)
    is_(code, 2, "a run killed after a step began keeps its lock key (it may owe compensation)")
    ok(killed in err and "crashed" in err and "wfengine unlock durable:t1" in err,
       "the refusal names the crashed run, its status and the way out", err)
    reset_marks()
    code, out, err = wf(["resume", killed], base)
    is_(code, 0, "resume after kill -9 succeeds")
    is_(marks_read(), ["two", "three", "true"], "the in-flight step ran again, the completed one did not")
    evs = [e for e in events(killed) if e.get("step") == "two" and e["type"] == "step_started"]
    is_([e["attempt"] for e in evs], [1, 1], "the in-flight step ran again from attempt 1")

    # SIGINT during step two, then resume
    before = BACKEND.runs()
    proc = subprocess.Popen([WFENGINE, "run", path, "--state", STATE, "-q"],
                            env=dict(os.environ, **base, SLEEP_TWO="30"), stderr=subprocess.PIPE, text=True)
    interrupted = wait_for_step_two(before)
    t0 = time.monotonic()
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=10)
    ok(time.monotonic() - t0 < 3, "SIGINT ends the run promptly")
    is_(proc.returncode, 4, "SIGINT exits 4")
    is_(types(interrupted)[-1], "run_interrupted", "run_interrupted is journaled")
    ok("resume" in err, "the message says how to continue", err)
    if PG:
        is_(BACKEND.lease_owner(interrupted), "", "PostgreSQL: the interrupted run's lease is given back")
    code, out, err = wf(["resume", interrupted], base)
    is_(code, 0, "resume after SIGINT succeeds")

    # edited workflow: an allowed change is reported, a removed completed step refuses
    code, out, err = wf(["run", path], dict(base, FAIL_TWO="1"))
    run = newest()
    with open(path, "w") as f:
        f.write(WORKFLOW.replace('mark("three "', 'mark("3 "'))
    code, out, err = wf(["resume", run], base)
    is_(code, 0, "resume after editing a step not yet run is allowed")
    ok("step changed: three" in out and "file hash" in out, "the change is reported", out)
    code, out, err = wf(["run", path], dict(base, FAIL_TWO="1"))
    run = newest()
    with open(path, "w") as f:
        f.write(WORKFLOW.replace('step "one"', 'step "uno"'))
    code, out, err = wf(["resume", run], base)
    is_(code, 2, "resume is refused when a completed step disappeared")
    ok("'one' completed in this run but is no longer" in err, "the refusal names the step", err)
    with open(path, "w") as f:
        f.write(WORKFLOW)
    wf(["rollback", run], base)

    # a compensation that fails: exit 3, owed, then rollback finishes the job
    code, out, err = wf(["run", path], dict(base, FAIL_TWO="1", POLICY="compensate"))
    is_(code, 1, "policy compensate undoes the completed steps (exit 1)")

    # the journal: secrets, torn tail, garbled middle line
    is_("s3cret-pw" in BACKEND.all_events_text(), False, "the secret is in no journal")
    code, out, err = wf(["run", path], dict(base, FAIL_TWO="1"))
    run = newest()
    if not PG:
        journal = os.path.join(STATE, "runs", run, "events.jsonl")
        with open(journal, "a") as f:
            f.write('{"seq": 99, "type": "step_succ')
        code, out, err = wf(["show", run], base)
        is_(code, 0, "show reads a journal with a torn last line")
        ok("torn last line" in err, "and warns about it", err)
        code, out, err = wf(["rollback", run], base)
        is_(code, 1, "rollback works on a journal with a torn tail")
        lines = open(journal).read().split("\n")
        lines[2] = "garbage{"
        with open(journal, "w") as f:
            f.write("\n".join(lines))
        code, out, err = wf(["show", run], base)
        is_(code, 2, "a garbled middle line is an error")
        ok(":3: garbled journal line" in err, "naming the line", err)
    else:
        state_backend.psql("UPDATE wfengine.events SET event = 'garbage{' WHERE run_id = '%s' AND seq = 3" % run)
        code, out, err = wf(["show", run], base)
        is_(code, 2, "a garbled event is an error")
        ok("event 3 is garbled" in err, "naming the event", err)
    code, out, err = wf(["show", "20990101T000000.000Z-0000"], base)
    is_(code, 2, "show of an unknown run id exits 2")

print("1..%d" % count)
sys.exit(1 if failed else 0)
