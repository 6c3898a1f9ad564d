#!/usr/bin/env python3
# undo_partial: a step whose attempt was cut short (kill -9, SIGINT, killed
# while waiting to retry) is undone by `rollback` when it says undo_partial,
# its compensate getting result nil; without it only completed steps are
# undone, as before. Also: show lists it as owed, plan flags it, and
# undo_partial without compensate is refused.
import json, os, signal, subprocess, sys, time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import wftest  # noqa: E402

WFENGINE = wftest.WFENGINE
t = wftest.Tap()


WORKFLOW = r'''
local marks = os.getenv("MARKS")
local function mark(text)
  local f = assert(io.open(marks, "a")); f:write(text, "\n"); f:close()
end
return workflow {
  name = "partial",
  retry = { attempts = 2, delay = tonumber(os.getenv("DELAY") or "30") },
  steps = {
    step "one" {
      run = function() mark("one"); return 1 end,
      compensate = function(ctx, r) mark("undo-one-" .. r) end,
    },
    step "two" {
      run = function(ctx)
        mark("two-" .. ctx.attempt)
        if os.getenv("FAIL_TWO") then error("two is broken") end
        ctx:sleep(30)
        return 2
      end,
      compensate = function(ctx, r) mark("undo-two-" .. tostring(r)) end,
      undo_partial = os.getenv("PARTIAL") == "1",
    },
    step "three" { run = function() mark("three"); return 3 end,
      compensate = function() mark("undo-three") end },
  },
}
'''

STATE = t.path("state")
path = t.workflow(WORKFLOW, "partial.lua")
marks = t.path("marks")


def wf(args, env, state=True):
    p = subprocess.run([WFENGINE] + args + (["--state", STATE] if state else []), capture_output=True,
                       text=True, env=dict(os.environ, MARKS=marks, **env), timeout=60)
    return p.returncode, p.stdout, p.stderr


def events(run_id):
    with open(os.path.join(STATE, "runs", run_id, "events.jsonl")) as f:
        return [json.loads(line) for line in f if line.strip()]


def marks_read():
    return open(marks).read().split() if os.path.exists(marks) else []


def cut_short(env, signum, wait_for):
    """Starts a run, waits until its journal holds wait_for about step
    two, sends signum; returns (run id, exit status)."""
    os.makedirs(os.path.join(STATE, "runs"), exist_ok=True)
    before = set(os.listdir(os.path.join(STATE, "runs")))
    proc = subprocess.Popen([WFENGINE, "run", path, "--state", STATE, "-q"],
                            env=dict(os.environ, MARKS=marks, **env))
    run = None
    for _ in range(400):
        time.sleep(0.05)
        runs = set(os.listdir(os.path.join(STATE, "runs"))) - before
        try:
            if runs and any(e["type"] == wait_for and e.get("step") == "two"
                            for e in events(max(runs))):
                run = max(runs)
                break
        except (FileNotFoundError, ValueError):
            pass
    proc.send_signal(signum)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    return run, proc.returncode


def undone(run, step):
    return [e["type"] for e in events(run)
            if e.get("step") == step and e["type"].startswith("compensation_")]

# kill -9 inside step two, which says undo_partial
run, status = cut_short({"PARTIAL": "1"}, signal.SIGKILL, "step_started")
t.ok(run is not None and status == -signal.SIGKILL, "kill -9 inside step two")
code, out, err = wf(["show", run], {})
t.ok("compensation owed (not undone yet): one, two" in out,
   "show lists the cut-short step two as owed, with one", diag=[out])
code, out, err = wf(["show", run, "--json"], {})
t.is_(json.loads(out)["owed"], ["one", "two"], "show --json: owed one and two")
os.remove(marks)
code, out, err = wf(["rollback", run], {"PARTIAL": "1"})
t.is_(code, 1, "rollback after kill -9 compensates (exit 1)")
t.is_(marks_read(), ["undo-two-nil", "undo-one-1"],
    "step two's compensate ran with result nil, then step one's")
t.is_(undone(run, "two"), ["compensation_started", "compensation_succeeded"],
    "the journal has step two's compensation")
code, out, err = wf(["show", run, "--json"], {})
t.is_(json.loads(out)["owed"], [], "nothing owed afterwards")

# SIGINT inside step two
os.remove(marks)
run, status = cut_short({"PARTIAL": "1"}, signal.SIGINT, "step_started")
t.is_(status, 4, "SIGINT inside step two exits 4")
os.remove(marks)
code, out, err = wf(["rollback", run], {"PARTIAL": "1"})
t.is_(code, 1, "rollback after SIGINT compensates (exit 1)")
t.is_(marks_read(), ["undo-two-nil", "undo-one-1"], "step two undone as cut short, then step one")

# killed while waiting to retry step two (its first attempt failed)
os.remove(marks)
run, status = cut_short({"PARTIAL": "1", "FAIL_TWO": "1"}, signal.SIGKILL, "step_failed")
t.is_(marks_read(), ["one", "two-1"], "step two's first attempt failed, the retry waits")
os.remove(marks)
code, out, err = wf(["rollback", run], {"PARTIAL": "1"})
t.is_(code, 1, "rollback of a run killed between attempts compensates (exit 1)")
t.is_(marks_read(), ["undo-two-nil", "undo-one-1"], "the step waiting to retry is undone too")

# without undo_partial: only the completed step, as before
os.remove(marks)
run, status = cut_short({}, signal.SIGKILL, "step_started")
code, out, err = wf(["show", run, "--json"], {})
t.is_(json.loads(out)["owed"], ["one"], "without undo_partial only step one is owed")
os.remove(marks)
code, out, err = wf(["rollback", run], {})
t.is_(code, 1, "rollback compensates (exit 1)")
t.is_(marks_read(), ["undo-one-1"], "step two, cut short, is not undone without undo_partial")
t.is_(undone(run, "two"), [], "and the journal has no compensation of it")

# a failure for good of an undo_partial step: only completed steps are undone
os.remove(marks)
code, out, err = wf(["run", path, "--fail-at", "two"], {"PARTIAL": "1", "DELAY": "0"})
t.is_(code, 1, "a step that fails for good compensates (exit 1)")
t.is_(marks_read(), ["one", "undo-one-1"], "a failed step's own undo does not run, undo_partial or not")

# plan and validation
code, out, err = wf(["plan", path], {"PARTIAL": "1"}, state=False)
t.ok("(undo, also partial)" in out and out.count("(undo)") == 2, "plan flags the step", diag=[out])
code, out, err = wf(["plan", path, "--format", "json"], {"PARTIAL": "1"}, state=False)
t.is_([s["undo_partial"] for s in json.loads(out)["steps"]], [False, True, False], "plan --format json")
bad = t.path("bad.lua")
with open(bad, "w") as f:
    f.write('return workflow { name = "bad", steps = {\n'
            '  step "x" { run = function() end, undo_partial = true } } }\n')
code, out, err = wf(["run", bad], {})
t.is_(code, 2, "undo_partial without compensate is refused (exit 2)")
t.ok("bad.lua:2: step 'x': undo_partial needs a 'compensate' function" in err,
   "the refusal names file, line and step", diag=[err])

t.done()
