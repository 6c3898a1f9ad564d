#!/usr/bin/env python3
# torture_clone.t: kill -9 of the engine at random instants of clone_sandbox.lua,
# then `wfengine resume RUN` (docs/reliability.md, "Crash torture"). Seeded.
#
# First a clean clone from the seeded lab gives the reference final state
# (faultlab.Lab.outcome: sandbox checksum, /_state, mailboxes, modulo times and
# generated ids). Then each iteration resets the lab and picks a scenario:
#   anywhere     SIGKILL at a uniformly random instant of the clone
#   mid-copy     SIGKILL at a random instant inside step 8 (copy_database)
#   late         SIGKILL at a random instant from notify_apps on (exactly-once)
#   compensating --fail-at a random step after the copy, SIGKILL 0-100 ms into
#                the 1st..4th compensation to start
# and with probability 1/3 kills the first resume again (a crash while
# recovering from a crash), then resumes until the run ends. Checks:
#   the last resume exits 0 (1 for `compensating`: the undo finishes);
#   the final state equals the clean run's (for `compensating`: the state
#   before the run, as in faults.t);
#   every authorized app got exactly one BackupRestored (none when
#   compensating before notify_apps), counted in the emulator's request log
#   as requests that acted (replays with the same Idempotency-Key are fine);
#   SuperID registration PUT acted once (compensating: at most once, and
#   undone as often).
# WF_TEST_FULL=1: 24 iterations; otherwise 3. WF_TORTURE_SEED (default: the
# date), WF_TORTURE_ITERATIONS and WF_TORTURE_SCENARIO (one of the four) override. Own lab on ports 26720-26723.
import json
import os
import random
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import faultlab  # noqa: E402

t, lab = faultlab.start("torture", 26720)

seed = faultlab.seed_from("WF_TORTURE_SEED", faultlab.date_seed())
iterations = int(os.environ.get("WF_TORTURE_ITERATIONS") or (24 if faultlab.FULL else 3))
rng = random.Random(seed)
t.diag("seed %d (WF_TORTURE_SEED=%d to repeat), %d iterations" % (seed, seed, iterations))
APPS = ("a1", "a2", "a3", "a4")


def acted(log, method, pattern, undo=False):
    """Requests of the emulator's log that acted: 2xx and not an idempotent replay; those
    of the compensations (":undo:" in the Idempotency-Key) when undo, else the others."""
    import fnmatch
    return [e for e in log if e["method"] == method and fnmatch.fnmatch(e["path"], pattern)
            and 200 <= int(e.get("status") or 0) < 300 and not e.get("replayed") and not e.get("fault")
            and (":undo:" in (e.get("idempotency_key") or "")) == undo]


faultlab.up_or_finish(t, lab)

figures = {"iterations": 0, "kills": 0, "resumes": 0, "same": 0, "scenarios": {}}
try:
    steps = lab.steps()
    lab.reset()
    clean = lab.clone()
    t.ok(clean.rc == 0, "a clean clone (exit %s, %.0fs): the reference" % (clean.rc, clean.seconds), clean.tail())
    reference = lab.outcome()
    duration = clean.seconds
    after_copy = steps[steps.index("copy_database") + 1:steps.index("notify_apps")]

    for i in range(1, iterations + 1):
        scenario = rng.choice(["anywhere", "anywhere", "mid-copy", "late", "compensating"])
        if os.environ.get("WF_TORTURE_SCENARIO"):
            scenario = os.environ["WF_TORTURE_SCENARIO"]
        figures["scenarios"][scenario] = figures["scenarios"].get(scenario, 0) + 1
        figures["iterations"] += 1
        lab.reset()
        before = lab.snapshot()
        extra = []
        if scenario == "anywhere":
            at = rng.uniform(0.2, duration * 0.95)
            kill = (lambda at: lambda e, s: max(0.0, at - s))(at)
        elif scenario == "mid-copy":
            d = rng.uniform(0.0, 1.5)
            kill = (lambda d: lambda e, s: d if e.get("type") == "step_started"
                    and e.get("step") == "copy_database" else None)(d)
        elif scenario == "late":
            d = rng.uniform(0.0, 1.5)
            kill = (lambda d: lambda e, s: d if e.get("type") == "step_started"
                    and e.get("step") == "notify_apps" else None)(d)
        else:
            target = rng.choice(after_copy)
            extra = ["--fail-at", target]
            # the k-th compensation to start, and a moment inside it (they take 10-200 ms)
            k, d = rng.randint(1, 4), rng.uniform(0.0, 0.1)
            seen = []

            def kill(e, s, k=k, d=d, seen=seen):
                if e.get("type") == "compensation_started":
                    seen.append(e)
                    return d if len(seen) == k else None
                return None
        label = "#%d %s%s" % (i, scenario, " (--fail-at %s)" % extra[1] if extra else "")
        r = lab.clone(*extra, kill=kill, timeout=300)
        run_id = r.run_id
        kills = 1 if r.killed else 0
        t.diag("%s: first run %s, exit %s after %.1fs, run %s"
               % (label, "killed " + r.killed if r.killed else "not killed (ended first)", r.rc, r.seconds, run_id))
        last = r
        attempts = 0
        known = None
        while last.killed and attempts < 4 and run_id:
            attempts += 1
            again = attempts == 1 and rng.random() < 1 / 3.0
            kill2 = None
            if again:
                at2 = rng.uniform(0.1, 4.0)
                kill2 = (lambda at2: lambda e, s: max(0.0, at2 - s))(at2)
            last = lab.resume(run_id, kill=kill2, timeout=300)
            figures["resumes"] += 1
            for e in last.events:
                if e.get("type") == "step_failed" and "idempotency_key_reused" in json.dumps(e.get("error")):
                    # Fixed (step 22 sends the plan holders noted by step 21): a failure now.
                    t.diag("%s re-ran after a crash with a different body under the same "
                           "Idempotency-Key (422)" % e.get("step"))
                if e.get("type") in ("step_failed", "compensation_failed", "run_compensated"):
                    t.diag("%s: resume %d: %s %s %s" % (label, attempts, e.get("type"), e.get("step") or "",
                                                       json.dumps(e.get("error"))[:300]))
            if last.killed:
                kills += 1
                t.diag("%s: resume killed %s" % (label, last.killed))
        figures["kills"] += kills
        want = 1 if scenario == "compensating" else 0
        t.ok(last.rc == want and not last.killed, "%s: %d kill(s), the last run exits %d (got %s)"
             % (label, kills, want, last.rc), last.tail(), todo=known)
        log = lab.http("GET", "/_log", auth=False)
        log = log.get("log", log.get("requests", [])) if isinstance(log, dict) else log
        notified = {a: len(acted(log, "POST", "/apps/%s/webhook" % a)) for a in APPS}
        registered = len(acted(log, "PUT", "/superid/customers/" + faultlab.TARGET))
        unregistered = len(acted(log, "PUT", "/superid/customers/" + faultlab.TARGET, undo=True)) + \
            len(acted(log, "DELETE", "/superid/customers/" + faultlab.TARGET, undo=True))
        if scenario == "compensating":
            after = lab.snapshot()
            diffs = lab.differences(before, after)
            same = t.ok(not diffs, "%s: everything as before the run" % label,
                        diffs[:20] + ["first run:", r.tail(15), "last run:", last.tail(40)])
            t.ok(notified == dict.fromkeys(APPS, 0), "%s: no app notified (%s)" % (label, notified))
            t.ok(registered <= 1 and unregistered == registered, "%s: SuperID registration acted at most once, "
                 "and its undo as often (%d, %d)" % (label, registered, unregistered))
        else:
            outcome = lab.outcome()
            diffs = lab.differences(reference, outcome)
            same = t.ok(not diffs, "%s: the same final state as the clean run" % label,
                        diffs[:20] + ["first run:", r.tail(15), "last run:", last.tail(40)], todo=known)
            t.ok(notified == dict.fromkeys(APPS, 1), "%s: every app notified exactly once (%s)" % (label, notified),
                 todo=known)
            t.ok(registered == 1, "%s: SuperID registration acted once (%d)" % (label, registered), todo=known)
        if same:
            figures["same"] += 1
finally:
    lab.down()

t.diag("figures: %d iterations (%s), %d kill -9, %d resumes, %d ended in the expected state"
       % (figures["iterations"], ", ".join("%s %d" % kv for kv in sorted(figures["scenarios"].items())),
          figures["kills"], figures["resumes"], figures["same"]))
t.done()
