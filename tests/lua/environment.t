#!/usr/bin/env python3
# environment.t: the Lua world a workflow runs in (issues [8] 9, 10 and [14]
# 6, 7): bindings refuse to wait in a coroutine the workflow made, `load`
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


# -- [8].9: bindings in a coroutine the workflow made ------------------------
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

t.done()
