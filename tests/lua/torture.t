#!/usr/bin/env python3
# Crash torture: kill -9 the engine at random instants (inside steps, between
# steps, while journaling, during compensation), resume, repeat. Seeded, so a
# failure can be replayed with WF_TORTURE_SEED. Checks that every run ends as
# it should, no completed step ever runs again, every step ran, and every
# journal replays cleanly (`show --json` reads it).
import json, os, random, signal, subprocess, sys, tempfile, time

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


def events_of(state, run_id):
    path = os.path.join(state, "runs", run_id, "events.jsonl")
    out = []
    with open(path) as f:
        for line in f:
            try:
                out.append(json.loads(line))
            except ValueError:
                pass  # a torn last line, which the engine ignores too
    return out


def run_id_of(state):
    try:
        runs = sorted(os.listdir(os.path.join(state, "runs")))
    except FileNotFoundError:
        return None
    return runs[-1] if runs else None


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
    state = os.path.join(tmp, "state%d" % n)
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
        run_id = run_id_of(state)
        journal = run_id and os.path.join(state, "runs", run_id, "events.jsonl")
        if journal and os.path.exists(journal) and os.path.getsize(journal) > 0:
            break
    while code not in (final,):
        if code not in (-9, 4, 3, final):
            diag("unexpected exit %s: %s" % (code, err))
            return False, kills
        kill_after = rng.uniform(0, 0.15) if kills < 6 else None
        code, err = launch(["resume", run_id, "--state", state, "-q"], env, kill_after)
        kills += code == -9
        if code == 2 and "already" in err:
            code = final  # killed after its last event: the journal check below decides
    events = events_of(state, run_id)
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
