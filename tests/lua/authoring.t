#!/usr/bin/env python3
# authoring.t: what a workflow author gets before anything runs: the DSL as
# a module (`require "wf"`) so steps can live in files the workflow requires,
# and a resume that sees an edit to such a file.
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import wftest

t = wftest.Tap()


def write(rel, text):
    path = t.path(rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)
    return path


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

t.done()
