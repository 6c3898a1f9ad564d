#!/usr/bin/env python3
# ctx:parallel: concurrent work inside one step, results in order, a limit,
# the first error cancelling the others, and the step's timeout covering all.
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import wftest

t = wftest.Tap()
wf = t.workflow('''
return workflow {
  name = "inner",
  steps = {
    step "together" { run = function(ctx)
      return ctx:parallel({
        function(c) c:sleep(1) return "a" end,
        function(c) c:sleep(1) return "b" end,
        function(c) c:sleep(1) return c.step end,
      })
    end },
    step "limited" { run = function(ctx)
      local fns = {}
      for i = 1, 4 do fns[i] = function(c) c:sleep(0.5) return i end end
      return ctx:parallel(fns, { limit = 2 })
    end },
  },
}''')
r = t.run(wf)
t.is_(r.rc, 0, "ctx:parallel succeeds", result=r)
t.is_((r.one("step_succeeded", "together") or {}).get("result"), ["a", "b", "together"],
      "results come back in order, each fn gets ctx")
t.is_((r.one("step_succeeded", "limited") or {}).get("result"), [1, 2, 3, 4], "with a limit too")
t.ok(r.seconds < 2.8, "three 1 s sleeps and two rounds of 0.5 s take under 2.8 s (took %.2f s)" % r.seconds)

wf = t.workflow('''
return workflow {
  name = "inner_fail",
  steps = {
    step "one_fails" { run = function(ctx)
      ctx:parallel({
        function(c) c:sleep(0.1) c:fail("broken", { retryable = false }) end,
        function(c) c:sleep(30) return "never" end,
      })
    end },
  },
}''')
r = t.run(wf)
t.is_(r.rc, 1, "a failing function fails the step", result=r)
err = (r.one("step_failed", "one_fails") or {}).get("error") or {}
t.is_((err.get("message"), err.get("retryable")), ("broken", False), "with its own error")
t.ok(r.seconds < 5, "and the 30 s sibling is cancelled (took %.2f s)" % r.seconds)

wf = t.workflow('''
return workflow {
  name = "inner_timeout",
  steps = {
    step "slow" { timeout = 0.3, run = function(ctx)
      ctx:parallel({ function(c) c:sleep(30) end, function(c) c:sleep(30) end })
    end },
  },
}''')
r = t.run(wf)
err = (r.one("step_failed", "slow") or {}).get("error") or {}
t.is_((r.rc, err.get("kind")), (1, "timeout"), "the step's timeout covers the functions", result=r)
t.ok(r.seconds < 5, "and cancels them (took %.2f s)" % r.seconds)
t.done()
