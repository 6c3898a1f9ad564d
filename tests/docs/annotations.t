#!/usr/bin/env python3
# annotations.t: the LuaLS annotations (share/lua-annotations/) and the docs
# (docs/workflow-language.md, docs/modules.md) name the same functions and
# fields: every one documented is annotated, and every one annotated in a
# class the docs describe is documented.
import glob
import os
import re
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import wftest

t = wftest.Tap()
ROOT = wftest.ROOT


def read(rel):
    with open(os.path.join(ROOT, rel), encoding="utf-8") as f:
        return f.read()


# -- the annotations: class -> names (fields and functions) -------------------
def annotated():
    classes = {}
    for path in sorted(glob.glob(os.path.join(ROOT, "share", "lua-annotations", "*.lua"))):
        current, table_of = None, {}
        with open(path, encoding="utf-8") as f:
            for line in f:
                m = re.match(r"---@class ([\w.]+)", line)
                if m:
                    current = m.group(1)
                    classes.setdefault(current, set())
                    continue
                m = re.match(r"---@field ([a-z_]\w*)\??\s", line)
                if m and current:
                    classes[current].add(m.group(1))
                    continue
                m = re.match(r"local (\w+) = \{\}", line)
                if m and current:
                    table_of[m.group(1)] = current
                    continue
                m = re.match(r"function (\w+)[.:](\w+)\(", line)
                if m and m.group(1) in table_of:
                    classes[table_of[m.group(1)]].add(m.group(2))
    return classes


# -- the docs: class -> names --------------------------------------------------
ALIASES = {"json": "wf.json", "yaml": "wf.yaml", "sql": "wf.sql", "http": "wf.http",
           "mail": "wf.mail", "conn": "wf.sql.Connection", "box": "wf.mail.Mailbox",
           "sender": "wf.mail.Sender", "ctx": "wf.Ctx"}
LANGUAGE_TABLES = {"workflow { ... }": "wf.WorkflowDef", 'step "id" { ... }': "wf.StepDef",
                   "Parameters": "wf.Param", "Retry policy": "wf.Retry", "Errors": "wf.Error"}


def sections(text, level="## "):
    """heading -> body, for headings of one level."""
    out, name = {}, None
    for line in text.splitlines():
        if line.startswith(level):
            name = line[len(level):].strip()
            out[name] = []
        elif name is not None:
            out[name].append(line)
    return {k: "\n".join(v) for k, v in out.items()}


def first_table(body):
    """The first cells of the first markdown table of body (header excluded)."""
    cells, started = [], False
    for line in body.splitlines():
        if line.startswith("|"):
            if started and not re.match(r"\|\s*-", line):
                cells.append(line.split("|")[1].strip())
            started = True
        elif started:
            break
    return cells


def documented():
    classes = {}

    def add(cls, name):
        classes.setdefault(cls, set()).add(name)

    for rel in ("docs/modules.md", "docs/workflow-language.md"):
        for code in re.findall(r"`([^`]*)`", read(rel)):
            for m in re.finditer(r"(?<![\w./])(%s)([.:])([a-z_]\w*)((?:/[a-z_]\w*)*)"
                                 % "|".join(ALIASES), code):
                add(ALIASES[m.group(1)], m.group(3))
                for extra in m.group(4).split("/")[1:]:
                    add(ALIASES[m.group(1)], extra)
    language = sections(read("docs/workflow-language.md"))
    for heading, cls in LANGUAGE_TABLES.items():
        for cell in first_table(language[heading]):
            m = re.match(r"`([a-z_]\w*)`", cell)
            if m:
                add(cls, m.group(1))
    for name in ("workflow", "step", "parallel"):
        if re.search(r"^## %s\b" % name, read("docs/workflow-language.md"), re.M):
            add("wf", name)
    modules = sections(read("docs/modules.md"), "### ")
    for cell in first_table(modules["Requests"]):
        add("wf.http.Request", re.match(r"`([a-z_]\w*)`", cell).group(1))
    yaml = sections(read("docs/modules.md"))["wf.yaml"]
    for cell in first_table(yaml.split("Options (all optional):", 1)[1]):
        add("wf.yaml.Options", re.match(r"`([a-z_]\w*)", cell).group(1))
    return classes


doc, ann = documented(), annotated()
t.ok(len(doc) >= 15 and sum(len(v) for v in doc.values()) > 120,
     "the docs name the API (%d classes, %d names)" % (len(doc), sum(len(v) for v in doc.values())))
for cls in sorted(doc):
    missing = sorted(doc[cls] - ann.get(cls, set()))
    t.is_(missing, [], "%s: every documented name is annotated" % cls)
    extra = sorted(ann.get(cls, set()) - doc[cls])
    t.is_(extra, [], "%s: every annotated name is documented" % cls)
t.done()
