#!/usr/bin/env python3
# transient.t: the clone through transient faults (docs/reliability.md, "Transient
# faults"). Each scenario resets the lab, injects faults through the
# emulator's /_faults or interrupts a real service, runs the clone and checks:
#   "survives": exit 0 and the same final state as a clean clone
#   (faultlab.Lab.outcome), every fault was hit, each app notified once;
#   "compensates": exit 1 and everything as before the run (faults.t's check).
# Scenarios (make test runs those marked *, make test-full all):
#   * http-mix     503 + Retry-After on the control plane, 429 on SuperID, a
#                  dropped connection on blob storage and on SoArc, a 503 after
#                  the webhook acted (the retry must not notify twice), one
#                  answer delayed beyond the request timeout
#     timeout      answers delayed 8 s, beyond the request timeout (3 s in this
#                  test's config) on a read and on a change
#   * pg-restart   pg_ctl restart of the sandbox cluster during step 8 (copy),
#                  while the copy waits for a source table lock the test holds
#   * dovecot      Dovecot stopped while the emulator holds step 16's request
#                  (so it is down when step 17 begins), started again when
#                  step 17 has failed once
#     exhausted    SuperID answers 503 to step 21 every time: the retries are
#                  spent, the clone compensates
#     refused      blob storage answers 400 (not retryable) to step 16
#     dovecot-down Dovecot stays down through step 17's retries: compensates
#     dovecot-late Dovecot stopped while the emulator holds step 31's first
#                  look at the IIS operations: the clone still succeeds
#                  (exit 0); deleting the held old Service folders is a
#                  warning, and they are still there, intact
# WF_TRANSIENT=a,b runs exactly those. Own lab on ports 26710-26713.
# No fault is timed from the start of a step: each is triggered by an observed
# event (a held lock, a held request, a journal event), so a busy machine
# cannot make it miss.
import os
import re
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import faultlab  # noqa: E402

t, lab = faultlab.start("transient", 26710)

QUICK = ["http-mix", "pg-restart", "dovecot"]
ALL = QUICK + ["timeout", "exhausted", "refused", "dovecot-down", "dovecot-late"]
if os.environ.get("WF_TRANSIENT"):
    chosen = os.environ["WF_TRANSIENT"].split(",")
else:
    chosen = ALL if faultlab.FULL else QUICK
t.diag("scenarios: %s%s" % (",".join(chosen), "" if faultlab.FULL else " (make test-full adds the rest)"))
T, APPS = faultlab.TARGET, ("a1", "a2", "a3", "a4")

faultlab.up_or_finish(t, lab)

# the lab's config with a 3 s request timeout on every HTTP service
with open(os.path.join(faultlab.ROOT, "tests/lab/lab.yaml")) as f:
    text = f.read()
config = os.path.join(lab.data, "lab-timeout.yaml")
with open(config, "w") as f:
    f.write(re.sub(r"(?m)^(    token: .*)$", r"\1\n    timeout: 3", text))
lab.config = config

figures = {"scenarios": 0, "faults": 0, "hits": 0, "interruptions": 0, "ok": 0}


def notified():
    log = lab.http("GET", "/_log", auth=False)["requests"]
    return {a: sum(1 for e in log if e["method"] == "POST" and e["path"] == "/apps/%s/webhook" % a
                   and 200 <= int(e.get("status") or 0) < 300 and not e.get("replayed") and not e.get("fault"))
            for a in APPS}


def retried(r):
    return sorted({e.get("step") for e in r.events if e.get("type") == "step_failed" and e.get("will_retry")})


def survives(name, faults, on_event=None, interruptions=0):
    lab.reset()
    if faults:
        lab.http("POST", "/_faults", faults, auth=False)
    r = lab.clone(on_event=on_event, timeout=600)
    hit = lab.faults() if faults else []
    figures["scenarios"] += 1
    figures["faults"] += len(faults)
    figures["hits"] += sum(f.get("hits", 0) for f in hit)
    figures["interruptions"] += interruptions
    good = t.ok(r.rc == 0, "%s: the clone succeeds through retries (exit %s, %.0fs; retried: %s)"
                % (name, r.rc, r.seconds, ",".join(retried(r))), r.tail())
    if faults:
        unhit = [f for f in hit if f.get("remaining", 0) != 0 or not f.get("hits")]
        good = t.ok(not unhit, "%s: every fault was hit (%d faults, %d hits)"
                    % (name, len(hit), sum(f.get("hits", 0) for f in hit)), unhit) and good
    diffs = lab.differences(reference, lab.outcome())
    good = t.ok(not diffs, "%s: the same final state as a clean clone" % name, diffs) and good
    n = notified()
    good = t.ok(n == dict.fromkeys(APPS, 1), "%s: every app notified exactly once (%s)" % (name, n)) and good
    if good:
        figures["ok"] += 1
    return r


def compensates(name, faults, on_event=None, interruptions=0, after_run=None):
    lab.reset()
    before = lab.snapshot()
    if faults:
        lab.http("POST", "/_faults", faults, auth=False)
    r = lab.clone(on_event=on_event, timeout=600)
    figures["scenarios"] += 1
    figures["faults"] += len(faults)
    figures["hits"] += sum(f.get("hits", 0) for f in (lab.faults() if faults else []))
    figures["interruptions"] += interruptions
    lab.http("DELETE", "/_faults", auth=False)
    if after_run:
        after_run()
    good = t.ok(r.rc == 1, "%s: the clone fails and compensates (exit %s, %.0fs; retried: %s)"
                % (name, r.rc, r.seconds, ",".join(retried(r))), r.tail())
    after = lab.snapshot()
    diffs = lab.differences(before, after)
    good = t.ok(not diffs, "%s: everything as before the run (Service folders with their messages, "
                "nothing held)" % name, diffs) and good
    if good:
        figures["ok"] += 1
    return r


def at_step(step, action, delay=0.0, kind="step_started"):
    """on_event hook: action() in a thread, delay seconds after `kind` of `step` (once)."""
    fired = []

    def hook(e):
        if not fired and e.get("type") == kind and e.get("step") == step:
            fired.append(time.time())
            threading.Timer(delay, action).start()
    hook.fired = fired
    return hook


def when_held(step, action):
    """on_event hook: once `step` has started and its request waits in the emulator's
    hold fault, action() runs, then the request goes on. Event-driven: the engine is
    provably inside that request while action() runs, however busy the machine is."""
    def act():
        lab.wait_held()
        try:
            action()
        finally:
            lab.release_held()
    return at_step(step, act)


def both(*hooks):
    def hook(e):
        for h in hooks:
            h(e)
    return hook


try:
    lab.reset()
    clean = lab.clone()
    t.ok(clean.rc == 0, "a clean clone (exit %s, %.0fs): the reference" % (clean.rc, clean.seconds), clean.tail())
    reference = lab.outcome()

    if "http-mix" in chosen:
        survives("http-mix", [
            {"method": "PUT", "path": "/tenants/%s/mode" % T, "status": 503, "retry_after": 1, "count": 2},
            {"method": "GET", "path": "/tenants/%s/tasks*" % T, "status": 503, "count": 1},
            {"method": "GET", "path": "/tenants/%s/cluster" % T, "delay": 8, "count": 1},
            {"method": "PUT", "path": "/superid/customers/%s" % T, "status": 429, "retry_after": 1, "count": 1},
            {"method": "PUT", "path": "/superid/tenants/%s/state" % T, "status": 502, "count": 1},
            {"method": "POST", "path": "/storage/%s/templates/copy" % T, "drop": True, "count": 1},
            {"method": "POST", "path": "/soarc/%s/packages/copy" % T, "drop": True, "count": 1},
            {"method": "DELETE", "path": "/tenants/%s/mail-routes" % T, "status": 503, "after": True, "count": 1},
            {"method": "POST", "path": "/apps/a2/webhook", "status": 503, "after": True, "count": 1},
            {"method": "POST", "path": "/apps/a4/webhook", "drop": True, "after": True, "count": 1},
        ])

    if "timeout" in chosen:
        survives("timeout", [
            {"method": "GET", "path": "/tenants/%s/cluster" % T, "delay": 8, "count": 1},
            {"method": "PUT", "path": "/superid/environments/*", "delay": 8, "count": 1},
            {"method": "POST", "path": "/apps/a1/webhook", "delay": 8, "count": 1},
        ])

    if "pg-restart" in chosen:
        # The cut must land inside step 8, whatever the machine's speed: a source table
        # is locked before the run, so step 8 blocks reading the source's catalog sizes
        # with its target connection open; once the copy is seen waiting for the lock,
        # the sandbox cluster restarts (cutting that connection), then the lock goes.
        lock = lab.hold_lock(lab.src, faultlab.SOURCE, "document")
        seen = []

        def cut_while_blocked():
            seen.append(lock.wait_for_waiter())
            lab.restart_sandbox_pg()
            lock.release()
        try:
            r = survives("pg-restart", [], on_event=at_step("copy_database", cut_while_blocked), interruptions=1)
        finally:
            lock.release()
        t.ok(seen == [True], "pg-restart: the copy was seen waiting for the held source lock", seen)
        cut = [e for e in r.events if e.get("type") == "step_failed"]
        t.diag("pg-restart: sandbox cluster restarted while step 8 waited; failed attempts: %s"
               % ", ".join("%s:%s (%s)" % (e.get("step"), e.get("attempt"),
                                           (e.get("error") or {}).get("message", "")[:80]) for e in cut))
        t.ok(cut and all(e.get("step") == "copy_database" for e in cut),
             "pg-restart: the cut hit the copy, which started again from an empty database", cut)

    # Dovecot goes down while step 16's request is held by the emulator, so it is
    # provably down before step 17 begins (no race with a fast step 16).
    HOLD_16 = {"method": "POST", "path": "/storage/%s/templates/copy" % T, "hold": True, "count": 1}

    if "dovecot" in chosen:
        # back up as soon as step 17 has failed once: the retry finds it
        r = survives("dovecot", [HOLD_16], on_event=both(
            when_held("clone_templates", lambda: lab.dovecot("stop")),
            at_step("provision_mail_service", lambda: lab.dovecot("start"), kind="step_failed")), interruptions=1)
        t.ok("provision_mail_service" in retried(r), "dovecot: step 17 was retried while Dovecot was down",
             retried(r))

    if "exhausted" in chosen:
        compensates("exhausted", [{"method": "PUT", "path": "/superid/tenants/%s/state" % T, "status": 503,
                                   "count": 0}])

    if "refused" in chosen:
        r = compensates("refused", [{"method": "POST", "path": "/storage/%s/templates/copy" % T, "status": 400,
                                     "count": 0}])
        t.ok("clone_templates" not in retried(r), "refused: a 400 is not retried")

    if "dovecot-down" in chosen:
        compensates("dovecot-down", [HOLD_16], on_event=when_held("clone_templates", lambda: lab.dovecot("stop")),
                    interruptions=1, after_run=lambda: lab.dovecot("start"))

    if "dovecot-late" in chosen:
        # Dovecot stops while step 31's first look at the IIS operations is held,
        # before the step reaches the held folders
        lab.reset()
        lab.http("POST", "/_faults", {"method": "GET", "path": "/tenants/%s/iis/operations" % T, "hold": True,
                                      "count": 1}, auth=False)
        stopped = threading.Event()

        def stop():
            lab.dovecot("stop")
            stopped.set()
        r = lab.clone(on_event=when_held("wait_iis_operations", stop), timeout=600)
        stopped.wait(60)  # else the stop's cleanup could remove the pid file of the restarted server
        lab.http("DELETE", "/_faults", auth=False)
        lab.dovecot("start")
        figures["scenarios"] += 1
        figures["interruptions"] += 1
        good = t.ok(r.rc == 0, "dovecot-late: the clone succeeds although Dovecot is down at step 31 (exit %s, "
                    "%.0fs)" % (r.rc, r.seconds), r.tail())
        warned = [e.get("message") for e in r.events if e.get("type") == "log" and e.get("level") == "warn"
                  and e.get("step") == "wait_iis_operations" and "Held/%s/" % T in str(e.get("message"))]
        good = t.ok(len(warned) == 1, "dovecot-late: one warning names the held folders to delete by hand",
                    r.tail()) and good
        held = [h for h in lab.held() if h.count("/") == 3]
        good = t.ok(sorted(h.rsplit("/", 1)[1] for h in held) == ["old-campaign", "support"],
                    "dovecot-late: the old Service folders are still held (%s)" % ", ".join(held), lab.held()) and good
        mail = lab.mail()
        good = t.ok(sorted(k for k in mail if k.startswith("Service/%s/" % T)) == ["Service/%s/test" % T],
                    "dovecot-late: the sandbox has its test mailbox only", mail) and good
        if good:
            figures["ok"] += 1
finally:
    lab.down()

t.diag("figures: %d scenarios, %d faults injected (%d hits), %d service interruptions, %d ended as required"
       % (figures["scenarios"], figures["faults"], figures["hits"], figures["interruptions"], figures["ok"]))
t.done()
