#!/usr/bin/env python3
# failure.t: what happens when a step fails for good: compensation in
# reverse order with parallel groups as one unit, the run's result handed to
# compensate, compensation retries, a compensation that fails (exit 3 and
# what is owed), irreversible steps (exit 5, nothing compensated), policy
# pause and --on-failure (exit 5).
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import wftest

t = wftest.Tap()

# A workflow where every compensate logs "undo <id> <result as JSON>".
COMP = '''
local json = require "wf.json"
local function undo(ctx, result) ctx:log("undo %s %s", ctx.step, json.encode(result)) end
'''

wf = t.workflow(COMP + '''
return workflow {
  name = "unwind",
  steps = {
    step "a" { run = function() return { id = "A1" } end, compensate = undo },
    parallel "grp" {
      step "g1" { run = function(ctx) ctx:sleep(0.05) return 1 end, compensate = undo },
      step "g2" { run = function() return { 2, 3 } end, compensate = undo },
    },
    step "plain" { run = function() return "no undo" end },
    step "b" { run = function() return "bee" end, compensate = undo },
    step "boom" { run = function() error("boom") end, compensate = undo },
    step "never" { run = function() return 0 end, compensate = undo },
  },
}''')
r = t.run(wf)
t.is_(r.rc, 1, "step fails, compensation succeeds: exit 1", result=r)
comp = r.trail("compensation_started", "compensation_succeeded")
t.is_(comp[:2], ["compensation_started:b:1", "compensation_succeeded:b:1"],
      "the last completed step is compensated first")
t.is_(sorted(comp[2:6]), sorted(["compensation_started:g1:1", "compensation_started:g2:1",
                                 "compensation_succeeded:g1:1", "compensation_succeeded:g2:1"]),
      "then the parallel group, as one unit")
t.is_(comp[6:], ["compensation_started:a:1", "compensation_succeeded:a:1"], "then the first step")
t.is_(sorted(r.logs()), sorted(['undo b "bee"', 'undo g1 1', 'undo g2 [2,3]', 'undo a {"id":"A1"}']),
      "compensate gets the step's own result (string, number, array, table)")
t.is_(r.of("compensation_started", "boom") + r.of("compensation_started", "never")
      + r.of("compensation_started", "plain"), [],
      "the failed step, the step never run and the step without compensate are not compensated")
last = r.events[-1] if r.events else {}
t.is_((last.get("type"), last.get("step"), (last.get("error") or {}).get("message")),
      ("run_compensated", "boom", "boom"), "run_compensated names the failed step and its error")

# A group member that succeeded before its sibling failed is compensated.
wf = t.workflow(COMP + '''
return workflow {
  name = "group_partial",
  steps = {
    step "first" { run = function() return "f" end, compensate = undo },
    parallel "grp" {
      step "quick" { run = function() return "q" end, compensate = undo },
      step "bad" { run = function(ctx) ctx:sleep(0.1) error("bad") end, compensate = undo },
    },
  },
}''')
r = t.run(wf)
t.is_(r.rc, 1, "failure inside a group: exit 1", result=r)
t.is_(r.logs(), ['undo quick "q"', 'undo first "f"'],
      "the sibling that completed is compensated, then the step before the group")

# compensate uses the step's retry policy.
wf = t.workflow('''
return workflow {
  name = "comp_retry",
  steps = {
    step "a" {
      retry = { attempts = 3, delay = 0 },
      run = function() return 1 end,
      compensate = function(ctx) if ctx.attempt < 2 then error("undo hiccup") end end,
    },
    step "boom" { run = function() error("boom") end },
  },
}''')
r = t.run(wf)
t.is_(r.rc, 1, "compensation succeeds on its second attempt: exit 1", result=r)
t.is_(r.trail("compensation_started", "compensation_failed", "compensation_succeeded"),
      ["compensation_started:a:1", "compensation_failed:a:1", "compensation_started:a:2",
       "compensation_succeeded:a:2"], "compensation attempts follow the step's retry policy")

# A compensation that fails for good: exit 3, owed.
wf = t.workflow('''
return workflow {
  name = "owed",
  steps = {
    step "a" { run = function() return 1 end, compensate = function(ctx) ctx:log("undo a") end },
    step "c" { run = function() return 2 end,
               compensate = function(ctx) ctx:fail("cannot undo c", { retryable = false }) end },
    step "d" { run = function() return 3 end, compensate = function(ctx) ctx:log("undo d") end },
    step "boom" { run = function() error("boom") end },
  },
}''')
r = t.run(wf)
t.is_(r.rc, 3, "compensation fails: exit 3", result=r)
t.is_(r.trail("compensation_started", "compensation_failed", "compensation_succeeded"),
      ["compensation_started:d:1", "compensation_succeeded:d:1", "compensation_started:c:1",
       "compensation_failed:c:1"], "unwinding stops at the failed compensation (a is not touched)")
failed = r.one("run_failed") or {}
t.is_(failed.get("owed"), ["a", "c"], "run_failed lists what is owed: c (failed) and a (not reached)")
t.is_((failed.get("step"), failed.get("compensation_failed"),
       (failed.get("compensation_error") or {}).get("message")), ("boom", "c", "cannot undo c"),
      "run_failed names the failed step, the failed compensation and its error")
t.is_(r.types()[-1], "run_failed", "run_failed is the last event")

# irreversible: a later failure pauses instead of compensating past it.
wf = t.workflow('''
return workflow {
  name = "irrev",
  steps = {
    step "a" { run = function() return 1 end, compensate = function(ctx) ctx:log("undo a") end },
    step "notify" { irreversible = true, run = function() return "sent" end,
                    compensate = function(ctx) ctx:log("undo notify") end },
    step "boom" { run = function() error("boom") end },
  },
}''')
r = t.run(wf)
t.is_(r.rc, 5, "failure past an irreversible step: exit 5", result=r)
t.is_(r.types("compensation_started", "compensation_succeeded", "compensation_failed"), [],
      "nothing is compensated", result=r)
paused = r.one("run_paused") or {}
t.is_(paused.get("step"), "boom", "run_paused names the failed step")
t.like(str(paused.get("reason")), "notify", "run_paused reason names the irreversible step")

r = t.run(wf, "--fail-at", "notify")
t.is_(r.rc, 1, "the irreversible step itself failing: earlier steps compensated, exit 1", result=r)
t.is_(r.logs(), ["undo a"], "... only a is undone")

# policy pause, and --on-failure overriding the workflow's policy both ways.
wf = t.workflow('''
return workflow {
  name = "pausing",
  on_failure = "pause",
  steps = {
    step "a" { run = function() return 1 end, compensate = function(ctx) ctx:log("undo a") end },
    step "boom" { run = function() error("boom") end },
  },
}''')
r = t.run(wf)
t.is_(r.rc, 5, "on_failure = pause: exit 5", result=r)
t.is_(r.types()[-1], "run_paused", "run_paused is the last event")
t.is_((r.one("run_paused") or {}).get("reason"), "policy pause", "reason: policy pause")
t.is_(r.logs(), [], "pause compensates nothing")
r = t.run(wf, "--on-failure", "compensate")
t.is_((r.rc, r.logs()), (1, ["undo a"]), "--on-failure compensate overrides pause: exit 1, a undone",
      result=r)

wf = t.workflow('''
return workflow {
  name = "comp_default",
  steps = {
    step "a" { run = function() return 1 end, compensate = function(ctx) ctx:log("undo a") end },
    step "boom" { run = function() error("boom") end },
  },
}''')
r = t.run(wf, "--on-failure", "pause")
t.is_((r.rc, r.logs(), r.types()[-1:]), (5, [], ["run_paused"]),
      "--on-failure pause overrides the default compensate: exit 5, nothing undone", result=r)
t.done()
