#!/usr/bin/env python3
# install.t: `make install DESTDIR=... PREFIX=/usr` lays out the binary (and
# wfengine-tie, which it runs its children through), the man pages, bash
# completion and the LuaLS annotations; the completion
# (completion/wfengine.bash) offers commands, options, run ids from the
# state directory and step ids from `wfengine plan --format json`.
import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import wftest

t = wftest.Tap()
ROOT = wftest.ROOT

# -- make install ---------------------------------------------------------------
dest = t.path("dest")
r = subprocess.run(["make", "-s", "-o", "all", "install", "DESTDIR=" + dest, "PREFIX=/usr"],
                   cwd=ROOT, capture_output=True, text=True)
t.is_((r.returncode, r.stderr), (0, ""), "make install DESTDIR=... PREFIX=/usr")
installed = sorted(os.path.relpath(os.path.join(d, f), dest)
                   for d, _, files in os.walk(dest) for f in files)
want = ["usr/bin/wfengine", "usr/libexec/wfengine/wfengine-tie",
        "usr/share/bash-completion/completions/wfengine",
        "usr/share/man/man1/wfengine.1", "usr/share/man/man5/wfengine-workflow.5"]
want += ["usr/share/wfengine/lua-annotations/" + f
         for f in sorted(os.listdir(os.path.join(ROOT, "share", "lua-annotations")))]
t.is_(installed, sorted(want), "the files and where they go")
binary = os.path.join(dest, "usr/bin/wfengine")
t.ok(os.access(binary, os.X_OK) and
     subprocess.run([binary, "--version"], capture_output=True).returncode == 0,
     "the installed binary runs")


# -- completion -------------------------------------------------------------------
def complete(*words, env=None):
    """COMPREPLY for a command line whose last word is being completed."""
    script = ('. "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _wfengine; '
              'printf "%s\\n" "${COMPREPLY[@]}"')
    full_env = dict(os.environ)
    full_env.update(env or {})
    r = subprocess.run(["bash", "-c", script, "bash", os.path.join(ROOT, "completion/wfengine.bash"),
                        wftest.WFENGINE] + list(words),
                       capture_output=True, text=True, cwd=t.path(""), env=full_env)
    return sorted(line for line in r.stdout.splitlines() if line)


t.is_(complete("un"), ["unlock"], "a command")
t.ok({"run", "check", "plan", "resume", "new"} <= set(complete("")), "every command for nothing")
t.is_(complete("run", "wf.lua", "--on"), ["--on-failure", "--only"], "options")
t.is_(complete("plan", "wf.lua", "--format", ""), ["dot", "json", "markdown", "text"],
      "--format values")
state = t.fresh_state()
os.makedirs(os.path.join(state, "runs", "20261201T000000.000Z-aaaa"))
os.makedirs(os.path.join(state, "runs", "20261202T000000.000Z-bbbb"))
t.is_(complete("resume", "--state", state, "2026120"),
      ["20261201T000000.000Z-aaaa", "20261202T000000.000Z-bbbb"], "run ids from --state")
t.is_(complete("show", "20261202", env={"WFENGINE_STATE": state}),
      ["20261202T000000.000Z-bbbb"], "run ids from $WFENGINE_STATE")
wf = t.workflow('''return workflow { steps = {
  step "alpha" { run = function() end },
  parallel "pair" { step "beta" { run = function() end }, step "gamma" { run = function() end } },
} }''', name="steps.lua")
t.is_(complete("run", wf, "--from", ""), ["alpha", "beta", "gamma", "pair"],
      "--from: the step and group ids of the workflow")
t.is_(complete("run", wf, "--fail-at", "g"), ["gamma"], "--fail-at")
t.is_(complete("run", wf, "--only", "alpha,b"), ["alpha,beta"], "--only: after a comma")
t.is_(complete("run", wf, "--skip", ""), ["alpha", "beta", "gamma", "pair"], "--skip")

# the commands and options of the PostgreSQL state, the workers and the console
t.ok({"submit", "worker", "state", "serve"} <= set(complete("")), "submit, worker, state, serve")
t.is_(complete("state", ""), ["import", "init"], "state: its actions")
t.is_(complete("submit", "steps"), ["steps.lua"], "submit: a workflow file")
t.is_(complete("serve", "--tls"), ["--tls-cert", "--tls-key"], "serve: its options")
t.is_(complete("runs", "--status", "p"), ["paused"], "--status values")
t.is_(complete("serve", "--workflows", "st"), [os.path.basename(state)], "--workflows: a directory")
t.is_(complete("serve", "--token-file", "steps"), ["steps.lua"], "--token-file: a file")
t.is_(complete("serve", "--tls-cert", "steps"), ["steps.lua"], "--tls-cert: a file")
t.is_(complete("worker", "--name", ""), [], "--name: nothing to offer")
t.done()
