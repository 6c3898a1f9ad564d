#!/usr/bin/env python3
# man.t: the man pages (man/) say what the binary does: wfengine(1) lists
# every command and option `wfengine --help` lists, the exit codes and every
# environment variable the engine reads; wfengine-workflow(5) names every
# field the language accepts (engine/lua/dsl.lua); groff reads both without
# a warning.
import glob
import os
import re
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import wftest

t = wftest.Tap()
ROOT = wftest.ROOT


def page(name):
    """The roff source as plain text: \\- is -, font escapes are gone."""
    with open(os.path.join(ROOT, "man", name), encoding="utf-8") as f:
        text = f.read()
    text = re.sub(r"\\f[BIRP]", "", text).replace("\\-", "-").replace("\\(dq", '"')
    return text


def section(text, name):
    m = re.search(r"^\.SH %s\n(.*?)(?=^\.SH |\Z)" % re.escape(name), text, re.M | re.S)
    return m.group(1) if m else ""


usage = subprocess.run([wftest.WFENGINE, "--help"], capture_output=True, text=True).stdout
man1 = page("wfengine.1")
options = sorted(set(re.findall(r"(?<![\w-])(--[a-z][a-z-]*|-[a-z])(?![\w-])", usage)))
commands = sorted(set(re.findall(r"^\s*(?:usage: )?wfengine ([a-z][a-z-]*)", usage, re.M)))
t.ok(len(options) >= 20 and len(commands) >= 9,
     "--help lists options and commands (%d, %d)" % (len(options), len(commands)))
listed = section(man1, "OPTIONS")
for option in options:
    t.ok(re.search(r"(?<![\w-])%s(?![\w-])" % re.escape(option), listed),
         "wfengine(1) OPTIONS lists %s" % option)
for command in commands:
    t.ok(re.search(r"^\.BI? %s\b" % command, section(man1, "COMMANDS"), re.M),
         "wfengine(1) COMMANDS lists %s" % command)
    t.ok(re.search(r"^\.B wfengine %s\b" % command, section(man1, "SYNOPSIS"), re.M),
         "wfengine(1) SYNOPSIS shows %s" % command)
codes = re.findall(r"^\.B (\d)$", section(man1, "EXIT STATUS"), re.M)
t.is_(codes, ["0", "1", "2", "3", "4", "5"], "wfengine(1) EXIT STATUS: every exit code")

# every environment variable the engine reads
sources = glob.glob(os.path.join(ROOT, "engine", "*.c")) + glob.glob(
    os.path.join(ROOT, "engine", "lua", "*.lua")) + glob.glob(os.path.join(ROOT, "bindings", "*"))
variables = set()
for path in sources:
    with open(path, encoding="utf-8") as f:
        variables |= set(re.findall(r"getenv\(\s*\"([A-Z_]+)\"", f.read()))
t.ok("WFENGINE_STATE" in variables, "found the environment variables the engine reads")
environment = section(man1, "ENVIRONMENT")
for name in sorted(variables - {"TERM"}):
    t.ok(name in environment, "wfengine(1) ENVIRONMENT names %s" % name)

# wfengine-workflow(5): every field of the language
man5 = page("wfengine-workflow.5")
with open(os.path.join(ROOT, "engine", "lua", "dsl.lua"), encoding="utf-8") as f:
    dsl = f.read()
for table in ("STEP_FIELDS", "WORKFLOW_FIELDS", "PARAM_FIELDS", "RETRY_FIELDS"):
    body = re.search(r"local %s = \{(.*?)\n\}" % table, dsl, re.S).group(1)
    fields = re.findall(r"([a-z_]+) = ", body)
    missing = [f for f in fields if not re.search(r"^\.B %s$" % f, man5, re.M)]
    t.is_(missing, [], "wfengine-workflow(5) names every field of %s (%d)" % (table, len(fields)))

if shutil.which("groff"):
    for name in ("wfengine.1", "wfengine-workflow.5"):
        r = subprocess.run(["groff", "-man", "-Tutf8", "-ww", "-z", os.path.join(ROOT, "man", name)],
                           capture_output=True, text=True)
        t.is_((r.returncode, r.stderr), (0, ""), "groff reads %s without a warning" % name)
else:
    t.skip("groff is not installed", 2)
t.done()
