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
# addresses in every text-bearing type (issue [10]): the dry-run counts what
# the copy stream would rewrite in them, as the run's stream does
lab.psql(lab.src, faultlab.SOURCE, """CREATE EXTENSION IF NOT EXISTS citext;
  CREATE TYPE contact_card AS (name text, mail varchar(60), cc text[]);
  ALTER TABLE person ADD COLUMN extra jsonb, ADD COLUMN cc text[], ADD COLUMN ci citext,
    ADD COLUMN card contact_card, ADD COLUMN short_mail varchar(30);
  UPDATE person SET extra = '{"contact": {"mail": "Per.Olsen@Kunde.NO"}, "x@keys.no": 1}',
    cc = '{ola@nordmann.no,x@y.com}', ci = 'CI.User@Example.COM', card = ROW('Ann', 'Ann@Comp.NO', '{t@tags.no}'),
    short_mail = 'a.very.long.name@company.no'
  WHERE id IN (SELECT id FROM person ORDER BY id LIMIT 3)""")
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

# ---- the change report and approvals ----------------------------------------------
import json  # noqa: E402
import re  # noqa: E402
import minischema  # noqa: E402

schema = json.load(open("docs/change-report.schema.json"))


def tables_ok(md):
    """Every markdown table: a header, a separator of ---, rows of as many cells."""
    bad, lines = [], md.split("\n")
    for i, line in enumerate(lines):
        if line.startswith("|") and i + 1 < len(lines) and re.match(r"^\|(-+:?\|)+$|^\|(---:?\|)+", lines[i + 1]):
            width = len(re.findall(r"(?<!\\)\|", line))
            j = i + 2
            while j < len(lines) and lines[j].startswith("|"):
                if len(re.findall(r"(?<!\\)\|", lines[j])) != width:
                    bad.append(lines[j])
                j += 1
    return bad


lab.reset()
md_path, json_path = os.path.join(lab.data, "report.md"), os.path.join(lab.data, "report.json")
r = lab.clone("--dry-run", "--report", md_path)
t.ok(r.rc == 0 and os.path.exists(md_path), "dry-run --report writes a markdown report", r.err)
md = open(md_path).read() if os.path.exists(md_path) else ""
r = lab.clone("--dry-run", "--report", json_path, "--format", "json")
rep = json.load(open(json_path)) if r.rc == 0 and os.path.exists(json_path) else {}
t.ok(minischema.errors(rep, schema) == [], "the JSON report validates against docs/change-report.schema.json",
     minischema.errors(rep, schema)[:10])
t.ok(re.search(r"^# Change report: clone_sandbox$", md, re.M) and "\n## Totals\n" in md and "\n## Steps\n" in md,
     "the markdown report has its headings", md[:500])
t.ok(len(re.findall(r"^### \d+\. ", md, re.M)) == 31, "the markdown report has a section per step")
t.ok(md.count("|---") >= 3 and tables_ok(md) == [], "the markdown report's tables are well formed", tables_ok(md))
t.ok(re.search(r"\*\*Would change:\*\* .*\d+ scheduled tasks disabled.*values rewritten.*\d+ apps notified "
               r"\(irreversible\)", md) is not None, "the totals are at the top", md[:800])
steps = {s["id"]: s for s in rep.get("steps", [])}
t.ok(any(c.startswith("execute: UPDATE scheduled_task") for c in steps.get("disable_scheduled_tasks", {}).get("sql", [])),
     "the report lists the exact SQL statements")
t.ok(len([c for c in steps.get("notify_apps", {}).get("http", []) if c.startswith("POST ")]) == 4
     and steps["notify_apps"]["irreversible"], "the report lists the exact HTTP calls, irreversible marked")
t.ok(steps.get("remove_mail_routes", {}).get("compensation") == "restore those routes.",
     "the report says what each compensation would do")

# secrets: a config whose logins would be created (CREATE ROLE with the password's verifier)
with open(os.path.join(faultlab.ROOT, "tests/lab/lab.yaml")) as f:
    text = f.read()
secret_pw = "Report-s3cret-pw"
secret_config = os.path.join(lab.data, "lab-secret.yaml")
with open(secret_config, "w") as f:
    f.write(re.sub(r"(?m)^(  password: ).*$", r"\g<1>" + secret_pw, text).replace(
        "app_suffix: _app ", "app_suffix: _report_app ").replace("query_suffix: _query ", "query_suffix: _report_query "))
lab.config, saved = secret_config, lab.config
secret_md = os.path.join(lab.data, "secret.md")
r = lab.clone("--dry-run", "--report", secret_md)
lab.config = saved
sm = open(secret_md).read() if os.path.exists(secret_md) else ""
t.ok(r.rc == 0 and "CREATE ROLE" in sm, "a dry-run that would create logins reports CREATE ROLE", r.err + sm[:300])
leaks = [s for s in (secret_pw, "lab-token", "lab-mailadmin") if s in sm]
verifiers = re.findall(r"SCRAM-SHA-256\$[^*'\s]+", sm)
t.ok(leaks == [] and verifiers == [], "the report holds no secret (password, tokens, SCRAM verifier)", leaks + verifiers)

# approved: a fresh dry-run that matches runs for real
r = lab.clone("--approved", md_path)
t.ok(r.rc == 0 and r.types("run_started", "mode") == ["dry-run", "run"],
     "run --approved: a fresh dry-run matches, then the real run", r.tail() + r.err)

# invalidated by a new scheduled task in the source
lab.reset()
r = lab.clone("--dry-run", "--report", md_path)
lab.psql(lab.src, faultlab.SOURCE, "INSERT INTO scheduled_task (name, kind, cron, enabled) SELECT name || ' (new)', kind, cron, "
         "true FROM scheduled_task ORDER BY id LIMIT 1")
r = lab.clone("--approved", md_path)
t.ok(r.rc == 2 and r.types("run_started", "mode") == ["dry-run"], "a new scheduled task: the approval is refused",
     r.err)
t.ok(re.search(r"step disable_scheduled_tasks: would disable scheduled tasks: approved (\d+), now (\d+)", r.err)
     is not None, "the refusal names the difference", r.err)
r = lab.clone("--approved", md_path, "--tolerance", "50")
t.ok(r.rc == 0 and r.types("run_started", "mode") == ["dry-run", "run"],
     "--tolerance 50: that count is within the margin, the run goes on", r.err)

# invalidated by an app added (the irreversible step: no margin)
lab.reset()
r = lab.clone("--dry-run", "--report", json_path, "--format", "json")
lab.http("POST", "/_apps", {"id": "a5", "name": "New App", "client_id": "new-app"}, auth=False)
lab.psql(lab.src, faultlab.SOURCE, "INSERT INTO app_authorization (app_id, client_id, app_name, scopes) "
         "VALUES ('a5', 'new-app', 'New App', '{}')")
r = lab.clone("--approved", json_path, "--tolerance", "50")
t.ok(r.rc == 2 and r.types("run_started", "mode") == ["dry-run"], "an app added: the approval is refused", r.err)
t.ok("step notify_apps: would notify apps: approved 4, now 5" in r.err
     and "irreversible step notify_apps: its http changes differ" in r.err, "the refusal names the app difference", r.err)

# estimates from the real runs above (this lab's state): plan --estimate and --simulate share them
import subprocess  # noqa: E402
p = subprocess.run([faultlab.WFENGINE, "plan", "clone_sandbox.lua", "--estimate", "--state", lab.state_dir],
                   capture_output=True, text=True, env=lab.env, timeout=60)
t.ok(p.returncode == 0 and re.search(r"estimated from [3-9] earlier runs", p.stdout)
     and re.search(r"^\s+8\. copy_database\s+\S+ / \S+\s+\(\d+ samples\)$", p.stdout, re.M)
     and re.search(r"^total: about \S+ \(worst \S+\)$", p.stdout, re.M),
     "plan --estimate: each step's median and worst from the earlier real runs, and the total", p.stdout + p.stderr)
p = subprocess.run([a for a in lab.clone_argv("--simulate") if a != "--json"], capture_output=True, text=True,
                   env=lab.env, timeout=60)
t.ok(p.returncode == 0 and re.search(r"^succeeded: 31 steps, \S+ of waits simulated in \d+ ms$", p.stdout, re.M)
     and re.search(r"^total: about ", p.stdout, re.M), "--simulate: virtual time, then the estimate from history",
     p.stdout[-1500:] + p.stderr)

lab.down()
t.done()
