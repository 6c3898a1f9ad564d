#!/usr/bin/env python3
# authoring.t: what a workflow author gets before anything runs: the DSL as
# a module (`require "wf"`) so steps can live in files the workflow requires,
# a resume that sees an edit to such a file, and the static checks of
# `wfengine check` over every file (luacheck, ctx fields, parameters), and
# the starter `wfengine new` writes.
import os
import shutil
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import wftest

t = wftest.Tap()
write = t.write

# -- the DSL as a module -------------------------------------------------------
STEPS = '''local wf = require "wf"
local M = {}
M.first = wf.step "first" { run = function(ctx) return { n = 1 } end }
M.group = wf.parallel "both" {
  wf.step "left" { run = function(ctx) return "l" end },
  wf.step "right" { run = function(ctx) return "r" end },
}
return M
'''
write("proj/workflows/steps/basic.lua", STEPS)
write("proj/workflows/steps/globals.lua",
      'return { last = step "last" { run = function(ctx) return "g" end } }\n')
MAIN = '''local wf = require "wf"
local basic = require "steps.basic"
local globals = require "steps.globals"
return wf.workflow {
  name = "split",
  steps = { basic.first, basic.group, globals.last },
}
'''
wf = write("proj/split.lua", MAIN)
r = t.check(wf)
t.is_(r.rc, 0, "check of a workflow whose steps are in required files", result=r)
t.like(r.stdout, "4 steps (1 parallel groups)", "... counts the steps of every file", result=r)
r = t.run(wf, "--simulate")
t.is_((r.rc, r.trail("step_succeeded")),
      (0, ["step_succeeded:first:1", "step_succeeded:left:1", "step_succeeded:right:1",
           "step_succeeded:last:1"]),
      "it runs (--simulate), wf.step and the global step alike", result=r)

write("proj/workflows/steps/typo.lua",
      'local wf = require "wf"\nreturn wf.step "t" {\n  run = function() end,\n  retires = 3,\n}\n')
wf = write("proj/typo.lua", 'return workflow { steps = { require "steps.typo" } }\n')
r = t.check(wf)
t.is_((r.rc, r.first_err),
      (2, "wfengine: %s:2: step 't': unknown field 'retires' (did you mean 'retry'?)"
       % t.path("proj/workflows/steps/typo.lua")),
      "a mistake in a required file of steps names that file and line", result=r)

r = t.check(write("proj/same.lua", '''local wf = require "wf"
return workflow { name = tostring(wf.step == step and wf.workflow == workflow
  and wf.parallel == parallel and require "wf" == wf), steps = { step "a" { run = print } } }'''))
t.like(r.stdout, "workflow true,", "require \"wf\" gives the globals' own functions, once",
       result=r)

# -- resume sees an edit to a file of steps --------------------------------------
# (global step: this part holds without require "wf")
write("proj/workflows/steps/edit.lua", '''return {
  step "a" { run = function(ctx) return 1 end },
  step "b" { run = function(ctx) error("stop here") end, retry = { attempts = 1 } },
}
''')
wf = write("proj/edit.lua", '''local s = require "steps.edit"
return workflow { name = "edit", on_failure = "pause", steps = { s[1], s[2] } }
''')
state = t.fresh_state()
r = t.run(wf, state=state)
t.is_(r.rc, wftest.PAUSED, "a run whose step b (in a required file) fails pauses", result=r)
run_id = r.run_dirs()[0] if r.run_dirs() else "none"
write("proj/workflows/steps/edit.lua", '''return {
  step "a" { run = function(ctx) return 1 end },
  step "b" { run = function(ctx) return "fixed" end, retry = { attempts = 1 } },
}
''')
r = t.run(None, run_id, command="resume", state=state)
t.is_(r.rc, 0, "resume after fixing the file of steps succeeds", result=r)
t.like(r.stdout, "step changed: b", "... and reports the edited step of the required file",
       result=r)
t.unlike(r.stdout, "step changed: a", "... and not the unchanged one", result=r)

# -- static checks (engine/lua/lint.lua) ------------------------------------------
HAVE_LUACHECK = shutil.which("luacheck") is not None
write("proj/workflows/steps/typos.lua", """local wf = require "wf"
local sql = require "wf.sql"
local M = {}
M.connect = wf.step "connect" {
  run = function(ctx)
    local unused = 1
    return sqll.connect(ctx.params.dsn)
  end,
}
M.read = wf.step "read" {
  -- ctx.parms in a comment and "ctx.parms" in a string are not code
  run = function(ctx) return { ctx.parms, ctx.params.tenatn, "ctx.parms", ctx:logg("x") } end,
}
return M
""")
wf = write("proj/typos.lua", """local s = require "steps.typos"
return workflow { name = "typos", params = { dsn = {}, tenant = {} }, steps = { s.connect, s.read } }
""")
TYPOS = t.path("proj/workflows/steps/typos.lua")
r = t.check(wf)
t.is_(r.rc, 2, "check of a workflow with typos in a required file exits 2", result=r)
t.like(r.stderr, "%s:12:32: error: ctx has no field 'parms' (did you mean 'params'?)" % TYPOS,
       "a read of an unknown ctx field: file:line:col and the nearest field", result=r)
t.like(r.stderr, "%s:12:43: error: ctx.params has no parameter 'tenatn' (did you mean 'tenant'?)"
       % TYPOS, "a read of an undeclared parameter, with the nearest one", result=r)
t.like(r.stderr, "%s:12:75: error: ctx has no field 'logg' (did you mean 'log'?)" % TYPOS,
       "a call of an unknown ctx method", result=r)
t.is_(r.stderr.count("'parms'"), 1, "comments and strings are not read as code", result=r)
t.like(r.stderr.splitlines()[-1] if r.stderr else "",
       "typos.lua: %d errors found by the static checks" % (4 if HAVE_LUACHECK else 3),
       "the last line counts the errors", result=r)
if HAVE_LUACHECK:
    t.like(r.stderr, "%s:7:12: error: accessing undefined variable 'sqll' (luacheck W113)" % TYPOS,
           "luacheck: an undefined global (a misspelt module) is an error at file:line:col",
           result=r)
    t.like(r.stderr, "%s:6:11: warning: unused variable 'unused' (luacheck W211)" % TYPOS,
           "luacheck: an unused local is a warning", result=r)
    t.like(r.stderr, "%s:2:7: warning: unused variable 'sql'" % TYPOS,
           "... also at the top of a file", result=r)
else:
    t.skip("luacheck is not installed", 3)

wf = write("proj/clean.lua", """local unused = 1
return workflow { steps = { step "a" { run = function(ctx) ctx:log("%s", ctx.mode) end } } }
""")
r = t.check(wf)
if HAVE_LUACHECK:
    t.is_((r.rc, r.stderr.strip()),
          (0, "%s:1:7: warning: unused variable 'unused' (luacheck W211)" % wf),
          "warnings alone: exit 0, each one line", result=r)
else:
    t.skip("luacheck is not installed")
r = t.check(wf, env={"PATH": "/nonexistent"})
t.is_((r.rc, r.first_err),
      (0, "wfengine: note: luacheck is not installed: undefined globals and unused locals were "
       "not checked (install the Debian package lua-check)"),
      "without luacheck check says so and still passes", result=r)
wf = write("proj/ctxtypo.lua",
           'return workflow { steps = { step "a" { run = function(ctx) return ctx.stat end } } }\n')
r = t.check(wf, env={"PATH": "/nonexistent"})
t.is_((r.rc, r.stderr.splitlines()[1:2]),
      (2, ["%s:1:67: error: ctx has no field 'stat' (did you mean 'state'?)" % wf]),
      "... and the ctx checks still run", result=r)

# every method of ctx is known to check: ctx:tally was once missing from its
# list (check of the clone failed on each tally), now read from the runner
wf = write("proj/ctxall.lua", """return workflow { steps = { step "a" { run = function(ctx)
  ctx:log("x") ctx:warn("x") ctx:tally(1, "things", "touch", "touched") ctx:progress(0, 1)
  ctx:sleep(0) ctx:wait_until(function() return true end) ctx:parallel({})
  if ctx.attempt > 9 then ctx:fail("no") end
  return { ctx.run_id, ctx.step, ctx.mode, ctx.params, ctx.config, ctx.state }
end } } }
""")
r = t.check(wf, env={"PATH": "/nonexistent"})
t.is_((r.rc, [l for l in r.stderr.splitlines() if "error" in l]), (0, []),
      "check knows every field and method of ctx (ctx:tally included)", result=r)

# -- wfengine new -------------------------------------------------------------------
os.makedirs(t.path("newdir"), exist_ok=True)
r = t.run(None, "starter", command="new", state=False, cwd=t.path("newdir"))
t.is_((r.rc, os.path.exists(t.path("newdir/starter.lua"))), (0, True),
      "wfengine new NAME writes NAME.lua", result=r)
r = t.check(t.path("newdir/starter.lua"))
t.is_((r.rc, r.stderr), (0, ""), "the starter passes check, with no finding", result=r)
t.like(r.stdout, "workflow starter, 4 steps (1 parallel groups)", "... named after the file",
       result=r)
r = t.run(t.path("newdir/starter.lua"), "--simulate")
t.is_(r.rc, 0, "the starter passes --simulate", result=r)
with open(t.path("newdir/starter.lua")) as f:
    starter = f.read()
t.ok(starter.count("\n--") + starter.count("  --") >= 10, "the starter is commented")
r = t.run(None, "starter.lua", command="new", state=False, cwd=t.path("newdir"))
t.is_((r.rc, r.first_err), (2, "wfengine: new: starter.lua already exists (nothing written)"),
      "new never overwrites a file", result=r)
r = t.run(None, t.path("no/such/dir/x"), command="new", state=False)
t.is_((r.rc, len(r.stderr.splitlines())), (2, 1), "new into a missing directory: one line, exit 2",
      result=r)
t.like(r.first_err, "no/such/dir/x.lua", "... naming the file", result=r)

t.done()
