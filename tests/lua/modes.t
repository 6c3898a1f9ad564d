#!/usr/bin/env python3
# modes.t: the modes of docs/workflow-language.md on the engine side: ctx.mode in run, dry-run and
# simulate; simulate runs `simulate` instead of `run` when a step has one;
# virtual time in simulate (sleeps, retry delays, timeouts and wait_until take
# no real time, the journal records simulated durations); dry-runs journaled.
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import wftest

t = wftest.Tap()

wf = t.workflow('''
return workflow {
  name = "modes",
  steps = {
    step "which" { run = function(ctx) ctx:log("mode %s", ctx.mode) return ctx.mode end },
    step "sim" {
      run = function(ctx) ctx:log("real run") return "real" end,
      simulate = function(ctx) ctx:log("simulated, mode %s", ctx.mode) return "fake" end,
    },
  },
}''')
r = t.run(wf)
t.is_((r.rc, r.logs()), (0, ["mode run", "real run"]), "run: ctx.mode is run, run is called", result=r)
t.is_((r.one("run_started") or {}).get("mode"), "run", "run_started mode run")
r = t.run(wf, "--dry-run")
t.is_((r.rc, r.logs()), (0, ["mode dry-run", "real run"]),
      "dry-run: ctx.mode is dry-run, run is called (the bindings report changes)", result=r)
t.is_(((r.one("run_started") or {}).get("mode"), len(r.run_dirs())), ("dry-run", 1),
      "dry-runs are journaled, mode dry-run")
r = t.run(wf, "-n")
t.is_(r.logs()[:1], ["mode dry-run"], "-n is --dry-run")
r = t.run(wf, "--simulate")
t.is_((r.rc, r.logs()), (0, ["mode simulate", "simulated, mode simulate"]),
      "simulate: ctx.mode simulate; the step's simulate function replaces run", result=r)
t.is_((r.one("step_succeeded", "sim") or {}).get("result"), "fake", "the simulate function's result is journaled")
t.is_((r.one("run_started") or {}).get("mode"), "simulate", "run_started mode simulate")

# ---- virtual time ----
wf = t.workflow('''
return workflow {
  name = "virtual",
  steps = {
    step "long_sleep" { run = function(ctx) ctx:sleep(1000) return "rested" end },
    step "retry_delays" {
      retry = { attempts = 3, delay = 300, backoff = 2, max_delay = 3600, jitter = false },
      run = function(ctx) if ctx.attempt < 3 then error("later") end return ctx.attempt end,
    },
    step "polls" { run = function(ctx)
      return ctx:wait_until(function() return false end, { timeout = 5, what = "never" })
    end },
    step "timed" {
      timeout = 600,
      simulate = function(ctx)
        local polls = 0
        return ctx:wait_until(function() polls = polls + 1; return polls == 10 and polls end,
          { interval = 60, timeout = 3600 })
      end,
      run = function() return "unused" end,
    },
  },
}''')
r = t.run(wf, "--simulate")
t.is_(r.rc, 0, "simulate: sleeps of 1000 s, retry delays of 300+600 s: exit 0", result=r)
t.ok(r.seconds < 2, "... in under 2 s of wall time (took %.2f s)" % r.seconds)
t.ok(abs(((r.one("step_succeeded", "long_sleep") or {}).get("elapsed") or 0) - 1000) < 1,
     "the journal records the simulated 1000 s as the step's elapsed time")
t.is_([e.get("delay") for e in r.of("step_failed", "retry_delays")], [300, 600],
      "retry delays are journaled as computed")
t.is_((r.one("step_succeeded", "polls") or {}).get("result"), True,
      "wait_until is satisfied at its first poll in simulate (no simulate function)")
t.is_((r.one("step_succeeded", "timed") or {}).get("result"), 10,
      "a simulate function's own wait_until polls on virtual time (10 polls, 60 s apart)")
t.ok(abs(((r.one("step_succeeded", "timed") or {}).get("elapsed") or 0) - 540) < 1,
     "... and takes 540 simulated seconds")
started, finished = (r.one("run_started") or {}).get("time", ""), (r.events[-1] if r.events else {}).get("time", "")
t.ok(started[:13] != finished[:13] or started[11:16] != finished[11:16],
     "journal times follow the simulated clock (run spans %s .. %s)" % (started, finished))

wf = t.workflow('''
return workflow {
  name = "virtual_timeout",
  steps = {
    step "hang" { timeout = 30, retry = { attempts = 2, delay = 100 },
                  run = function(ctx) ctx:sleep(86400) end },
  },
}''')
r = t.run(wf, "--simulate")
t.is_(r.rc, 1, "simulate: a 30 s timeout on a one-day sleep fails the run", result=r)
t.is_([((e.get("error") or {}).get("kind")) for e in r.of("step_failed")], ["timeout", "timeout"],
      "... both attempts time out on the virtual clock")
t.ok(all(abs((e.get("elapsed") or 0) - 30) < 1 for e in r.of("step_failed")),
     "... each after 30 simulated seconds")
t.ok(r.seconds < 2, "... and the run takes under 2 s of wall time (took %.2f s)" % r.seconds)

# compensation and pause behave as in a run
wf = t.workflow('''
return workflow {
  name = "sim_comp",
  steps = {
    step "a" { run = function() return 1 end, compensate = function(ctx, r) ctx:log("undo a %s", ctx.mode) end },
    step "b" { run = function() error("boom") end },
  },
}''')
r = t.run(wf, "--simulate")
t.is_((r.rc, r.logs()), (1, ["undo a simulate"]), "simulate: compensation runs as in a real run", result=r)
r = t.run(wf, "--simulate", "--on-failure", "pause")
t.is_((r.rc, r.types()[-1:]), (5, ["run_paused"]), "simulate: pause gives exit 5", result=r)

# A paused dry-run says what is true: it is neither resumed nor rolled back.
paused_dry = t.workflow('''return workflow { name = "paused_dry", on_failure = "pause", steps = {
  step "a" { run = function() end },
  step "b" { run = function() error("broken") end },
} }''')
state = t.fresh_state()
r = t.run(paused_dry, "--dry-run", json_events=False, state=state)
t.is_(r.rc, 5, "paused dry-run: exit 5", result=r)
t.unlike(r.stderr, "wfengine resume", "paused dry-run: does not offer resume", result=r)
t.unlike(r.stderr, "wfengine rollback", "paused dry-run: does not offer rollback", result=r)
t.like(r.stderr, "a dry-run changed nothing and is not resumed or rolled back", "paused dry-run: says so",
       result=r)
r2 = t.run(None, r.run_dirs()[0], command="show", state=state)
t.like(r2.stdout, "next: a dry-run is not resumed", "show of a paused dry-run: the same", result=r2)
r = t.run(paused_dry, json_events=False)
t.like(r.stderr, "wfengine resume", "a paused real run still offers resume", result=r)
t.done()
