#!/usr/bin/env python3
# Crash torture: kill -9 the engine at random instants (inside steps, between
# steps, while journaling, during compensation), resume, repeat. Seeded, so a
# failure can be replayed with WF_TORTURE_SEED. Checks that every run ends as
# it should, no completed step ever runs again, every step ran, and every
# journal replays cleanly (`show --json` reads it).
# The state is files, or PostgreSQL under WF_TEST_STATE=postgres
# (tests/state/torture_pg.t; a killed run's lease must run out before the
# resume, so fewer runs there).
import json, os, random, signal, subprocess, sys, tempfile, time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import state_backend

WFENGINE = os.environ.get("WFENGINE", "./wfengine")
SEED = int(os.environ.get("WF_TORTURE_SEED", "20261126"))
FORWARD = int(os.environ.get("WF_TORTURE_RUNS", "50"))
UNWIND = int(os.environ.get("WF_TORTURE_UNWIND_RUNS", "20"))
STEPS = 20
rng = random.Random(SEED)
count = 0
failed = 0


def ok(cond, name):
    global count, failed
    count += 1
    if not cond:
        failed += 1
    print(("ok" if cond else "not ok") + " %d - %s" % (count, name), flush=True)
    return cond


def diag(text):
    for line in str(text).splitlines():
        print("# " + line, flush=True)


WORKFLOW = r'''
local marks = os.getenv("TORTURE_MARKS")
local function mark(what, ctx)
  local f = assert(io.open(marks, "a"))
  f:write(what, " ", ctx.step, "\n")
  f:close()
end
local steps = {}
for i = 1, %d do
  steps[#steps + 1] = step(string.format("s%%02d", i)) {
    run = function(ctx)
      mark("start", ctx)
      ctx:sleep(tonumber(os.getenv("TORTURE_SLEEP")) * (i %% 3))
      ctx.state[ctx.step] = ctx.attempt
      if os.getenv("TORTURE_FAIL_LAST") and i == %d then error("last step fails") end
      mark("done", ctx)
      return i
    end,
    compensate = function(ctx, result)
      mark("undo", ctx)
      ctx:sleep(tonumber(os.getenv("TORTURE_SLEEP")))
      assert(result == i, "compensate got the wrong result")
      mark("undone", ctx)
    end,
  }
end
return workflow { name = "torture", steps = steps }
''' % (STEPS, STEPS)


def launch(args, env, kill_after):
    proc = subprocess.Popen([WFENGINE] + args, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    if kill_after is not None:
        time.sleep(kill_after)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
    _, err = proc.communicate(timeout=60)
    return proc.returncode, err.decode(errors="replace")


def torture(tmp, n, unwind):
    backend = state_backend.open_state(os.path.join(tmp, "state%d" % n))
    state = backend.state
    before = backend.runs()
    marks = os.path.join(tmp, "marks%d" % n)
    env = dict(os.environ, TORTURE_MARKS=marks, TORTURE_SLEEP="0.004")
    if unwind:
        env["TORTURE_FAIL_LAST"] = "1"
    kills = 0
    final = 1 if unwind else 0
    while True:
        # Killed before its first event, a run does not exist yet: start again.
        code, err = launch(["run", wf_path, "--state", state, "-q"], env, rng.uniform(0, 0.25))
        kills += code == -9
        new = backend.runs() - before
        run_id = max(new) if new else None
        if run_id and backend.events(run_id):
            break
    while code not in (final,):
        if code not in (-9, 4, 3, final):
            diag("unexpected exit %s: %s" % (code, err))
            return False, kills
        kill_after = rng.uniform(0, 0.15) if kills < 6 else None
        backend.wait_released(run_id)
        code, err = launch(["resume", run_id, "--state", state, "-q"], env, kill_after)
        kills += code == -9
        if code == 2 and "already" in err:
            code = final  # killed after its last event: the journal check below decides
    events = backend.events(run_id)
    marks_seen = open(marks).read().split("\n") if os.path.exists(marks) else []
    problems = []
    for i in range(1, STEPS + 1):
        sid = "s%02d" % i
        evs = [e for e in events if e.get("step") == sid]
        succeeded = [k for k, e in enumerate(evs) if e["type"] == "step_succeeded"]
        started_after = [e for e in evs[(succeeded[0] if succeeded else len(evs)):]
                         if e["type"] == "step_started"]
        starts = marks_seen.count("start " + sid)
        if not unwind or i < STEPS:
            if len(succeeded) != 1:
                problems.append("%s succeeded %d times" % (sid, len(succeeded)))
        if started_after:
            problems.append("%s started again after it completed" % sid)
        if starts < 1:
            problems.append("%s never ran" % sid)
        if starts > len([e for e in evs if e["type"] == "step_started"]):
            problems.append("%s ran without a journaled start" % sid)
        if unwind and i < STEPS:
            done = [k for k, e in enumerate(evs) if e["type"] == "compensation_succeeded"]
            if len(done) != 1:
                problems.append("%s compensated %d times" % (sid, len(done)))
            elif any(e["type"] == "compensation_started" for e in evs[done[0]:]):
                problems.append("%s compensation started again after it succeeded" % sid)
    last = events[-1]["type"] if events else None
    want = "run_compensated" if unwind else "run_succeeded"
    if last != want:
        problems.append("journal ends with %s, not %s" % (last, want))
    show = subprocess.run([WFENGINE, "show", run_id, "--state", state, "--json"],
                          capture_output=True, text=True)
    try:
        shown = json.loads(show.stdout)
        if shown["status"] != ("compensated" if unwind else "succeeded"):
            problems.append("show says %s" % shown["status"])
    except (ValueError, KeyError) as e:
        problems.append("show --json unreadable: %s %s" % (e, show.stderr))
    for p in problems:
        diag(p)
    return not problems, kills


with tempfile.TemporaryDirectory() as tmp:
    wf_path = os.path.join(tmp, "torture.lua")
    with open(wf_path, "w") as f:
        f.write(WORKFLOW)
    diag("seed %d" % SEED)
    total_kills = 0
    for n in range(FORWARD):
        good, kills = torture(tmp, n, False)
        total_kills += kills
        ok(good, "forward run %d survives %d kills and ends succeeded" % (n, kills))
    for n in range(UNWIND):
        good, kills = torture(tmp, FORWARD + n, True)
        total_kills += kills
        ok(good, "compensating run %d survives %d kills and ends compensated" % (n, kills))
    diag("%d kill -9 in all" % total_kills)
print("1..%d" % count)
sys.exit(1 if failed else 0)
