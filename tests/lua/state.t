#!/usr/bin/env python3
# The state directory (docs/operations.md, "Where runs live"): a torn journal tail is
# cut off before appending; a run killed after a step began keeps its lock
# key until resumed, rolled back or `wfengine unlock`ed; one process resumes
# a run at a time; liveness is the run's lock, not a pid; state files are
# private whatever the umask and never followed through symbolic links;
# run ids and an empty --state are refused; a rollback of a crashed run
# says nothing about a step '?'.
import json, os, signal, stat, subprocess, sys, time
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import wftest

t = wftest.Tap()

WORKFLOW = r'''
local block = os.getenv("BLOCK")
return workflow {
  name = "st", lock = "k:x", on_failure = "pause",
  steps = {
    step "one" { run = function() return 1 end, compensate = function() end },
    step "two" {
      run = function(ctx)
        if block then
          local f = assert(io.open(block .. ".started", "w")); f:close()
          while not io.open(block) do ctx:sleep(0.02) end
        end
        if os.getenv("FAIL") then error("two is broken") end
        return 2
      end,
    },
  },
}
'''
wf = t.workflow(WORKFLOW)


def engine(state, *argv, env=None, stdin=subprocess.DEVNULL, umask=None):
    full = dict(os.environ)
    full.pop("WFENGINE_STATE", None)
    full.update(env or {})
    return subprocess.run([wftest.WFENGINE] + list(argv) + ["--state", state], cwd=wftest.ROOT,
                          env=full, stdin=stdin, capture_output=True, text=True, timeout=30,
                          preexec_fn=(lambda: os.umask(umask)) if umask is not None else None)


def start(state, *argv, env=None):
    full = dict(os.environ, **(env or {}))
    return subprocess.Popen([wftest.WFENGINE] + list(argv) + ["--state", state, "-q"],
                            cwd=wftest.ROOT, env=full, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)


def wait_for_file(path, proc=None):
    """Until path exists (the step wrote its marker); False if proc ended first."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if os.path.exists(path):
            return True
        if proc is not None and proc.poll() is not None:
            return False
        time.sleep(0.01)
    return False


def only_run(state):
    return sorted(os.listdir(os.path.join(state, "runs")))[-1]


def crashed_run(state, marker):
    """A run of wf killed with SIGKILL while its step two runs (after one succeeded)."""
    proc = start(state, "run", wf, env={"BLOCK": marker})
    ok = wait_for_file(marker + ".started", proc)
    proc.kill()
    proc.wait()
    return ok and only_run(state)


def mode(path):
    """Permission bits, or None when there is no such file."""
    return stat.S_IMODE(os.lstat(path).st_mode) if os.path.lexists(path) else None


# ---- item 2: a torn tail is cut off before appending ----
state = t.fresh_state()
r = engine(state, "run", wf, env={"FAIL": "1"})
t.is_(r.returncode, wftest.PAUSED, "torn tail: the run pauses (exit 5)")
run = only_run(state)
journal = os.path.join(state, "runs", run, "events.jsonl")
size = os.path.getsize(journal)
os.truncate(journal, size - 20)
r = engine(state, "resume", run, env={"FAIL": "1"})
t.is_(r.returncode, wftest.PAUSED, "torn tail: resume goes on (and pauses again)")
t.like(r.stderr, "cut off a torn last line", "torn tail: resume says it cut the fragment off")
r = engine(state, "show", run)
t.is_(r.returncode, 0, "torn tail: show still reads the journal after the resume")
t.unlike(r.stderr, "garbled", "torn tail: no garbled line")
with open(journal) as f:
    lines = f.read().splitlines()
bad = [l for l in lines if not l.startswith("{") or not l.endswith("}")]
t.is_(bad, [], "torn tail: every journal line is a whole event")
t.ok(os.path.exists(journal + ".torn") and mode(journal + ".torn") == 0o600,
     "torn tail: the fragment is kept in events.jsonl.torn (0600)")
r = engine(state, "rollback", run)
t.is_(r.returncode, wftest.COMPENSATED, "torn tail: rollback compensates the run (exit 1)")

# ---- item 3a and 11: a killed run keeps its key; unlock; rollback message ----
state = t.fresh_state()
killed = crashed_run(state, t.path("block-a"))
t.ok(killed, "kill -9: the run was killed while step two ran")
r = engine(state, "run", wf)
t.is_(r.returncode, wftest.USAGE, "kill -9: a new run of the same key is refused")
t.like(r.stderr, "held by run %s (crashed" % killed, "kill -9: the refusal names the crashed run")
t.like(r.stderr, "wfengine unlock k:x", "kill -9: and says how to release it by hand")
r = engine(state, "runs")
t.like(r.stdout, "holds lock k:x", "kill -9: runs says the crashed run holds the key")
r = engine(state, "unlock", "k:x")
t.is_(r.returncode, wftest.USAGE, "unlock without a terminal and without -y is refused")
t.like(r.stderr, "-y", "unlock: the refusal says to use -y")
r = engine(state, "run", wf)
t.is_(r.returncode, wftest.USAGE, "unlock: the refused unlock released nothing")
r = engine(state, "unlock", "k:x", "-y")
t.is_(r.returncode, 0, "unlock -y releases the key")
t.like(r.stdout, "released lock 'k:x' held by run %s (crashed)" % killed, "unlock: says what it released")
r = engine(state, "unlock", "k:x", "-y")
t.is_(r.returncode, wftest.USAGE, "unlock of a free key: nothing to release")
r = engine(state, "run", wf)
t.is_(r.returncode, 0, "unlock: a new run of the key succeeds")
r = engine(state, "rollback", killed)
t.is_(r.returncode, wftest.COMPENSATED, "rollback of the crashed run compensates it")
t.unlike(r.stderr, "'?'", "rollback of a crashed run names no step '?'")
t.unlike(r.stderr, "nil", "rollback of a crashed run prints no nil")
t.like(r.stderr, "every completed step was compensated", "rollback of a crashed run says what it did")

# a crashed run that began no step gives its key back
state = t.fresh_state()
ghost = "20200101T000000.000Z-0001"
os.makedirs(os.path.join(state, "runs", ghost))
os.makedirs(os.path.join(state, "locks"))
with open(os.path.join(state, "runs", ghost, "events.jsonl"), "w") as f:
    f.write(json.dumps({"seq": 1, "type": "run_started", "run_id": ghost, "workflow": "st",
                        "mode": "run", "lock": "k:x", "pid": os.getpid(), "steps": []}) + "\n")
with open(os.path.join(state, "locks", "k%3Ax.json"), "w") as f:
    f.write(json.dumps({"run_id": ghost, "key": "k:x", "status": "running"}))
r = engine(state, "run", wf)
t.is_(r.returncode, 0, "a crashed run that began no step does not keep its key")

# ---- item 3c: liveness is the run lock, not a pid that may be reused ----
r = engine(state, "show", ghost)
t.like(r.stdout, "crashed", "a run whose journaled pid is alive but unrelated shows as crashed")
r = engine(state, "runs")
t.ok(any(ghost in l and "crashed" in l for l in r.stdout.splitlines()),
     "runs lists it as crashed too", diag=r.stdout.splitlines())

# ---- item 3b: one process resumes a run at a time ----
state = t.fresh_state()
victim = crashed_run(state, t.path("block-b"))
fifo = t.path("config.fifo")
os.mkfifo(fifo)
first = start(state, "resume", victim, "-c", fifo)
with open(fifo, "w") as f:  # opens once the first resume reads its config: past its run lock
    second = engine(state, "resume", victim)
    f.write("a: 1\n")
first.wait(timeout=30)
t.is_(second.returncode, wftest.USAGE, "a second resume while the first runs is refused")
t.like(second.stderr, "running in another process", "and says the run is going on elsewhere")
t.is_(first.returncode, 0, "the first resume finishes the run")
with open(os.path.join(state, "runs", victim, "events.jsonl")) as f:
    resumed = [json.loads(l)["type"] for l in f].count("run_resumed")
t.is_(resumed, 1, "only one resume journaled run_resumed")

# ---- item 8: permissions, symbolic links, run ids, empty --state ----
for umask in (0o022, 0o000):
    state = t.path("fresh-%03o" % umask)
    r = engine(state, "run", wf, umask=umask)
    run = only_run(state)
    paths = {"state": state, "runs": os.path.join(state, "runs"), "locks": os.path.join(state, "locks"),
             "run dir": os.path.join(state, "runs", run),
             "journal": os.path.join(state, "runs", run, "events.jsonl"),
             "run lock": os.path.join(state, "runs", run, "run.lock"),
             "key lock": os.path.join(state, "locks", "k%3Ax.lock")}
    got = {name: "%o" % (mode(p) or 0) for name, p in paths.items()}
    want = {name: "700" if name in ("state", "runs", "locks", "run dir") else "600" for name in paths}
    t.is_(got, want, "umask %03o: state dirs 0700, files 0600" % umask)

state = t.fresh_state()
os.makedirs(os.path.join(state, "locks"))
precious = t.path("precious")
with open(precious, "w") as f:
    f.write("precious\n")
os.symlink(precious, os.path.join(state, "locks", "k%3Ax.json"))
r = engine(state, "run", wf)
t.is_(r.returncode, wftest.USAGE, "a lock note that is a symbolic link is refused")
t.like(r.stderr, "symbolic link", "and the refusal says so")
with open(precious) as f:
    t.is_(f.read(), "precious\n", "the symlink's target is not overwritten")
for name in ("k%3Ax.json", "k%3Ax.lock"):
    if os.path.lexists(os.path.join(state, "locks", name)):
        os.remove(os.path.join(state, "locks", name))
os.symlink(precious, os.path.join(state, "locks", "k%3Ax.lock"))
r = engine(state, "run", wf)
t.is_(r.returncode, wftest.USAGE, "a lock file that is a symbolic link is refused")

state = t.fresh_state()
os.makedirs(os.path.join(state, "runs"))  # so that runs/../../outside resolves
outside = os.path.join(os.path.dirname(state), "outside")
os.makedirs(outside)
with open(os.path.join(outside, "events.jsonl"), "w") as f:
    f.write(json.dumps({"seq": 1, "type": "run_started", "run_id": "x", "workflow": "st",
                        "mode": "run", "steps": []}) + "\n")
for command in ("show", "resume", "rollback"):
    r = engine(state, command, "../../outside")
    t.is_(r.returncode, wftest.USAGE, "%s ../../outside is refused" % command)
    t.like(r.stderr, "not a run id", "%s: the refusal says the id is not a run id" % command)
with open(os.path.join(outside, "events.jsonl")) as f:
    t.is_(len(f.read().splitlines()), 1, "nothing was appended outside the state")

r = subprocess.run([wftest.WFENGINE, "runs", "--state="], capture_output=True, text=True)
t.is_(r.returncode, wftest.USAGE, "--state= (empty) is refused")
t.like(r.stderr, "--state needs a directory", "and the refusal says why")
r = subprocess.run([wftest.WFENGINE, "runs"], capture_output=True, text=True,
                   env=dict(os.environ, WFENGINE_STATE=""))
t.is_(r.returncode, wftest.USAGE, "WFENGINE_STATE= (empty) is refused")
t.like(r.stderr, "WFENGINE_STATE is set but empty", "and the refusal says why")

# ---- runs --status / --workflow / --since ----
state = t.fresh_state()
three = os.path.join(wftest.WORKFLOWS, "three_steps.lua")
sel = os.path.join(wftest.WORKFLOWS, "selection.lua")
engine(state, "run", three)
engine(state, "run", three, "--fail-at", "second", "--on-failure", "pause")
engine(state, "run", sel)
def listed(*argv):
    r = engine(state, "runs", "--json", *argv)
    return r.returncode, [json.loads(line) for line in r.stdout.splitlines() if line.strip()]
rc, rows = listed("--status", "paused")
t.is_((rc, [row["status"] for row in rows]), (0, ["paused"]), "runs --status paused: only the paused run")
rc, rows = listed("--workflow", "three_steps")
t.is_(sorted(row["workflow"] for row in rows), ["three_steps", "three_steps"],
      "runs --workflow three_steps: both of its runs, not the other workflow's")
rc, rows = listed("--since", "2000-01-01")
t.is_(len(rows), 3, "runs --since an old date: every run")
rc, rows = listed("--since", "2999-01-01T00:00:00Z")
t.is_(rows, [], "runs --since a future time: none")
r = engine(state, "runs", "--since", "yesterday")
t.is_(r.returncode, wftest.USAGE, "runs --since with no date is refused")
r = engine(state, "runs", "--status", "sleeping")
t.like(r.stderr, "not a run status", "runs --status with an unknown status is refused, naming why")

t.done()
