#!/usr/bin/env python3
# runs.t: the forward path of a run, asserted on --json events and exit
# codes: step order, retries and attempt numbers, non-retryable errors,
# retry_on, retry_after overriding the backoff delay, ctx.state, results
# that cannot be journaled, and the shape of the journal file itself.
import os
import re
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import wftest

t = wftest.Tap()

# ---- order ----
three = os.path.join(wftest.WORKFLOWS, "three_steps.lua")
r = t.run(three, command=None)
t.is_(r.rc, 0, "three steps: exit 0 (the `wfengine X.lua` form)", result=r)
t.is_(r.types(), ["run_started",
                  "step_started", "log", "step_succeeded",
                  "step_started", "log", "step_succeeded",
                  "step_started", "log", "step_succeeded",
                  "run_succeeded"], "three steps: event types in order", result=r)
t.is_([e["step"] for e in r.of("step_succeeded")], ["first", "second", "third"],
      "steps succeed in declaration order")
t.is_([e.get("index") for e in r.of("step_started")], [1, 2, 3], "step_started carries index 1..3")
t.is_(r.logs(), ["first ran", "second ran", "third ran"], "ctx:log messages journaled in order")
started = r.one("run_started") or {}
t.is_((started.get("run_id"), started.get("workflow"), started.get("mode")),
      (r.run_dirs()[0] if r.run_dirs() else None, "three_steps", "run"),
      "run_started: run_id (= the run directory), workflow name, mode")
t.ok(re.fullmatch(r"[0-9a-f]{16}", str(started.get("hash"))), "run_started: file hash")
t.is_(r.one("step_succeeded", "second").get("result"), {"n": 2}, "step result journaled")
t.is_(r.garbage, [], "--json prints nothing but JSON events")
r2 = t.run(three, command="run", json_events=False)
t.is_((r2.rc, r2.events), (0, []), "without --json: exit 0 and no JSON on stdout")
t.like(r2.stdout, "Second", "without --json: the human view names the steps")

# ---- the journal file ----
lines = r.journal_lines() or []
t.is_(len(lines), len(r.events), "journal: one line per event printed by --json")
parsed = []
for line in lines:
    try:
        parsed.append(wftest.json.loads(line))
    except ValueError:
        parsed.append(None)
t.ok(all(isinstance(e, dict) for e in parsed), "journal: every line is one JSON object")
t.is_([e.get("seq") for e in parsed if e], list(range(1, len(lines) + 1)),
      "journal: seq is 1, 2, 3, ... with no gap")
t.ok(all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", str(e.get("time")))
         for e in parsed if e), "journal: every event has an RFC 3339 UTC time")
t.is_([e.get("type") for e in parsed if e], r.types(), "journal: the same events as --json")
t.ok(all(e.get("attempt") == 1 for e in parsed if e and e.get("type", "").startswith("step_")
         and e.get("type") != "step_skipped"), "journal: step events carry attempt")

# ---- retries and attempt numbers ----
wf = t.workflow('''
return workflow {
  name = "retries",
  steps = {
    step "flaky" {
      retry = { attempts = 4, delay = 0, jitter = false },
      run = function(ctx)
        ctx:log("attempt %d", ctx.attempt)
        if ctx.attempt < 3 then error("not yet") end
        return { took = ctx.attempt }
      end,
    },
    step "after" { run = function() return true end },
  },
}''')
r = t.run(wf)
t.is_(r.rc, 0, "flaky step: exit 0 after retries", result=r)
t.is_(r.trail("step_started", "step_failed", "step_succeeded"),
      ["step_started:flaky:1", "step_failed:flaky:1", "step_started:flaky:2", "step_failed:flaky:2",
       "step_started:flaky:3", "step_succeeded:flaky:3", "step_started:after:1",
       "step_succeeded:after:1"], "flaky step: attempts 1, 2 fail, 3 succeeds, then the next step")
t.is_(r.logs(), ["attempt 1", "attempt 2", "attempt 3"], "ctx.attempt counts from 1")
failed = r.of("step_failed")
t.is_([f.get("will_retry") for f in failed], [True, True], "step_failed: will_retry true while attempts remain")
t.is_([(f.get("error") or {}).get("message") for f in failed], ["not yet", "not yet"],
      "step_failed: error.message without the position")
t.is_([(f.get("error") or {}).get("kind") for f in failed], ["lua", "lua"], "plain error() is kind lua")
t.ok(all(str((f.get("error") or {}).get("where", "")).endswith(os.path.basename(wf) + ":9")
         for f in failed), "step_failed: error.where is file:line of the error() call",
     diag=[repr(failed)])
t.is_(r.one("step_succeeded", "flaky").get("result"), {"took": 3}, "result of the succeeding attempt")

wf = t.workflow('''
return workflow {
  name = "spent",
  retry = { attempts = 3, delay = 0 },
  steps = {
    step "never" { run = function(ctx) error("always") end },
    step "unreached" { run = function() return 1 end },
  },
}''')
r = t.run(wf)
t.is_(r.rc, 1, "retries spent: exit 1 (nothing to compensate)", result=r)
t.is_(r.trail("step_started", "step_failed"), ["step_started:never:1", "step_failed:never:1",
      "step_started:never:2", "step_failed:never:2", "step_started:never:3", "step_failed:never:3"],
      "workflow-level retry: 3 attempts")
t.is_([f.get("will_retry") for f in r.of("step_failed")], [True, True, False],
      "the last attempt says will_retry false")
t.is_(r.of("step_started", "unreached"), [], "the next step never starts")
t.is_(r.types()[-1], "run_compensated", "last event run_compensated")

# ---- non-retryable errors and retry_on ----
wf = t.workflow('''
return workflow {
  name = "nonretry",
  steps = {
    step "fatal" {
      retry = { attempts = 5, delay = 0 },
      run = function(ctx) ctx:fail("bad input", { retryable = false, code = "E42" }) end,
    },
  },
}''')
r = t.run(wf)
t.is_(r.rc, 1, "ctx:fail retryable=false: exit 1", result=r)
t.is_(r.trail("step_started", "step_failed"), ["step_started:fatal:1", "step_failed:fatal:1"],
      "ctx:fail retryable=false: one attempt of five")
err = (r.one("step_failed") or {}).get("error") or {}
t.is_((err.get("message"), err.get("retryable"), err.get("code"), r.one("step_failed").get("will_retry")),
      ("bad input", False, "E42", False), "the structured error is journaled with code and retryable")

wf = t.workflow('''
return workflow {
  name = "retryon",
  steps = {
    step "picky" {
      retry = { attempts = 4, delay = 0, retry_on = function(err) return err.code == "BUSY" end },
      run = function(ctx)
        if ctx.attempt == 1 then ctx:fail("busy", { code = "BUSY" }) end
        ctx:fail("broken", { code = "BROKEN" })
      end,
    },
  },
}''')
r = t.run(wf)
t.is_(r.trail("step_started", "step_failed"), ["step_started:picky:1", "step_failed:picky:1",
      "step_started:picky:2", "step_failed:picky:2"],
      "retry_on: retried the BUSY error, stopped at the BROKEN one (retryable, but refused)", result=r)
t.is_([f.get("will_retry") for f in r.of("step_failed")], [True, False], "retry_on: will_retry follows retry_on")

wf = t.workflow('''
return workflow {
  name = "tableerr",
  steps = {
    step "table_error" {
      retry = { attempts = 3, delay = 0 },
      run = function(ctx) error({ message = "plain table", retryable = false, code = 7 }) end,
    },
  },
}''')
r = t.run(wf)
err = (r.one("step_failed") or {}).get("error") or {}
t.is_((len(r.of("step_started")), err.get("message"), err.get("code")), (1, "plain table", 7),
      "error({retryable=false}) as a plain table: not retried, fields kept", result=r)

# ---- retry_after overrides the computed delay (virtual time) ----
wf = t.workflow('''
return workflow {
  name = "retryafter",
  steps = {
    step "throttled" {
      retry = { attempts = 3, delay = 1, backoff = 2, jitter = false },
      run = function(ctx)
        if ctx.attempt == 1 then ctx:fail("slow down", { retry_after = 7 }) end
        if ctx.attempt == 2 then error({ message = "429", retry_after = 2.5 }) end
        return ctx.attempt
      end,
    },
    step "plain" {
      retry = { attempts = 3, delay = 1, backoff = 3, jitter = false },
      run = function(ctx) if ctx.attempt < 3 then error("again") end end,
    },
  },
}''')
r = t.run(wf, "--simulate")
t.is_(r.rc, 0, "retry_after workflow succeeds in simulate", result=r)
t.is_([f.get("delay") for f in r.of("step_failed", "throttled")], [7, 2.5],
      "err.retry_after (ctx:fail and plain table) is the journaled delay, not the backoff")
t.is_([f.get("delay") for f in r.of("step_failed", "plain")], [1, 3],
      "without retry_after: delay, then delay*backoff (jitter off)")
times = [e["time"] for e in r.of("step_started", "throttled")]
t.ok(len(times) == 3 and times[0][:19] < times[1][:19], "simulated clock moves by the delay (journal times)",
     diag=[repr(times)])

# ---- ctx.state ----
wf = t.workflow('''
return workflow {
  name = "state",
  steps = {
    step "a" { run = function(ctx) ctx.state.count = 1; ctx.state.names = { "a" } end },
    step "b" { run = function(ctx)
      ctx.state.count = ctx.state.count + 1
      table.insert(ctx.state.names, "b")
      return { seen = ctx.state.count }
    end },
  },
}''')
r = t.run(wf)
t.is_(r.rc, 0, "ctx.state workflow: exit 0", result=r)
t.is_((r.one("step_succeeded", "a") or {}).get("state"), {"count": 1, "names": ["a"]},
      "step_succeeded of a saves ctx.state as it was then")
t.is_((r.one("step_succeeded", "b") or {}).get("state"), {"count": 2, "names": ["a", "b"]},
      "step b sees a's state and its change is saved")
t.is_((r.one("step_succeeded", "b") or {}).get("result"), {"seen": 2}, "b's result")

# ---- results that cannot be journaled ----
wf = t.workflow('''
return workflow {
  name = "badresult",
  steps = {
    step "fn_result" { retry = { attempts = 2, delay = 0 }, run = function() return { f = print } end },
  },
}''')
r = t.run(wf)
failed = r.of("step_failed", "fn_result")
t.is_(r.rc, 1, "a function in the result: the run fails (exit 1)", result=r)
t.is_(r.of("step_succeeded"), [], "no step_succeeded for an unserialisable result")
t.ok(failed and "not JSON-serialisable" in str((failed[0].get("error") or {}).get("message")),
     "the error says the result is not JSON-serialisable", diag=[repr(failed)])
t.is_([f.get("will_retry") for f in failed], [False], "an unserialisable result is not retried")

wf = t.workflow('''
return workflow {
  name = "badstate",
  steps = { step "s" { run = function(ctx) ctx.state.co = coroutine.create(print) end } },
}''')
r = t.run(wf)
t.is_(r.rc, 1, "a coroutine in ctx.state: the run fails (exit 1)", result=r)
t.like(str(((r.one("step_failed") or {}).get("error") or {}).get("message")), "ctx.state",
       "the error names ctx.state")

# ---- print in a step, -q, and the usage text (docs/operations.md) ----
wf = t.workflow('''
return workflow {
  name = "printing",
  steps = { step "talk" { run = function() print("hello", 42) return 1 end } },
}''')
r = t.run(wf)
t.is_([(e.get("step"), e.get("message")) for e in r.of("log")], [("talk", "hello\t42")],
      "print in a step is a log event of that step (tab-separated), journaled", result=r)
r = t.run(wf, json_events=False)
t.is_((r.rc, "talk: hello\t42" in r.stdout, r.stdout.startswith("hello")), (0, True, False),
      "print's text is shown as the step's log line, not written raw to stdout", result=r)
r = t.run(wf, "-q", json_events=False)
t.is_((r.rc, r.stdout, r.stderr), (0, "", ""), "-q hides the log (and print) of a successful run", result=r)
r = t.run(None, "--help", command=None, state=False, json_events=False)
for needle in ("resume RUN_ID [-y] [-c FILE] [-p NAME=VALUE ...]", "rollback RUN_ID [-y] [-c FILE]",
               "-q, --quiet", "-v, --verbose", "--version"):
    t.like(r.stdout, needle, "--help shows %s" % needle, result=r)
t.done()
