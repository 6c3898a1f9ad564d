"""wftest.py: shared helpers for the workflow-behaviour tests (tests/lua/*.t).

A test is a python3 script that prints TAP. It runs ./wfengine (or $WFENGINE,
which the sanitizer build sets) from the repository root with its own
temporary --state directory, and asserts on the --json events, the exit
code, stderr and the journal file. Standard library only.

    import wftest
    t = wftest.Tap()
    wf = t.workflow('''return workflow { name = "x", steps = { ... } }''')
    r = t.run(wf, "--simulate")
    t.is_(r.rc, 0, "succeeds")
    t.is_(r.types(), ["run_started", ...], "events in order")
    t.done()
"""
import atexit
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

WFENGINE = os.environ.get("WFENGINE", "./wfengine")
if os.sep in WFENGINE:
    WFENGINE = os.path.abspath(WFENGINE)  # a run may have its own cwd
ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
WORKFLOWS = os.path.join(ROOT, "tests", "lua", "workflows")

# Exit codes (docs/operations.md, "What an exit code asks of you").
OK, COMPENSATED, USAGE, OWED, INTERRUPTED, PAUSED = 0, 1, 2, 3, 4, 5


class Result:
    """One finished wfengine process."""

    def __init__(self, argv, rc, stdout, stderr, seconds, state, timed_out):
        self.argv, self.rc, self.stdout, self.stderr = argv, rc, stdout, stderr
        self.seconds, self.state, self.timed_out = seconds, state, timed_out
        self.events = []
        self.garbage = []  # stdout lines that are not JSON objects
        for line in stdout.splitlines():
            if not line.strip():
                continue
            try:
                event = json.loads(line)
            except ValueError:
                self.garbage.append(line)
                continue
            if isinstance(event, dict):
                self.events.append(event)
            else:
                self.garbage.append(line)

    @property
    def first_err(self):
        """The first line of stderr ('' when empty)."""
        lines = self.stderr.splitlines()
        return lines[0] if lines else ""

    def types(self, *only):
        """Event types in order; with arguments, only those types."""
        return [e["type"] for e in self.events if not only or e["type"] in only]

    def of(self, kind, step=None):
        """Events of one type (and one step)."""
        return [e for e in self.events
                if e["type"] == kind and (step is None or e.get("step") == step)]

    def one(self, kind, step=None):
        found = self.of(kind, step)
        return found[0] if len(found) == 1 else None

    def trail(self, *kinds):
        """'type:step' (or 'type:step:attempt' for attempts) for the given types."""
        out = []
        for e in self.events:
            if kinds and e["type"] not in kinds:
                continue
            item = e["type"]
            if "step" in e and e["step"] is not None:
                item += ":" + e["step"]
            if e["type"] in ("step_started", "step_failed", "step_succeeded",
                             "compensation_started", "compensation_failed",
                             "compensation_succeeded") and "attempt" in e:
                item += ":%d" % e["attempt"]
            out.append(item)
        return out

    def logs(self):
        return [e.get("message") for e in self.of("log")]

    def run_dirs(self):
        runs = os.path.join(self.state, "runs")
        return sorted(os.listdir(runs)) if os.path.isdir(runs) else []

    def journal_lines(self):
        """The raw lines of the (single) run's events.jsonl, or None."""
        dirs = self.run_dirs()
        if len(dirs) != 1:
            return None
        path = os.path.join(self.state, "runs", dirs[0], "events.jsonl")
        if not os.path.exists(path):
            return None
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read().splitlines()

    def journal_text(self):
        lines = self.journal_lines()
        return "\n".join(lines) if lines is not None else ""

    def describe(self):
        """Enough to diagnose a failure, as TAP comments."""
        out = ["argv: %s" % " ".join(self.argv), "rc: %r (%.2fs)%s" % (
            self.rc, self.seconds, " TIMED OUT" if self.timed_out else "")]
        out += ["stderr: " + l for l in self.stderr.splitlines()[:8]]
        out += ["event: " + json.dumps(e, sort_keys=True)[:300] for e in self.events[:40]]
        out += ["stdout: " + l for l in self.garbage[:8]]
        return out


def _detail(value):
    """Lines to show under a failed test: a run's description, a list, or any value."""
    if value is None:
        return []
    if hasattr(value, "describe"):
        return list(value.describe())
    if isinstance(value, (list, tuple)):
        return [str(v) for v in value]
    return str(value).splitlines() or [repr(value)]


class Tap:
    """TAP output plus a private temporary directory for the test."""

    def __init__(self):
        self.count = 0
        self.failed = 0
        self.dir = tempfile.mkdtemp(prefix="wftest-")
        atexit.register(shutil.rmtree, self.dir, True)
        self._n = 0

    # ---- TAP ----

    # A TODO is only ever given by keyword: a third (fourth) positional
    # argument is detail shown on failure. (It used to be `todo`, which made
    # `t.ok(cond, name, detail)` a failure that could never fail.)
    def ok(self, cond, name, diag=None, *, todo=None):
        self.count += 1
        cond = bool(cond)
        if not cond and not todo:
            self.failed += 1
        line = "%sok %d - %s" % ("" if cond else "not ", self.count, name.replace("#", "\\#"))
        if todo:
            line += " # TODO " + todo
        print(line, flush=True)
        if not cond:
            for d in _detail(diag() if callable(diag) else diag):
                self.diag(d)
        return cond

    def is_(self, got, want, name, result=None, *, todo=None):
        same = got == want and type(got) == type(want)
        diag = ["got:  %r" % (got,), "want: %r" % (want,)] + _detail(result)
        return self.ok(same, name, todo=todo, diag=diag)

    def like(self, got, needle, name, result=None, *, todo=None):
        """got (a string) contains needle."""
        good = isinstance(got, str) and needle in got
        diag = ["got:  %r" % (got,), "want something containing %r" % (needle,)] + _detail(result)
        return self.ok(good, name, todo=todo, diag=diag)

    def unlike(self, got, needle, name, result=None, *, todo=None):
        good = isinstance(got, str) and needle not in got
        diag = ["%r should not contain %r" % (got[:500] if isinstance(got, str) else got, needle)] + _detail(result)
        return self.ok(good, name, todo=todo, diag=diag)

    def skip(self, reason, count=1):
        for _ in range(count):
            self.count += 1
            print("ok %d # SKIP %s" % (self.count, reason), flush=True)

    def diag(self, text):
        for line in str(text).splitlines() or [""]:
            print("# " + line, flush=True)

    def done(self):
        print("1..%d" % self.count, flush=True)
        sys.exit(1 if self.failed else 0)

    def until(self, predicate, what, timeout=60, poll=0.05):
        """predicate()'s first true value, polled until timeout seconds
        (None then, with a diagnostic naming what was awaited)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            time.sleep(poll)
        self.diag("timed out waiting for " + what)
        return None

    # ---- files and runs ----

    def path(self, name):
        return os.path.join(self.dir, name)

    def write(self, name, text):
        """Writes text to the file name (directories made) below the test's
        directory and returns its path."""
        path = self.path(name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        return path

    def workflow(self, text, name=None):
        """Writes a workflow to a temporary .lua file and returns its path."""
        if name is None:
            self._n += 1
            name = "wf%d.lua" % self._n
        return self.write(name, text)

    def fresh_state(self):
        self._n += 1
        path = self.path("state%d" % self._n)
        os.makedirs(path)
        return path

    def run(self, workflow, *options, command="run", json_events=True, state=None, env=None,
            timeout=30, stdin=None, input=None, cwd=ROOT):
        """Runs `wfengine COMMAND WORKFLOW OPTIONS... --json --state DIR`.

        command=None leaves out the command word (the `wfengine X.lua` form);
        state=False leaves out --state (for check and plan); cwd is where it
        runs (the repository root by default).
        """
        argv = [WFENGINE]
        if command:
            argv.append(command)
        if workflow is not None:
            argv.append(workflow)
        argv += list(options)
        if state is None:
            state = self.fresh_state()
        if state is not False:
            argv += ["--state", state]
        if json_events and command in (None, "run"):
            argv.append("--json")
        full_env = dict(os.environ)
        full_env.pop("WFENGINE_STATE", None)
        full_env.update(env or {})
        started = time.monotonic()
        timed_out = False
        proc = subprocess.Popen(argv, cwd=cwd, env=full_env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE,
                                stdin=subprocess.PIPE if input is not None else (
                                    stdin if stdin is not None else subprocess.DEVNULL),
                                start_new_session=True)
        try:
            out, err = proc.communicate(input=input.encode() if input is not None else None,
                                        timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            os.killpg(proc.pid, signal.SIGKILL)
            out, err = proc.communicate()
        seconds = time.monotonic() - started
        return Result(argv, None if timed_out else proc.returncode,
                      out.decode("utf-8", "replace"), err.decode("utf-8", "replace"), seconds,
                      state if state is not False else None, timed_out)

    def check(self, workflow, *options, **kwargs):
        return self.run(workflow, *options, command="check", state=False, **kwargs)

    def plan(self, workflow, *options):
        return self.run(workflow, *options, command="plan", state=False)


def lua_string(text):
    """A Lua long-bracket-free string literal for text."""
    return json.dumps(text)
