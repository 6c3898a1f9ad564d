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
    try:
        out, err = proc.communicate(timeout=10)
        rc = proc.returncode
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        rc = None
    elapsed = time.monotonic() - sent
    events = []
    for line in lines + out.decode().splitlines():
        try:
            events.append(json.loads(line))
        except ValueError:
            pass
    t.raw = "".join(lines) + out.decode()
    return rc, elapsed, events, err.decode(), state


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
t.done()
