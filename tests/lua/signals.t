#!/usr/bin/env python3
# signals.t: SIGINT and SIGTERM during a step stop the run at once: the
# journal ends with run_interrupted, nothing is compensated (the run is
# resumable) and the exit code is 4, well within a second.
import json
import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import wftest

t = wftest.Tap()

wf = t.workflow('''
return workflow {
  name = "sig",
  steps = {
    step "a" { run = function() return 1 end, compensate = function(ctx) ctx:log("undo a") end },
    step "slow" { run = function(ctx) ctx:log("sleeping") ctx:sleep(30) return "woke" end },
    step "after" { run = function() return 2 end },
  },
}''')


def finish(proc, lines, timeout):
    """Waits for proc to exit (past timeout seconds its group is killed and
    rc is None); returns (rc, stdout: lines already read and the rest, stderr)."""
    try:
        out, err = proc.communicate(timeout=timeout)
        rc = proc.returncode
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        rc = None
    return rc, "".join(lines) + out.decode(), err.decode()


def json_lines(text):
    """The lines of text that are JSON values, decoded."""
    events = []
    for line in text.splitlines():
        try:
            events.append(json.loads(line))
        except ValueError:
            pass
    return events


def interrupt(signo, *extra):
    """Starts a run, waits until step 'slow' logs, sends signo; returns
    (rc, seconds from signal to exit, events, stderr, state)."""
    state = t.fresh_state()
    argv = [wftest.WFENGINE, "run", wf, "--state", state] + list(extra)
    proc = subprocess.Popen(argv, cwd=wftest.ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, start_new_session=True)
    lines = []
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        line = proc.stdout.readline().decode()
        if not line:
            break
        lines.append(line)
        if "sleeping" in line:
            break
    sent = time.monotonic()
    proc.send_signal(signo)
    rc, output, err = finish(proc, lines, 10)
    elapsed = time.monotonic() - sent
    t.raw = output
    return rc, elapsed, json_lines(output), err, state


for name, signo in (("SIGINT", signal.SIGINT), ("SIGTERM", signal.SIGTERM)):
    rc, elapsed, events, err, state = interrupt(signo, "--json")
    types = [e.get("type") for e in events]
    t.is_(rc, 4, "%s during a step: exit 4" % name)
    t.ok(elapsed < 1.0, "%s: the process ends within a second (%.2f s)" % (name, elapsed))
    t.ok(types[-1:] == ["run_interrupted"], "%s: run_interrupted is the last event" % name,
         diag=[repr(types), err])
    t.is_([e for e in events if e.get("type", "").startswith("compensation")], [],
          "%s: nothing is compensated (the run stays resumable)" % name)
    t.is_([e.get("step") for e in events if e.get("type") == "step_started"], ["a", "slow"],
          "%s: the step after never starts" % name)
    runs = os.listdir(os.path.join(state, "runs"))
    with open(os.path.join(state, "runs", runs[0], "events.jsonl")) as f:
        journal = [json.loads(l) for l in f if l.strip()]
    t.is_([e.get("type") for e in journal], types, "%s: the journal holds the same events, run_interrupted last" % name)
    t.ok("traceback" not in err.lower(), "%s: no traceback on stderr" % name, diag=[err])

rc, elapsed, events, err, state = interrupt(signal.SIGINT, "-v")
t.is_(rc, 4, "SIGINT in the human view: exit 4")
t.like(t.raw + err, "wfengine resume ", "the human view says how to resume")


def interrupt_step(workflow, step, signals, ready=None):
    """Starts a --json run, waits for step's step_started, sends each of
    signals to the engine's pid (not its group: what `kill -INT PID` does)
    and waits for the exit with a generous watchdog; ready(), when given,
    must hold first (polled). Returns (rc, events, stderr, state)."""
    state = t.fresh_state()
    argv = [wftest.WFENGINE, "run", workflow, "--state", state, "--json"]
    proc = subprocess.Popen(argv, cwd=wftest.ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, start_new_session=True)
    lines = []
    while True:
        line = proc.stdout.readline().decode()
        if not line:
            break
        lines.append(line)
        if '"step_started"' in line and '"step":"%s"' % step in line.replace(" ", ""):
            break
    watchdog = time.monotonic() + 30
    while ready and not ready() and time.monotonic() < watchdog:
        time.sleep(0.01)
    for signo in signals:
        proc.send_signal(signo)
    rc, output, err = finish(proc, lines, 30)
    return rc, json_lines(output), err, state


def show_status(state):
    run_id = os.listdir(os.path.join(state, "runs"))[0]
    r = t.run(None, run_id, command="show", state=state)
    return r.stdout.split("\n")[0]


# A step busy in Lua never polls the loop: the count hook sees the signal.
busy = t.workflow('''
return workflow { name = "busy", steps = {
  step "spin" { run = function() while true do end end },
  step "after" { run = function() return 1 end },
} }''')
rc, events, err, state = interrupt_step(busy, "spin", [signal.SIGINT])
types = [e.get("type") for e in events]
t.is_(rc, 4, "one SIGINT stops a step busy in Lua: exit 4")
t.ok(types[-1:] == ["run_interrupted"] and "step_failed" not in types,
     "busy step: run_interrupted ends the journal, the attempt is not journaled as failed",
     diag=[repr(types), err])
t.like(show_status(state), "interrupted", "busy step: show says interrupted")

# The same in a branch of ctx:parallel (a coroutine of its own).
branch = t.workflow('''
return workflow { name = "branch", steps = {
  step "fan" { run = function(ctx)
    return ctx:parallel { function() while true do end end, function() return 1 end }
  end },
} }''')
rc, events, err, state = interrupt_step(branch, "fan", [signal.SIGINT])
t.is_((rc, [e.get("type") for e in events][-1:]), (4, ["run_interrupted"]),
      "one SIGINT stops a busy ctx:parallel branch: exit 4, run_interrupted")

# os.execute waits on the loop: the signal is seen and passed to the child.
pidfile = t.path("child.pid")
shell = t.workflow('''
return workflow { name = "shell", steps = {
  step "sh" { run = function() return os.execute("echo $$ > %s; exec sleep 20") end },
  step "after" { run = function() return 1 end },
} }''' % pidfile)
def child_started():
    return os.path.exists(pidfile) and open(pidfile).read().endswith("\n")


rc, events, err, state = interrupt_step(shell, "sh", [signal.SIGINT], child_started)
types = [e.get("type") for e in events]
t.is_(rc, 4, "SIGINT during os.execute(\"sleep 20\"): exit 4")
t.ok(types[-1:] == ["run_interrupted"], "os.execute: run_interrupted ends the journal",
     diag=[repr(types), err])
t.like(show_status(state), "interrupted", "os.execute: show says interrupted")
child = int(open(pidfile).read()) if os.path.exists(pidfile) else 0
gone = child > 0
for _ in range(100):
    try:
        os.kill(child, 0)
    except OSError:
        break
    time.sleep(0.05)
else:
    gone = False
t.ok(gone, "os.execute: the child does not outlive the interrupt (pid %d)" % child)

ok_shell = t.workflow('''
return workflow { name = "shell_ok", steps = {
  step "codes" { run = function()
    local a, b, c = os.execute("exit 3")
    local d = os.execute("true")
    return { tostring(a), b, c, d, os.execute() }
  end },
} }''')
r = t.run(ok_shell)
done = r.one("step_succeeded", "codes")
t.is_(done and done.get("result"), ["nil", "exit", 3, True, True],
      "os.execute returns what Lua's does", result=r)

# A second signal leaves at once and still journals the ending. The step
# swallows the first interrupt (pcall in a loop); SIGINT then SIGTERM are
# two signals, both delivered.
stubborn = t.workflow('''
return workflow { name = "stubborn", steps = {
  step "spin" { run = function() while true do pcall(function() while true do end end) end end },
} }''')
rc, events, err, state = interrupt_step(stubborn, "spin", [signal.SIGINT, signal.SIGTERM])
t.is_(rc, 4, "a second signal exits 4")
with open(os.path.join(state, "runs", os.listdir(os.path.join(state, "runs"))[0],
                       "events.jsonl")) as f:
    last = json.loads(f.read().splitlines()[-1])
t.is_((last.get("type"), last.get("forced")), ("run_interrupted", True),
      "a second signal journals a forced run_interrupted")
t.like(show_status(state), "interrupted", "a second signal: show says interrupted, not crashed")
t.done()
