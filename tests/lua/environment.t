#!/usr/bin/env python3
# environment.t: the Lua world a workflow runs in (docs/workflow-language.md,
# "Modules and the Lua environment"): bindings refuse to wait in a coroutine the workflow made, `load`
# takes text only, the engine's own modules are not requirable, modules are
# searched next to the workflow, in the project's workflows/ and in
# $WFENGINE_PATH (never the current directory), a failed require is one
# line, and a result that is not UTF-8 is journaled and read back intact.
import os
import socket
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import wftest

t = wftest.Tap()


def closed_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    return port


def one_step(body, name="env"):
    return t.workflow('''local http = require "wf.http"
return workflow { name = "%s", steps = {
  step "a" { run = function(ctx)
%s
  end },
} }''' % (name, body))


def step_error(r, step="a"):
    failed = r.of("step_failed", step)
    return failed[0]["error"]["message"] if failed else None


# -- bindings in a coroutine the workflow made -------------------------------
MADE_HERE = "called from a coroutine the workflow made"
wf = one_step('''    local gen = coroutine.wrap(function()
      coroutine.yield(http.get("http://127.0.0.1:%d/x", { timeout = 5 }))
    end)
    local got = gen()
    return { got = type(got) }''' % closed_port())
r = t.run(wf, timeout=20)
t.is_(r.rc, wftest.COMPENSATED, "wf.http in a generator: the run fails, no hang", result=r)
t.like(step_error(r), MADE_HERE, "wf.http in a generator: a clear error, not a wait object",
       result=r)

wf = one_step('''    local gen = coroutine.wrap(function() ctx:sleep(0.01) return "slept" end)
    return { got = tostring(gen()) }''')
r = t.run(wf, timeout=20)
t.like(step_error(r), MADE_HERE, "ctx:sleep in a coroutine the workflow made: a clear error",
       result=r)

wf = one_step('''    local gen = coroutine.wrap(function() coroutine.yield(1) coroutine.yield(2) end)
    return { a = gen(), b = gen() }''')
r = t.run(wf, timeout=20)
s = r.one("step_succeeded", "a")
t.is_(s and s.get("result"), {"a": 1, "b": 2}, "a generator that calls no binding still works",
      result=r)


# -- load takes text only -------------------------------------------------------
wf = one_step('''    local f, err = load(string.dump(function() return 1 end))
    local g, err2 = load(string.dump(function() return 1 end), "x", "b")
    local path = os.tmpname()
    local file = io.open(path, "wb") file:write(string.dump(function() return 1 end)) file:close()
    local h, err3 = loadfile(path)
    local okd, err4 = pcall(dofile, path)
    os.remove(path)
    return { dumped = f == nil and g == nil and h == nil and not okd, message = tostring(err),
      text = load("return 1")(), env = load("return step")() == step,
      own_env = load("return x", "y", "t", { x = 5 })() }''')
r = t.run(wf, timeout=20)
s = r.one("step_succeeded", "a")
res = s and s.get("result") or {}
t.is_((res.get("dumped"), res.get("text"), res.get("env"), res.get("own_env")), (True, 1, True, 5),
      "load, loadfile, dofile refuse a binary chunk (any mode); text chunks load in the workflow's "
      "environment", result=r)
t.like(res.get("message"), "binary chunk", "the refusal says why", result=r)

# -- the engine's own modules are not requirable -----------------------------------
wf = t.workflow('''local core = require "wfengine.core"
return workflow { name = "x", steps = { step "a" { run = function() end } } }''')
r = t.check(wf)
t.is_((r.rc, r.first_err),
      (2, "wfengine: %s:1: module 'wfengine.core' is internal to the engine: workflows cannot "
          "require it" % wf), "require \"wfengine.core\" from a workflow: one clear line", result=r)
wf = one_step('''    return { loaded = package.loaded["wfengine.core"] == nil
      and package.preload["wfengine.core"] == nil and package.loaded["wfengine.sched"] == nil,
      shared = require("wf.json") == package.loaded["wf.json"] }''')
r = t.run(wf, timeout=20)
s = r.one("step_succeeded", "a")
t.is_(s and s.get("result"), {"loaded": True, "shared": True},
      "package.loaded and package.preload of a workflow hold no engine module", result=r)

# -- where modules are searched --------------------------------------------------
write = t.write
USES = '''local m = require "%s"
return workflow { name = "x", steps = { step "a" { run = function() return m.value end } } }'''
write("cwd/helper.lua", "return { value = 'from the cwd' }")
wf = write("elsewhere/wf.lua", USES % "helper")
r = t.check(wf, cwd=t.path("cwd"))
t.is_(r.rc, 2, "a module in the current directory but not next to the workflow is not found",
      result=r)
t.like(r.first_err, "%s:1: module 'helper' not found (looked in: %s/?.lua, "
       % (wf, t.path("elsewhere")), "the failure names the module and where it looked", result=r)
t.is_(len(r.stderr.splitlines()), 1, "a failed require is one line", result=r)

write("proj/workflows/lib/x.lua", "return { value = 'lib.x' }")
write("proj/workflows/lib/y.lua", "local x = require 'lib.x' return { value = x.value .. '+y' }")
for rel in ("proj/workflows/wf.lua", "proj/workflows/sub/wf.lua", "proj/wf.lua", "proj/tools/wf.lua"):
    wf = write(rel, USES % "lib.y")
    r = t.run(wf, timeout=20, cwd=t.path("cwd"))
    s = r.one("step_succeeded", "a")
    t.is_(s and s.get("result"), "lib.x+y", "a workflow at %s requires lib.y (which requires lib.x) "
          "from the project's workflows/" % rel, result=r)

write("extra/more/z.lua", "return { value = 'z from WFENGINE_PATH' }")
wf = write("solo/wf.lua", USES % "more.z")
r = t.run(wf, timeout=20, env={"WFENGINE_PATH": t.path("nothing") + ":" + t.path("extra")})
s = r.one("step_succeeded", "a")
t.is_(s and s.get("result"), "z from WFENGINE_PATH", "WFENGINE_PATH adds directories", result=r)

with open(t.path("solo/bin.lua"), "wb") as f:
    f.write(b"\x1bLua\x54\x00garbage")
wf = write("solo/wf2.lua", USES % "bin")
r = t.check(wf)
t.like(r.first_err, "cannot load module 'bin'", "require of a binary chunk is refused", result=r)
t.like(r.first_err, "binary chunk", "... saying why", result=r)

# -- a result that is not UTF-8 -------------------------------------------------
wf = t.workflow('''return workflow { name = "bytes", on_failure = "pause", steps = {
  step "a" {
    run = function(ctx) return { data = "\\xff\\x00\\x80", text = "plain", ["k\\xfe"] = 1 } end,
    compensate = function(ctx, result)
      if result.data ~= "\\xff\\x00\\x80" or result.text ~= "plain" or result["k\\xfe"] ~= 1 then
        ctx:fail("the result came back changed", { retryable = false })
      end
    end,
  },
  step "b" { run = function(ctx) error("stop here") end, retry = { attempts = 1 } },
} }''')
state = t.fresh_state()
r = t.run(wf, state=state, timeout=20)
s = r.one("step_succeeded", "a")
t.is_((r.rc, s and s["result"].get("data")), (wftest.PAUSED, {"$base64": "/wCA"}),
      "a step returning bytes succeeds; they are journaled as {\"$base64\": ...}", result=r)
t.is_(s and s["result"].get("$base64:a/4="), 1, "a key that is not UTF-8 is journaled as "
      "\"$base64:<key in base64>\"", result=r)
run_id = r.run_dirs()[0] if r.run_dirs() else "none"
shown = t.run(None, "--json", run_id, command="show", state=state)
t.like(shown.stdout, '"data":{"$base64":"/wCA"}', "show --json prints the journaled form",
       result=shown)
back = t.run(None, run_id, "-y", command="rollback", state=state, timeout=20)
t.is_((back.rc, "undone" in back.stdout, "came back changed" in back.stdout + back.stderr),
      (wftest.COMPENSATED, True, False),
      "rollback (another process) gives compensate the bytes the step returned", result=back)

t.done()
