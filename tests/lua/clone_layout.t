#!/usr/bin/env python3
# clone_layout.t: clone_sandbox.lua's layout stays true. The index at the top
# of the entry file and `wfengine plan clone_sandbox.lua` agree (ids, order,
# titles); the ctx.state keys the steps share are those declared in
# workflows/clone_sandbox/state_keys.lua, reached through it only, and each
# is written by its declared step (checked at run time too); steps name
# each other by id, not by number, in the code's comments.
import glob
import json
import os
import re
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import wftest

t = wftest.Tap()
ROOT = wftest.ROOT
CLONE = os.path.join(ROOT, "clone_sandbox.lua")
STEPS_DIR = os.path.join(ROOT, "workflows", "clone_sandbox")
KEYS_FILE = os.path.join(STEPS_DIR, "state_keys.lua")


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


# -- the index and the plan -------------------------------------------------------
r = t.plan(CLONE, "--format", "json")
plan = json.loads(r.stdout) if r.rc == 0 else {"steps": []}
planned = [(s["index"], s["id"], s["title"]) for s in plan["steps"]]
t.is_(len(planned), 31, "the plan of clone_sandbox.lua has the 31 steps", result=r)

header = read(CLONE).split("\nlocal ", 1)[0]
index = [(int(n), i, title) for n, i, title in
         re.findall(r"^--\s+(\d+)\s+([a-z_][a-z0-9_]*)\s+(.+?)\s*$", header, re.M)]
t.is_(index, planned, "the index atop clone_sandbox.lua: same numbers, ids, order and titles as the plan")

# -- ctx.state through state_keys.lua ------------------------------------------------
keys_text = read(KEYS_FILE)
declared = {}
for key, writer, readers in re.findall(
        r'^  (\w+) = \{ writer = "(\w+)",\s*readers = \{([^}]*)\}', keys_text, re.M):
    declared[key] = (writer, re.findall(r'"([a-z_]+)"', readers))
t.ok(len(declared) >= 10, "state_keys.lua declares the shared keys (%d)" % len(declared))
ids = {s["id"] for s in plan["steps"]}
named = sorted({w for w, _ in declared.values()} | {x for _, rs in declared.values() for x in rs})
t.is_([n for n in named if n not in ids], [], "every writer and reader named there is a step of the plan")

files = [CLONE] + sorted(glob.glob(os.path.join(STEPS_DIR, "*.lua"))) + \
    sorted(glob.glob(os.path.join(ROOT, "workflows", "lib", "*.lua")))
code = {f: re.sub(r"--[^\n]*", "", read(f)) for f in files}
direct = [os.path.relpath(f, ROOT) for f, text in code.items()
          if f != KEYS_FILE and "ctx.state" in text]
t.is_(direct, [], "no file of the clone reads or writes ctx.state but through state_keys.lua")

used, written_in = {}, {}
for f, text in code.items():
    for m in re.finditer(r"state\(ctx\)\.(\w+)(\s*=(?!=))?", text):
        used.setdefault(m.group(1), set()).add(f)
        if m.group(2):
            written_in.setdefault(m.group(1), set()).add(f)
t.is_(sorted(k for k in used if k not in declared), [], "every key the steps use is declared")
t.is_(sorted(k for k in declared if k not in written_in or k not in used), [],
      "every declared key is written and read")


def defining_file(step_id):
    for f in files:
        if re.search(r'wf\.step "%s"' % step_id, code[f]):
            return f
    return None


wrong = ["%s written in %s" % (k, os.path.relpath(f, ROOT)) for k, fs in sorted(written_in.items())
         for f in fs if k in declared and f != defining_file(declared[k][0])]
t.is_(wrong, [], "each key is written only in the file of its writer step")

# at run time: an undeclared key, and a write from another step, are refused
env = {"WFENGINE_PATH": os.path.join(ROOT, "workflows")}
for label, body, message in [
        ("an undeclared key", "return state(ctx).no_such_key",
         "ctx.state.no_such_key is not declared in workflows/clone_sandbox/state_keys.lua"),
        ("a write from a step other than the writer", "state(ctx).old_database = 'x'",
         "ctx.state.old_database is written by step drop_database only, not intruder")]:
    wf = t.workflow('''local state = require("clone_sandbox.state_keys").state
return workflow { steps = { step "intruder" { run = function(ctx) %s end, retry = { attempts = 1 } } } }
''' % body)
    r = t.run(wf, env=env)
    t.ok(r.rc != 0 and message in r.stdout + r.stderr, "state_keys refuses %s" % label, diag=r.stdout[-400:] + r.stderr[-400:])

# -- steps by id ----------------------------------------------------------------------
numbered = []
for f in files:
    for n, line in enumerate(read(f).splitlines(), 1):
        comment = line.split("--", 1)[1] if "--" in line else ""
        if re.search(r"\bsteps? \d", comment, re.I):
            numbered.append("%s:%d: %s" % (os.path.relpath(f, ROOT), n, line.strip()))
t.is_(numbered, [], "comments in the clone's code name steps by id, not by number")

t.done()
