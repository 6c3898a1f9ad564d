#!/usr/bin/env python3
# validation.t: everything that must be refused before a run starts: exit 2,
# one clear first line on stderr naming the file:line, field, step or
# parameter, and nothing journaled. Also `confirm` without a terminal.
import os
import signal
import subprocess
import sys
import threading

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import wftest

t = wftest.Tap()


def refused(text, want_first_line, name, options=(), todo=None, name_file=True):
    """Writes text as a workflow, runs it, expects exit 2 with the first
    stderr line 'wfengine: <file>:<want>' (or 'wfengine: <want>' when
    name_file is False) and no run directory."""
    path = t.workflow(text)
    r = t.run(path, *options)
    want_first_line = want_first_line.replace("{file}", path)
    want = "wfengine: " + ((path + ":" + want_first_line) if name_file else want_first_line)
    t.is_((r.rc, r.first_err, r.run_dirs(), r.events), (2, want, [], []), name, todo=todo, result=r)
    return r


RUN = "run = function() end"

refused('''return workflow {
  name = "x",
  steps = {
    step "a" { %s },
    step "b" {
      %s,
      retries = 3,
    },
  },
}''' % (RUN, RUN), "5: step 'b': unknown field 'retries' (did you mean 'retry'?)",
        "unknown step field: named, with the step and its file:line")
refused('''return workflow {
  name = "x",
  steps = {
    step "a" { %s },
    step "a" { %s },
  },
}''' % (RUN, RUN), "5: duplicate id 'a' (first defined at {file}:4)",
        "duplicate step id: both places named")
refused('''return workflow { name = "x", steps = {
  parallel "g" { step "a" { %s }, step "b" { %s } },
  step "g" { %s },
} }''' % (RUN, RUN, RUN), "3: duplicate id 'g' (first defined at {file}:2)",
        "a step reusing a parallel group's id is a duplicate")
refused('''return workflow { name = "x", steps = {
  step "Bad-Id" { %s },
} }''' % RUN, '2: step id "Bad-Id": ids are made of [a-z][a-z0-9_]*', "bad step id")
refused('''return workflow { name = "x", steps = {
  step "9lives" { %s },
} }''' % RUN, '2: step id "9lives": ids are made of [a-z][a-z0-9_]*', "step id starting with a digit")
refused('''return workflow { name = "x", steps = {
  step "a" { title = "no run" },
} }''', "2: step 'a': field 'run' (a function) is required", "step without run")
refused('''return workflow { name = "x", steps = {
  step "a" { run = "not a function" },
} }''', "2: step 'a': field 'run' must be a function, not a string", "run of the wrong type")
refused('''return workflow { name = "x", steps = {
  step "a" { %s, retry = { attempts = 0 } },
} }''' % RUN, "2: step 'a': retry.attempts must be a whole number >= 1", "retry.attempts 0")
refused('''return workflow { name = "x", steps = {
  step "a" { %s, retry = { tries = 3 } },
} }''' % RUN, "2: step 'a': retry: unknown field 'tries'", "unknown retry field")
refused('''return workflow { name = "x", steps = {
  step "a" { %s, timeout = 0 },
} }''' % RUN, "2: step 'a': timeout must be a number of seconds > 0", "timeout 0")
refused('''return workflow {
  name = "x",
  steps = { step "a" { %s } },
}
this is not lua''' % RUN, "5: <eof> expected near 'this'", "syntax error: file:line in the first line")

# Workflow-level errors: `return workflow { ... }` is a tail call, and the
# first line must still say where.
tail_bug = None  # fixed: errors under `return workflow {` name the line of `workflow {`
refused('''return workflow {
  name = "x",
  stepz = {},
}''', "1: workflow: unknown field 'stepz' (did you mean 'steps'?)",
        "unknown workflow field, with file:line", todo=tail_bug)
refused('''local wf = workflow {
  name = "x",
  stepz = {},
}
return wf''', "1: workflow: unknown field 'stepz' (did you mean 'steps'?)",
        "unknown workflow field (not a tail call): file:line")
refused('''return workflow { name = "x", on_failure = "ignore", steps = { step "a" { %s } } }''' % RUN,
        '1: workflow: on_failure must be "compensate" or "pause", not "ignore"', "bad on_failure",
        todo=tail_bug)
refused('''return workflow { name = "x", params = { p = { requird = true } }, steps = { step "a" { %s } } }'''
        % RUN, "1: parameter 'p': unknown field 'requird'", "unknown parameter field", todo=tail_bug)
refused('''return workflow { name = "x", steps = {} }''',
        "1: workflow: field 'steps' must list at least one step", "no steps", todo=tail_bug)

refused('''local t = nil
t.field = 1''', "2: attempt to index a nil value (local 't')",
        "a runtime error while loading: file:line first")
refused('''return 42''', " does not return workflow { ... }", "a file that returns no workflow")
r = t.run(t.path("missing.lua"))
t.is_((r.rc, r.first_err.startswith("wfengine: " + t.path("missing.lua")), r.run_dirs()),
      (2, True, []), "a missing workflow file: exit 2, the path named first", result=r)

# ---- parameters ----
PARAMS = '''return workflow {
  name = "params",
  params = {
    target = { required = true },
    size = { pattern = "%%d+", default = "10" },
    name = { check = function(v) if #v < 3 then return "must be at least 3 characters" end end },
    pw = { secret = true, pattern = "%%a+" },
    odd = { check = function(v) error("check exploded") end },
  },
  steps = { step "a" { %s } },
}''' % RUN
p = t.workflow(PARAMS, "params.lua")
for options, want, name in [
        ((), "parameter 'target' is required (-p target=...)", "missing required parameter"),
        (("-p", "target=t", "-p", "size=12x"), 'parameter \'size\': "12x" does not match the pattern %d+',
         "pattern rejection (anchored: 12x)"),
        (("-p", "target=t", "-p", "size=x12"), 'parameter \'size\': "x12" does not match the pattern %d+',
         "pattern rejection (anchored: x12)"),
        (("-p", "target=t", "-p", "name=ab"), "parameter 'name': must be at least 3 characters",
         "check rejection with its message"),
        (("-p", "target=t", "-p", "pw=abc123"), "parameter 'pw': the value does not match the pattern %a+",
         "a rejected secret is not echoed"),
        (("-p", "target=t", "-p", "odd=1"), "parameter 'odd': its check failed: ",
         "a check that raises is a rejection"),
        (("-p", "target=t", "-p", "nope=1"),
         "unknown parameter 'nope' (this workflow takes: name, odd, pw, size, target; did you mean 'name'?)",
         "unknown -p parameter, listing the known ones and the nearest")]:
    r = t.run(p, *options)
    t.is_((r.rc, r.first_err[:len("wfengine: " + want)], r.run_dirs()), (2, "wfengine: " + want, []),
          name + ": exit 2, nothing journaled", result=r)
r = t.run(p, "-p", "target=t", "-p", "pw=abc123")
t.unlike(r.stderr, "abc123", "the rejected secret value appears nowhere on stderr")
r = t.run(p, "-p", "target=t", "-p", "name=abc", "-p", "size=7")
t.is_(r.rc, 0, "valid parameters run", result=r)

r = t.check(p)
t.is_((r.rc, r.first_err.startswith("wfengine:")), (0, False),
      "check without -p does not demand required parameters", result=r)
r = t.check(p, "-p", "target=t", "-p", "size=abc")
t.is_((r.rc, r.first_err), (2, 'wfengine: parameter \'size\': "abc" does not match the pattern %d+'),
      "check with -p validates parameters", result=r)

# A parameter's doc is shown where it is asked for.
documented = t.workflow('''return workflow {
  name = "documented",
  params = {
    tenant = { required = true, pattern = "[a-z]+", doc = "tenant id, lower case" },
    size = { check = function(v) return "never right" end, doc = "size in GB" },
  },
  steps = { step "a" { run = function() end } },
}''')
r = t.run(documented)
t.is_(r.first_err, "wfengine: parameter 'tenant' (tenant id, lower case) is required (-p tenant=...)",
      "a missing parameter's error shows its doc", result=r)
r = t.run(documented, "-p", "tenant=A1")
t.is_(r.first_err, 'wfengine: parameter \'tenant\' (tenant id, lower case): "A1" does not match the pattern [a-z]+',
      "an invalid parameter's error shows its doc", result=r)
r = t.run(documented, "-p", "tenant=a", "-p", "size=3")
t.is_(r.first_err, "wfengine: parameter 'size' (size in GB): never right",
      "a check's rejection shows the doc", result=r)

# An unknown name under the config's params: is refused as -p refuses it.
cfg = t.path("unknown.yaml")
with open(cfg, "w") as f:
    f.write("params:\n  tenat: abc\n")
r = t.run(documented, "-p", "tenant=a", "-c", cfg)
t.is_((r.rc, r.first_err, r.run_dirs()),
      (2, "wfengine: %s: params: unknown parameter 'tenat' (this workflow takes: size, tenant; "
       "did you mean 'tenant'?)" % cfg, []),
      "an unknown config param: exit 2, the file named, did-you-mean, nothing journaled", result=r)
r = t.check(documented, "-p", "tenant=a", "-c", cfg)
t.is_(r.rc, 2, "check -c refuses it too", result=r)
r = t.run(documented, "-p", "tenat=a")
t.is_(r.first_err, "wfengine: unknown parameter 'tenat' (this workflow takes: size, tenant; "
      "did you mean 'tenant'?)", "the same refusal for -p", result=r)

# ---- confirm ----
c = t.workflow('''return workflow {
  name = "confirming",
  steps = {
    step "first" { run = function(ctx) ctx:log("first ran") end },
    step "drop" { confirm = "Drop the sandbox?", run = function(ctx) ctx:log("dropped") end },
  },
}''', "confirm.lua")
r = t.run(c)
t.is_((r.rc, r.events, r.run_dirs()), (2, [], []),
      "confirm, no terminal, no -y: exit 2 before anything runs (not even the first step)", result=r)
t.is_(r.first_err, "wfengine: step 'drop' asks to confirm (\"Drop the sandbox?\") and there is no "
      "terminal: run with -y to answer yes", "... one line naming the step and the question")
r = t.run(c, input="y\n")
t.is_(r.rc, 2, "stdin a pipe (even with 'y' in it) is not a terminal: exit 2", result=r)
r = t.run(c, "-y")
t.is_((r.rc, r.logs()), (0, ["first ran", "dropped"]), "with -y it runs", result=r)
r = t.run(c, "--yes")
t.is_(r.rc, 0, "--yes too", result=r)
r = t.run(c, "--skip", "drop")
t.is_((r.rc, r.logs()), (0, ["first ran"]), "a skipped confirm step asks nothing", result=r)
r = t.run(c, "--simulate")
t.is_((r.rc, r.logs()), (0, ["first ran", "dropped"]), "simulate touches nothing: no confirmation needed",
      result=r)

# A conditional confirm step is decided when it is reached: `when` skipping
# it asks nothing (the run refused up front before); reached without a
# terminal, the step fails before it runs, not retried.
cw = t.workflow('''return workflow {
  name = "confirm_when",
  params = { really = { default = "no" } },
  steps = {
    step "first" { run = function(ctx) ctx:log("first ran") end },
    step "drop" { confirm = "Drop the sandbox?", retry = { attempts = 3, delay = 0 },
      when = function(ctx) return ctx.params.really == "yes" end,
      run = function(ctx) ctx:log("dropped") end },
  },
}''')
r = t.run(cw)
t.is_((r.rc, r.logs(), (r.one("step_skipped", "drop") or {}).get("reason")), (0, ["first ran"], "when"),
      "confirm on a step `when` skips, no terminal: the run goes on and asks nothing", result=r)
r = t.run(cw, "-p", "really=yes")
failed = r.of("step_failed", "drop")
t.is_((r.rc, r.logs()[:1], [(e.get("error") or {}).get("kind") for e in failed],
       [e.get("will_retry") for e in failed]), (1, ["first ran"], ["declined"], [False]),
      "reached without a terminal: the step fails once (declined, not retried), the run compensates",
      result=r)
t.ok("dropped" not in r.logs() and failed and "there is no terminal" in failed[0]["error"]["message"]
     and "-y" in failed[0]["error"]["message"],
     "... the step did not run, and the message says why and how to answer", diag=r.describe())
r = t.run(cw, "-p", "really=yes", "-y")
t.is_((r.rc, r.logs()), (0, ["first ran", "dropped"]), "reached with -y: it runs", result=r)

# With a terminal on stdin the step asks; the answer decides.
def with_tty(answer, *options):
    master, slave = os.openpty()
    try:
        os.write(master, answer.encode())
        return t.run(c, *options, stdin=slave)
    finally:
        os.close(master)
        os.close(slave)


r = with_tty("y\n")
t.is_((r.rc, r.logs()), (0, ["first ran", "dropped"]), "a terminal answering y: the step runs", result=r)
r = with_tty("n\n")
err = (r.one("step_failed", "drop") or {}).get("error") or {}
t.is_((r.rc, r.logs(), err.get("kind"), err.get("retryable")), (1, ["first ran"], "declined", False),
      "a terminal answering n: the step fails, declined, not retried", result=r)
t.like(str(err.get("message")), "Drop the sandbox?", "... the error quotes the question")
t.is_(r.garbage, [], "with --json the prompt does not go into the event stream",
      todo="engine bug: the confirm prompt is written to stdout even with --json" if r.garbage else None,
      result=r)

# While the question waits, the loop goes on: a step beside it in a parallel
# group keeps working; Ctrl-C (SIGINT) at the prompt interrupts the run (exit
# 4, resumable) rather than declining the step and compensating.
g = t.workflow('''return workflow {
  name = "asking",
  steps = {
    step "first" { run = function(ctx) ctx:log("first ran") end,
      compensate = function(ctx) ctx:log("first undone") end },
    parallel "both" {
      step "ask" { confirm = "Go on?", run = function(ctx) ctx:log("asked and went on") end },
      step "tick" { run = function(ctx) for i = 1, 50 do ctx:log("tick " .. i); ctx:sleep(0.1) end end },
    },
  },
}''', "asking.lua")
master, slave = os.openpty()
state = t.fresh_state()
proc = subprocess.Popen([wftest.WFENGINE, "run", g, "--json", "--state", state], stdin=slave,
                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
watchdog = threading.Timer(20, proc.kill)  # the old engine blocked on the prompt for good
watchdog.start()
ticks = 0
for line in proc.stdout:
    if '"tick ' in line:
        ticks += 1
        if ticks == 5:
            proc.send_signal(signal.SIGINT)
            break
rest, err_text = proc.communicate(timeout=20)
watchdog.cancel()
os.close(master)
os.close(slave)
t.is_(ticks, 5, "the step beside an unanswered prompt keeps running (5 ticks seen)")
t.is_(proc.returncode, 4, "SIGINT at the prompt: exit 4, interrupted")
t.ok('"run_interrupted"' in rest and "first undone" not in rest and "declined" not in rest,
     "... journaled as interrupted; nothing declined, nothing compensated", diag=rest[-2000:])

# Two questions at once (two confirm steps in one group): asked one after the other.
two = t.workflow('''return workflow {
  name = "two_questions",
  steps = { parallel "both" {
    step "a" { confirm = "First?", run = function(ctx) ctx:log("a ran") end },
    step "b" { confirm = "Second?", run = function(ctx) ctx:log("b ran") end },
  } },
}''', "two.lua")
master, slave = os.openpty()
os.write(master, b"y\nn\n")
r = t.run(two, stdin=slave, timeout=20)
os.close(master)
os.close(slave)
err = (r.one("step_failed", "b") or {}).get("error") or {}
t.is_((r.rc, r.logs(), err.get("kind")), (1, ["a ran"], "declined"),
      "two questions at once are asked in turn: y runs the first, n declines the second", result=r)
t.done()
