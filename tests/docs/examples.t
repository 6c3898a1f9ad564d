#!/usr/bin/env python3
# examples.t: every ```lua block in README.md and docs/*.md works as written.
# A block is a whole workflow unless the line before it says otherwise:
#   <!-- example: -p tenant=acme -->   a workflow, run with these arguments
#   <!-- fragment -->                  a piece of a step's run function
# A workflow must pass `wfengine check` and `wfengine FILE --simulate` (exit
# 0); a fragment is wrapped into a one-step workflow and must pass `check`
# (it is compiled, not run: it may name values it does not define; luacheck
# is told so, and the parameters it reads are declared).
import glob
import os
import re
import shlex
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import wftest

t = wftest.Tap()
FENCE = re.compile(r"^```lua\s*$")
MARK = re.compile(r"^<!--\s*(example:(.*?)|fragment)\s*-->\s*$")


def blocks(path):
    """(line number, marker line or '', code) for each ```lua block."""
    with open(path, encoding="utf-8") as f:
        lines = f.read().splitlines()
    out = []
    for i, line in enumerate(lines):
        if not FENCE.match(line):
            continue
        end = next((j for j in range(i + 1, len(lines)) if lines[j].startswith("```")), len(lines))
        before = next((lines[j] for j in range(i - 1, -1, -1) if lines[j].strip()), "")
        out.append((i + 1, before if MARK.match(before) else "", "\n".join(lines[i + 1:end]) + "\n"))
    return out


def wrap(fragment):
    """A one-step workflow around the fragment: the parameters it reads are
    declared, and luacheck lets it name values it does not define or use."""
    body = "\n".join("      " + l if l else l for l in fragment.splitlines())
    params = sorted(set(re.findall(r"\bctx\.params\.([A-Za-z_]\w*)", fragment)))
    declared = "".join("%s = {}, " % p for p in params)
    return ("-- luacheck: ignore 11 21 31\n"
            'return workflow {\n  name = "fragment",\n  params = { %s},\n  steps = {\n'
            '    step "fragment" {\n'
            "      run = function(ctx)\n%s\n      end,\n    },\n  },\n}\n" % (declared, body))


docs = [os.path.join(wftest.ROOT, "README.md")] + sorted(glob.glob(os.path.join(wftest.ROOT, "docs", "*.md")))
found = 0
for doc in docs:
    name = os.path.relpath(doc, wftest.ROOT)
    for line, marker, code in blocks(doc):
        found += 1
        where = "%s:%d" % (name, line)
        m = MARK.match(marker) if marker else None
        if m and m.group(1) == "fragment":
            wf = t.workflow(wrap(code))
            r = t.check(wf)
            t.is_(r.rc, 0, "%s (fragment): compiles inside a step's run" % where, result=r)
            continue
        args = shlex.split(m.group(2)) if m else []
        wf = t.workflow(code)
        r = t.check(wf, *args)
        t.is_(r.rc, 0, "%s: wfengine check %s" % (where, " ".join(args)), result=r)
        r = t.run(wf, "--simulate", *args)
        t.is_(r.rc, 0, "%s: wfengine FILE --simulate %s" % (where, " ".join(args)), result=r)
t.ok(found >= 4, "found the lua blocks of README.md and docs/ (%d)" % found)
t.done()
