#!/usr/bin/env python3
# sync.t: the journal is on disk before the engine acts (docs/operations.md).
# A kill -9 keeps the page cache, so no crash test can see a missing
# fdatasync; strace can. Each step and each compensation does one observable
# system call (unlink of a path that does not exist); between the write of
# its step_started (or compensation_started) line and that call there must be
# an fdatasync of the journal.
import os
import re
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import wftest

t = wftest.Tap()
if shutil.which("strace") is None:
    t.skip("strace is not installed (tools/deps/tests.txt; make deps installs it)", 4)
    t.done()

marks = t.path("marks")


def act(name):
    """Lua that removes a path that never exists: an unlink in the trace."""
    return "os.remove(%s)" % wftest.lua_string(os.path.join(marks, name))


wf = t.workflow('''
return workflow {
  name = "synced",
  steps = {
    step "one" { run = function() %s return 1 end, compensate = function() %s end },
    parallel "grp" {
      step "two" { run = function() %s return 2 end, compensate = function() %s end },
      step "three" { run = function() %s return 3 end },
    },
    step "four" { retry = { attempts = 1 }, run = function() %s error("stop") end },
  },
}''' % (act("run-one"), act("undo-one"), act("run-two"), act("undo-two"), act("run-three"),
        act("run-four")))

trace = t.path("trace")
state = t.fresh_state()
argv = ["strace", "-f", "-qq", "-s", "256", "-o", trace, "-e", "trace=writev,fdatasync,unlink",
        wftest.WFENGINE, wf, "--state", state, "--json"]
proc = subprocess.run(argv, cwd=wftest.ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                      stdin=subprocess.DEVNULL, timeout=60)
if proc.returncode != 1 or not os.path.exists(trace):
    t.ok(False, "the run under strace fails at four and compensates (exit 1)",
         diag=["rc %r" % proc.returncode] + proc.stderr.decode("utf-8", "replace").splitlines()[:8])
    t.done()

STARTED = re.compile(r'writev\((\d+), \[\{iov_base="\{.*\\"type\\":\\"(step|compensation)_started\\"')
STEP = re.compile(r'\\"step\\":\\"(\w+)\\"')
SYNC = re.compile(r'fdatasync\((\d+)\)\s+= 0')
UNLINK = re.compile(r'unlink\("%s/(run|undo)-(\w+)"\)' % re.escape(marks))

pending = {}   # journal fd -> events written and not yet synced: [(kind, step)]
synced = set()  # (kind, step) whose started line is on disk
acts = []       # (kind, step, synced before the act?)
with open(trace, encoding="utf-8", errors="replace") as f:
    for line in f:
        line = re.sub(r"^\d+\s+", "", line)  # the pid strace -f puts in front
        m = STARTED.match(line)
        if m:
            step = STEP.search(line)
            kind = "run" if m.group(2) == "step" else "undo"
            pending.setdefault(m.group(1), []).append((kind, step.group(1) if step else "?"))
            continue
        m = SYNC.match(line)
        if m:
            synced.update(pending.pop(m.group(1), []))
            continue
        m = UNLINK.match(line)
        if m:
            acts.append((m.group(1), m.group(2), (m.group(1), m.group(2)) in synced))

t.is_(sorted((k, s) for k, s, _ in acts),
      sorted([("run", "one"), ("run", "two"), ("run", "three"), ("run", "four"), ("undo", "two"),
              ("undo", "one")]),
      "the trace shows every step's and every compensation's act once")
t.is_([(k, s) for k, s, ok in acts if not ok and k == "run"], [],
      "each step_started line is fdatasync'd before its step acts")
t.is_([(k, s) for k, s, ok in acts if not ok and k == "undo"], [],
      "each compensation_started line is fdatasync'd before its compensation acts")
with open(trace, encoding="utf-8", errors="replace") as f:
    text = f.read()
t.ok(re.search(r'run_compensated.*\n(?:.*\n)*?.*fdatasync', text) is not None,
     "the final event (run_compensated) is synced before the engine exits")
t.done()
