#!/usr/bin/env python3
# plan.t: `check` and `plan` in all four formats. Neither runs any step code
# nor journals anything; json has the shape docs/workflow-language.md and plan.lua give.
import json
import os
import re
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import wftest

t = wftest.Tap()

wf = t.workflow('''
-- Every function exits the process: plan and check must never call them.
local function never() os.exit(9) end
return workflow {
  name = "planned",
  description = "A plan | with a pipe",
  params = { target = { required = true }, size = { default = "1" } },
  steps = {
    step "first" { title = "First step", doc = "Does the first thing.", run = never, compensate = never },
    parallel "grp" {
      title = "Both sides",
      doc = "Left and right | together.",
      step "left" { run = never },
      step "right" { irreversible = true, confirm = "Sure?", run = never },
    },
    step "last" { when = never, run = never },
  },
}''', "planned.lua")

# ---- check ----
r = t.check(wf)
t.is_((r.rc, r.stdout), (0, "ok: %s: workflow planned, 4 steps (1 parallel groups), parameters: size, target\n"
      "  size (default 1)\n  target (required)\n" % wf),
      "check: exit 0, one summary line, then one line per parameter", result=r)
r = t.check(wf, "-q")
t.is_((r.rc, r.stdout, r.stderr), (0, "", ""), "check -q: silent success", result=r)
r = t.check(wf, "-p", "target=x")
t.is_(r.rc, 0, "check with -p: parameters validated and accepted", result=r)
r = t.check(wf, "-p", "bogus=1")
t.is_((r.rc, r.first_err.startswith("wfengine: unknown parameter 'bogus'")), (2, True),
      "check with an unknown -p: exit 2", result=r)
bad = t.workflow('return workflow { name = "bad", steps = { step "a" { run = function() end, titel = "x" } } }')
r = t.check(bad)
t.is_((r.rc, r.first_err.split(" (did you mean")[0]), (2, "wfengine: %s:1: step 'a': unknown field 'titel'" % bad),
      "check of an invalid workflow: exit 2, file:line, the field named", result=r)
hints = set()
for _ in range(6):
    hints.add(t.check(bad).first_err.partition("(did you mean ")[2])
t.is_(sorted(hints), ["'title'?)"], "the 'did you mean' hint is the same every time, and the closest field",
      todo="engine bug: dsl.nearest breaks ties in pairs() order: 'titel' suggests 'title' or 'timeout' at random"
      if hints != {"'title'?)"} else None)

# ---- plan ----
r = t.plan(wf)
lines = r.stdout.splitlines()
t.is_((r.rc, lines[0] if lines else None), (0, "planned: A plan | with a pipe"), "plan text: name and description first",
      result=r)
steps_text = [l for l in lines if re.match(r"\s*\d+\. ", l)]
t.is_([l.split()[1] for l in steps_text], ["first", "left", "right", "last"], "plan text: one numbered line per step")
t.ok("[parallel grp]" in steps_text[1] and "irreversible" in steps_text[2]
     and "confirm: asked when reached" in steps_text[2],
     "plan text: group membership and flags shown", diag=steps_text)
group_line = "   parallel grp (2-3): Both sides -- Left and right | together."
t.ok(group_line in lines, "plan text: the group's own line: its members' numbers, title and doc", diag=lines)
t.is_(lines.index(group_line) + 1 if group_line in lines else None, lines.index(steps_text[1]),
      "plan text: the group line comes just before its first member")
r2 = t.plan(wf, "--format", "text")
t.is_(r2.stdout, r.stdout, "--format text is the default")

r = t.plan(wf, "--format", "markdown")
lines = r.stdout.splitlines()
rows = [l for l in lines if re.match(r"\d\d \| ", l)]
t.is_(r.rc, 0, "plan markdown: exit 0", result=r)
t.ok("Task number | Task | Description |" in lines and "---|---|---|" in lines, "plan markdown: the seed's table header",
     diag=lines)
t.is_(rows, ["01 | First step | Does the first thing. |", "02 | Left |  |", "03 | Right |  |", "04 | Last |  |"],
      "plan markdown: number, title, description per step")
t.ok(r"A plan \| with a pipe" in r.stdout, "plan markdown: a pipe in text is escaped")
t.ok(r"02-03 | Both sides (in parallel) | Left and right \| together. |" in lines,
     "plan markdown: the group's row (its steps' numbers, title, doc) before its members", diag=lines)

r = t.plan(wf, "--format", "json")
try:
    doc = json.loads(r.stdout)
except ValueError:
    doc = {}
t.is_((r.rc, r.stdout.count("\n")), (0, 1), "plan json: exit 0, one line", result=r)
t.is_(doc.get("name"), "planned", "plan json: name")
steps = doc.get("steps") or []
t.is_([(s.get("index"), s.get("id"), s.get("title"), s.get("group")) for s in steps],
      [(1, "first", "First step", None), (2, "left", "Left", "grp"), (3, "right", "Right", "grp"),
       (4, "last", "Last", None)], "plan json: index, id, title, group (null outside a group)")
t.ok(all("group" in s for s in steps), "plan json: group present on every step, even when null")

r = t.plan(wf, "--format", "dot")
out = r.stdout
t.is_((r.rc, out.splitlines()[0] if out else None), (0, 'digraph "planned" {'), "plan dot: a digraph", result=r)
t.is_(out.count("{"), out.count("}"), "plan dot: braces balance")
t.ok(re.search(r'subgraph "cluster_grp" \{ label="Both sides";', out), "plan dot: the group is a cluster with its title")
t.ok('"first" -> "left";' in out and '"first" -> "right";' in out and '"left" -> "last";' in out
     and '"right" -> "last";' in out,
     "plan dot: edges fan out into the group and back in", diag=out.splitlines())

kw = t.workflow('''return workflow { name = "keywords", steps = {
  step "node" { run = function() end }, step "edge" { run = function() end }, step "graph" { run = function() end },
} }''')
r = t.plan(kw, "--format", "dot")
bare = [l for l in r.stdout.splitlines() if re.match(r"\s*(node|edge|graph)\b", l) and "[shape=box]" not in l]
t.is_(bare, [], "plan dot: step ids that are DOT keywords (node, edge, graph) are quoted",
      todo="engine bug: dot output uses step ids unquoted; `node`/`edge`/`graph` turn into DOT keywords" if bare else None,
      result=r)

# A parameter's doc in check and plan.
documented = t.workflow('''return workflow { name = "documented",
  params = { tenant = { required = true, doc = "tenant id" }, tok = { secret = true, env = "TOK", default = "hush" } },
  steps = { step "a" { run = function() end } } }''')
r = t.check(documented)
t.is_(r.stdout.splitlines()[1:], ["  tenant (required): tenant id", "  tok ($TOK, secret)"],
      "check: one line per parameter with its doc (a secret's default not shown)", result=r)
r = t.plan(documented)
t.ok("parameters:" in r.stdout and "  tenant (required): tenant id" in r.stdout and "hush" not in r.stdout,
     "plan text: the parameters with their docs", diag=r.stdout.splitlines())
r = t.plan(documented, "--format", "json")
t.is_([(p.get("name"), p.get("doc"), p.get("default")) for p in json.loads(r.stdout or "{}").get("params", [])],
      [("tenant", "tenant id", None), ("tok", None, None)], "plan json: params with their doc", result=r)
r = t.plan(documented, "--format", "markdown")
t.ok("- tenant (required): tenant id" in r.stdout, "plan markdown: the parameters with their docs",
     diag=r.stdout.splitlines())

for fmt in ("text", "markdown", "json", "dot"):
    r = t.plan(bad, "--format", fmt)
    t.is_((r.rc, r.stdout), (2, ""), "plan %s of an invalid workflow: exit 2, nothing on stdout" % fmt, result=r)
t.done()
