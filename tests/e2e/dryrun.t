#!/usr/bin/env python3
# dryrun.t: a dry-run tells the truth (docs/clone-sandbox.md, "Dry-run").
# On one lab (ports 26740-26743, SCALE 0.02): the clone's dry-run changes
# nothing, then the real run; every step's dry-run counts equal the real
# run's: each ctx:tally (scheduled tasks, rewritten values, routes removed,
# folders held, apps notified, ...) and the results that list what changed
# (task ids, values per column, routes, folders, apps, logins).
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import faultlab  # noqa: E402

os.chdir(faultlab.ROOT)
t = faultlab.Tap()
lab = faultlab.Lab("dryrun", 26740)
why = lab.skip_reason()
if why:
    print("1..0 # SKIP " + why)
    sys.exit(0)

rc, out = lab.up()
if not t.ok(rc == 0, "lab up on ports %d-%d" % (lab.src, lab.emu), out):
    lab.down()
    t.done()


def tallies(r):
    """{step: [(what, verb, n), ...]} from the ctx:tally log lines."""
    out = {}
    for e in r.events:
        if e.get("type") == "log" and e.get("tally"):
            k = e["tally"]
            out.setdefault(e["step"], []).append((k["what"], k["verb"], k["n"]))
    return out


def results(r):
    return {e["step"]: e.get("result") or {} for e in r.events if e.get("type") == "step_succeeded"}


def compared(res):
    """What each step's result says it changed, comparable between a dry-run and a run."""
    def keys(v):
        return sorted(v.keys()) if isinstance(v, dict) else v
    return {
        "wait_customer_task": bool(res["wait_customer_task"].get("task") or res["wait_customer_task"].get("would_wait")),
        "remove_mail_routes": sorted(res["remove_mail_routes"]["ids"]),
        "disable_scheduled_tasks": sorted(res["disable_scheduled_tasks"]["ids"]),
        "fix_system_users": (sorted(res["fix_system_users"]["inserted"]), len(res["fix_system_users"]["unlinked"])),
        "rewrite_email_addresses": (res["rewrite_email_addresses"]["values"], res["rewrite_email_addresses"]["changed"]),
        "provision_mail_service": sorted(res["provision_mail_service"]["held_folders"]),
        "create_sql_login": (res["create_sql_login"]["role"], res["create_sql_login"]["created"]),
        "grant_app_login": res["grant_app_login"]["role"],
        "grant_query_login": (res["grant_query_login"]["role"], res["grant_query_login"]["created"]),
        "create_partner_system_users": (len(res["create_partner_system_users"]["authorizations"]),
                                        sorted(res["create_partner_system_users"]["system_users"])),
        "notify_apps": keys(res["notify_apps"]["notified"]),
        "change_serial_number": res["change_serial_number"]["previous"],
        "wait_iis_operations": len(res["wait_iis_operations"]["deleted_held_folders"]),
    }


lab.reset()
before = lab.snapshot()
dry = lab.clone("--dry-run")
t.ok(dry.rc == 0, "the clone's dry-run succeeds", dry.tail())
after = lab.snapshot()
t.ok(lab.differences(before, after) == [], "the dry-run changed nothing", lab.differences(before, after))
real = lab.clone()
t.ok(real.rc == 0, "the real run succeeds", real.tail())

dt, rt = tallies(dry), tallies(real)
for step in lab.steps():
    if step in dt or step in rt:
        t.ok(dt.get(step) == rt.get(step), "%s: the dry-run's counts are the run's %s" % (step, rt.get(step)),
             "dry-run %s, run %s" % (dt.get(step), rt.get(step)))
for need in ("disable_scheduled_tasks", "rewrite_email_addresses", "remove_mail_routes", "provision_mail_service",
             "notify_apps", "create_partner_system_users", "copy_database"):
    t.ok(any(n > 0 for _, _, n in rt.get(need, [])), "%s counts something in the lab" % need, rt.get(need))

dc, rc_ = compared(results(dry)), compared(results(real))
for step in sorted(rc_):
    t.ok(dc[step] == rc_[step], "%s: the dry-run's result lists what the run changed" % step,
         "dry-run %s\nrun     %s" % (dc[step], rc_[step]))

lines = [e.get("message", "") for e in dry.events if e.get("type") == "log" and e.get("level") == "info"]
t.ok(any(m == "would wait for the maintenance task that step 1 would start" for m in lines),
     "step 2 says it would wait for the task step 1 would start", "\n".join(lines))
plain = [m for e, m in ((e, e.get("message", "")) for e in dry.events
                        if e.get("type") == "log" and e.get("tally")) if not m.startswith("would ")]
t.ok(plain == [], "every count of the dry-run says 'would'", plain)

lab.down()
t.done()
