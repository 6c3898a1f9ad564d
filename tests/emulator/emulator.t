#!/bin/sh
''''exec "$(command -v python3 || echo /usr/bin/python3)" "$0" "$@" # '''
"""emulator.t: the control-plane emulator, endpoint group by endpoint group.

Starts tests/emulator/emulator.py on a free port in 26300-26399 and checks
every endpoint group, the fault injector (status, count, Retry-After, delay,
dropped connection, after-acting), Idempotency-Key replay, /_reset, and that
every mutation can be reverted through the API to the identical /_state.
TAP on stdout; standard library only.
"""

import http.client
import json
import os
import socket
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TOKEN = "t0k3n"
count = 0
failed = 0


def ok(cond, name, detail=None):
    global count, failed
    count += 1
    if not cond:
        failed += 1
    print("%sok %d - %s" % ("" if cond else "not ", count, name))
    if not cond and detail is not None:
        for line in str(detail).splitlines()[:40]:
            print("#   " + line)
    sys.stdout.flush()
    return cond


def is_(got, want, name):
    return ok(got == want, name, "got:  %r\nwant: %r" % (got, want))


def free_port():
    for p in range(26300, 26400):
        s = socket.socket()
        try:
            s.bind(("127.0.0.1", p))
            return p
        except OSError:
            continue
        finally:
            s.close()
    return None


PORT = free_port()
if PORT is None:
    print("1..0 # SKIP no free port in 26300-26399")
    sys.exit(0)


class Resp:
    def __init__(self, status, headers, body):
        self.status, self.headers, self.raw = status, headers, body
        try:
            self.json = json.loads(body) if body else None
        except ValueError:
            self.json = None


def call(method, path, body=None, token=TOKEN, headers=None, timeout=10):
    c = http.client.HTTPConnection("127.0.0.1", PORT, timeout=timeout)
    h = dict(headers or {})
    if token:
        h["Authorization"] = "Bearer " + token
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        h["Content-Type"] = "application/json"
    try:
        c.request(method, path, body=data, headers=h)
        r = c.getresponse()
        return Resp(r.status, {k.lower(): v for k, v in r.getheaders()}, r.read())
    finally:
        c.close()


def get(path):
    return call("GET", path).json


def state():
    return call("GET", "/_state", token=None).json


def diff(a, b, path=""):
    """First few differences between two JSON values, for failure detail."""
    out = []
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b)):
            if k not in a or k not in b:
                out.append("%s/%s only in %s" % (path, k, "before" if k in a else "after"))
            else:
                out += diff(a[k], b[k], "%s/%s" % (path, k))
    elif a != b:
        out.append("%s: %r -> %r" % (path, a, b))
    return out[:10]


def reverts(name, do, undo):
    """do() must change /_state; undo(result) must restore it exactly."""
    before = state()
    res = do()
    mid = state()
    ok(mid != before, name + ": changes the state")
    undo(res)
    after = state()
    ok(after == before, name + ": reverted to the identical /_state", "\n".join(diff(before, after)))


def wait_until(fn, timeout=10):
    t0 = time.time()
    while time.time() - t0 < timeout:
        v = fn()
        if v:
            return v
        time.sleep(0.1)
    return None


proc = subprocess.Popen([sys.executable, os.path.join(HERE, "emulator.py"), "--port", str(PORT),
                         "--token", TOKEN, "--task-seconds", "1", "--iis-seconds", "0.5"],
                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
def _try_health():
    try:
        return call("GET", "/_health", token=None).status == 200
    except OSError:
        return False


try:
    if not wait_until(_try_health, 10):
        print("1..0 # SKIP emulator did not start: %s" % proc.stderr.read1(2000).decode(errors="replace")[:200])
        sys.exit(0)

    # -- auth and routing ----------------------------------------------------
    is_(call("GET", "/tenants", token=None).status, 401, "no token: 401")
    r = call("GET", "/tenants", token="wrong")
    is_(r.status, 401, "wrong token: 401")
    ok("bearer" in r.headers.get("www-authenticate", "").lower(), "401 names the Bearer scheme")
    is_(call("GET", "/nowhere").status, 404, "unknown path: 404")
    r = call("PATCH", "/tenants/sbx2001/mode", {"mode": "running"})
    is_(r.status, 405, "wrong method: 405")
    is_(call("GET", "/tenants/nope").json["error"], "not_found", "errors are JSON with an error code")
    is_(call("PUT", "/tenants/sbx2001/mode", {"mode": "dancing"}).status, 400, "invalid mode: 400")

    # -- tenants, tasks, mode ------------------------------------------------
    ts = get("/tenants")["tenants"]
    is_(sorted(t["id"] for t in ts), ["cust1001", "sbx2001"], "two seeded tenants")
    is_([t["id"] for t in get("/tenants?kind=production")["tenants"]], ["cust1001"], "cust1001 is production")
    sbx = get("/tenants/sbx2001")
    is_((sbx["kind"], sbx["source"], sbx["mode"]), ("sandbox", "cust1001", "running"), "sbx2001 is a running sandbox of cust1001")
    r = call("PUT", "/tenants/sbx2001/mode", {"mode": "offline_maintenance"})
    is_((r.status, r.json["error"]), (409, "tasks_running"), "maintenance refused while tasks run")
    ok(r.json["tasks"] and r.json["tasks"][0]["state"] == "running", "409 lists the running tasks")
    polls = []
    done = wait_until(lambda: polls.append(1) or get("/tenants/sbx2001/tasks")["active"] == 0, 10)
    ok(done and len(polls) > 1, "seeded task finishes after a real wait (%d polls)" % len(polls))
    r = call("PUT", "/tenants/sbx2001/mode", {"mode": "offline_maintenance"})
    is_((r.status, r.json["previous"], r.json["current"]), (200, "running", "offline_maintenance"), "enter offline maintenance")
    task = r.json["task"]
    is_((task["kind"], task["state"]), ("enter-maintenance", "running"), "entering maintenance starts a task")
    ok(wait_until(lambda: get("/tenants/sbx2001/tasks/" + task["id"])["state"] == "done"), "that task completes")
    is_(get("/tenants/sbx2001/mode")["mode"], "offline_maintenance", "GET mode")
    r = call("PUT", "/tenants/sbx2001/mode", {"mode": "running"})
    ops = r.json["iis_operations"]
    is_([o["kind"] for o in ops], ["update-bindings", "recycle-app-pool"], "going live queues IIS operations")
    ok(get("/tenants/sbx2001/iis/operations")["active"] == 2, "IIS operations pending")
    ok(wait_until(lambda: get("/tenants/sbx2001/iis/operations")["active"] == 0), "IIS operations complete")
    r = call("POST", "/tenants/sbx2001/tasks", {"kind": "long", "seconds": 60})
    is_((r.status, r.json["state"]), (201, "running"), "create a task")
    r = call("PUT", "/tenants/sbx2001/mode", {"mode": "offline_maintenance", "force": True})
    is_(r.status, 200, "force enters maintenance despite tasks")
    is_(len(get("/tenants/sbx2001/tasks?state=running")["tasks"]), 2, "filter tasks by state")
    r = call("POST", "/tenants/sbx2001/recycle")
    is_((r.status, r.json["task"]["kind"]), (202, "recycle"), "recycle queues a recycle task")
    is_(len(get("/clusters")["clusters"]), 4, "clusters listed")
    is_(get("/tenants/sbx2001/cluster")["generation"], "new", "sandbox on a new cluster")
    is_(call("PUT", "/tenants/sbx2001/cluster", {"cluster": "nowhere"}).status, 400, "unknown cluster: 400")
    is_(get("/tenants/cust1001/license")["serial_number"], "1001-4471-ACME", "GET license")
    is_(get("/tenants/cust1001/company")["name"], "Acme Industries AS", "GET company")

    # -- mail routes -------------------------------------------------------
    mr = get("/tenants/sbx2001/mail-routes")
    is_([x["id"] for x in mr["mail_routes"]], ["r4", "r5"], "list mail routes")
    is_(call("DELETE", "/tenants/sbx2001/mail-routes/zz").status, 404, "delete unknown route: 404")

    # -- SuperID ---------------------------------------------------------------
    is_(sorted(c["id"] for c in get("/superid/customers")["customers"]), ["cust1001", "sbx2001"], "SuperID customers")
    is_(get("/superid/customers/sbx2001")["kind"], "sandbox", "sandbox registration")
    is_(get("/superid/environments?customer=cust1001")["environments"][1]["tenant"], "sbx2001", "test environment points at the sandbox")
    is_(get("/superid/tenants/sbx2001/state")["state"], "Normal", "tenant state")
    is_(call("PUT", "/superid/tenants/sbx2001/state", {"state": "Weird"}).status, 400, "invalid SuperID state: 400")
    is_(call("POST", "/superid/environments/cust1001-test/restore").status, 409, "restore with no history: 409")
    is_(len(get("/superid/users?customer=cust1001")["users"]), 5, "SuperID users of cust1001")
    ok(any(p["sandbox"] for p in get("/superid/plans")["plans"]), "sandbox plans exist")
    is_([u["id"] for u in get("/superid/tenants/sbx2001/users")["users"]], ["u9", "u1"], "sandbox tenant users")
    is_(call("POST", "/superid/tenants/sbx2001/plans/assign", {"assignments": {"u1": ["nope"]}}).status, 400, "unknown plan: 400")

    # -- storage, SoArc, apps ------------------------------------------------
    is_(len(get("/storage/cust1001/templates")["blobs"]), 4, "templates of cust1001")
    is_(len(get("/storage/cust1001/ejpackages")["blobs"]), 3, "EjPackages of cust1001")
    is_(get("/storage/cust1001/templates/Offer.dotx")["content"], "Offer template v7 for {{company}}", "GET one blob")
    is_(call("GET", "/storage/cust1001/other").status, 404, "unknown container kind: 404")
    is_(len(get("/soarc/cust1001/packages")["packages"]), 3, "SoArc packages of cust1001")
    apps = get("/apps")["apps"]
    is_([a["id"] for a in apps], ["a1", "a2", "a3", "a4"], "partner apps")
    ok(apps[0]["webhook_url"].endswith("/apps/a1/webhook"), "apps carry their webhook URL")
    r = call("POST", "/apps/a1/webhook", {"event": "BackupRestored", "tenant": "sbx2001"})
    is_(r.status, 202, "webhook accepts a notification")
    n = get("/apps/a1/notifications")["notifications"]
    is_((len(n), n[0]["event"], n[0]["tenant"]), (1, "BackupRestored", "sbx2001"), "notification recorded")

    # -- every mutation reverts ------------------------------------------------
    call("POST", "/_reset", {"task_seconds": 0, "iis_seconds": 0}, token=None)

    def mode_cycle():
        a = call("PUT", "/tenants/sbx2001/mode", {"mode": "offline_maintenance"}).json
        b = call("PUT", "/tenants/sbx2001/mode", {"mode": "running"}).json
        return a, b

    def mode_undo(res):
        a, b = res
        call("DELETE", "/tenants/sbx2001/tasks/" + a["task"]["id"])
        for o in b["iis_operations"]:
            call("DELETE", "/tenants/sbx2001/iis/operations/" + o["id"])
    reverts("mode offline+running", mode_cycle, mode_undo)

    def put_undo(path, field):
        return lambda res: call("PUT", path, {field: res["previous"]})
    reverts("cluster", lambda: call("PUT", "/tenants/sbx2001/cluster", {"cluster": "eu-old-02"}).json,
            put_undo("/tenants/sbx2001/cluster", "cluster"))
    for field in ("company", "license"):
        reverts(field, lambda: call("PUT", "/tenants/sbx2001/" + field, {"name": "X", "serial_number": "S"}).json,
                lambda res: call("PUT", "/tenants/sbx2001/" + field, res["previous"]))
    reverts("task create", lambda: call("POST", "/tenants/cust1001/tasks", {"kind": "x"}).json,
            lambda res: call("DELETE", "/tenants/cust1001/tasks/" + res["id"]))
    reverts("recycle", lambda: call("POST", "/tenants/sbx2001/recycle").json,
            lambda res: call("DELETE", "/tenants/sbx2001/tasks/" + res["task"]["id"]))
    reverts("IIS operation", lambda: call("POST", "/tenants/sbx2001/iis/operations", {"kind": "x"}).json,
            lambda res: call("DELETE", "/tenants/sbx2001/iis/operations/" + res["id"]))
    reverts("delete one mail route / restore", lambda: call("DELETE", "/tenants/sbx2001/mail-routes/r4").json,
            lambda res: call("POST", "/tenants/sbx2001/mail-routes/restore", {"ids": [res["deleted"]["id"]]}))
    reverts("delete all mail routes / restore", lambda: call("DELETE", "/tenants/sbx2001/mail-routes").json,
            lambda res: call("POST", "/tenants/sbx2001/mail-routes/restore"))
    reverts("delete mail route / re-create from the object",
            lambda: call("DELETE", "/tenants/sbx2001/mail-routes/r5").json,
            lambda res: call("POST", "/tenants/sbx2001/mail-routes", res["deleted"]))
    reverts("create mail route / purge", lambda: call("POST", "/tenants/sbx2001/mail-routes", {"address": "a@b.c"}).json,
            lambda res: call("DELETE", "/tenants/sbx2001/mail-routes/%s?purge=1" % res["id"]))

    def reg_new():
        r = call("PUT", "/superid/customers/sbx3001", {"name": "n", "kind": "sandbox", "environment": "e"})
        ok(r.status == 201 and r.json["previous"] is None, "register a new customer: 201, no previous")
        return r.json
    reverts("SuperID register new / unregister", reg_new, lambda res: call("DELETE", "/superid/customers/sbx3001"))
    reverts("SuperID re-register / put previous",
            lambda: call("PUT", "/superid/customers/sbx2001", {"name": "new", "kind": "sandbox", "environment": "cust1001-test"}).json,
            lambda res: call("PUT", "/superid/customers/sbx2001", res["previous"]))

    def unreg_undo(res):
        call("PUT", "/superid/customers/sbx2001", res["deleted"])
        call("PUT", "/superid/tenants/sbx2001", res["tenant"])
    reverts("SuperID unregister / register again", lambda: call("DELETE", "/superid/customers/sbx2001").json, unreg_undo)
    reverts("test environment replace / restore",
            lambda: call("PUT", "/superid/environments/cust1001-test",
                         {"customer": "cust1001", "kind": "test", "tenant": "sbx2001", "source": "cust1001",
                          "cloned_at": "2025-01-01T00:00:00Z"}).json,
            lambda res: call("POST", "/superid/environments/cust1001-test/restore"))
    reverts("environment delete / put back", lambda: call("DELETE", "/superid/environments/cust1001-test").json,
            lambda res: call("PUT", "/superid/environments/cust1001-test", res["deleted"]))
    reverts("SuperID state", lambda: call("PUT", "/superid/tenants/sbx2001/state", {"state": "In migration"}).json,
            put_undo("/superid/tenants/sbx2001/state", "state"))
    reverts("plan assignment",
            lambda: call("POST", "/superid/tenants/sbx2001/plans/assign",
                         {"assignments": {"u1": ["sandbox-admin"], "u2": ["sandbox-user"], "u9": None}}).json,
            lambda res: call("POST", "/superid/tenants/sbx2001/plans/assign", {"assignments": res["previous"]}))

    def sync():
        call("POST", "/superid/tenants/sbx2001/plans/assign", {"assignments": {"u3": ["sandbox-user"]}})
        return call("POST", "/superid/tenants/sbx2001/users/sync").json
    r = None
    before = state()
    res = sync()
    is_((res["added"], res["removed"]), (["u3"], []), "sync adds users holding a plan")
    call("PUT", "/superid/tenants/sbx2001/users", {"users": res["previous"]})
    call("POST", "/superid/tenants/sbx2001/plans/assign", {"assignments": {"u3": None}})
    ok(state() == before, "user sync reverted to the identical /_state")
    reverts("user sync with explicit users",
            lambda: call("POST", "/superid/tenants/sbx2001/users/sync", {"users": ["u1", "u2"]}).json,
            lambda res: call("PUT", "/superid/tenants/sbx2001/users", {"users": res["previous"]}))

    for area, kind, key in (("storage", "templates", "blobs"), ("storage", "ejpackages", "blobs"),
                            ("soarc", "packages", "packages")):
        base = "/%s/sbx2001/%s" % (area, kind)

        def do_copy(base=base):
            r = call("POST", base + "/copy", {"from": "cust1001", "mirror": True}).json
            src = get(base.replace("sbx2001", "cust1001"))
            ok(get(base) == src, "%s copy with mirror makes the target equal the source" % base)
            return r
        reverts(base + " copy", do_copy, lambda res, base=base, key=key: call("PUT", base, {key: res["previous"]}))
        name = get(base)[key][0]["name"]
        reverts(base + " delete one", lambda base=base, name=name: call("DELETE", base + "/" + name).json,
                lambda res, base=base: call("PUT", base + "/" + res["deleted"]["name"], res["deleted"]))
        reverts(base + " put one", lambda base=base, name=name: call("PUT", base + "/" + name, {"content": "x"}).json,
                lambda res, base=base: call("PUT", base + "/" + res["previous"]["name"], res["previous"]))
    r = call("POST", "/storage/sbx2001/templates/copy", {"from": "cust1001", "names": ["Offer.dotx"], "overwrite": False})
    is_(r.json["skipped"], ["Offer.dotx"], "copy without overwrite skips existing blobs")
    call("PUT", "/storage/sbx2001/templates", {"blobs": r.json["previous"]})
    reverts("webhook notification", lambda: call("POST", "/apps/a2/webhook", {"event": "BackupRestored"}).json,
            lambda res: call("DELETE", "/apps/a2/notifications/" + res["received"]))

    # -- idempotency -----------------------------------------------------------
    k = {"Idempotency-Key": "key-1"}
    r1 = call("POST", "/tenants/cust1001/tasks", {"kind": "idem"}, headers=k)
    r2 = call("POST", "/tenants/cust1001/tasks", {"kind": "idem"}, headers=k)
    is_((r2.status, r2.json), (r1.status, r1.json), "repeated key returns the first response")
    is_(r2.headers.get("idempotent-replayed"), "true", "replay is marked")
    is_(sum(1 for t in get("/tenants/cust1001/tasks")["tasks"] if t["kind"] == "idem"), 1, "acted once")
    is_(call("POST", "/tenants/cust1001/tasks", {"kind": "other"}, headers=k).status, 422, "same key, other body: 422")
    r1 = call("DELETE", "/tenants/cust1001/mail-routes/r1", headers={"Idempotency-Key": "key-2"})
    r2 = call("DELETE", "/tenants/cust1001/mail-routes/r1", headers={"Idempotency-Key": "key-2"})
    is_((r1.status, r2.status), (200, 200), "repeated DELETE with key: 200 both times")
    r3 = call("DELETE", "/tenants/cust1001/mail-routes/r1")
    is_(r3.status, 404, "DELETE without key acts again: 404")
    r1 = call("PUT", "/superid/tenants/cust1001/state", {"state": "In migration"}, headers={"Idempotency-Key": "key-3"})
    call("PUT", "/superid/tenants/cust1001/state", {"state": "Normal"})
    r2 = call("PUT", "/superid/tenants/cust1001/state", {"state": "In migration"}, headers={"Idempotency-Key": "key-3"})
    is_((r2.json, get("/superid/tenants/cust1001/state")["state"]), (r1.json, "Normal"), "replayed PUT does not act again")

    # -- faults ------------------------------------------------------------------
    r = call("POST", "/_faults", {"method": "GET", "path": "/tenants/*/mode", "status": 503, "count": 2,
                                  "retry_after": 2}, token=None)
    is_(r.status, 201, "inject a fault")
    a, b, c = (call("GET", "/tenants/sbx2001/mode") for _ in range(3))
    is_((a.status, b.status, c.status), (503, 503, 200), "status fault hits count times, then passes")
    is_(a.headers.get("retry-after"), "2", "Retry-After header")
    is_(call("GET", "/_faults", token=None).json["faults"][0]["hits"], 2, "fault hits counted")
    call("POST", "/_faults", {"method": "PUT", "path": "/tenants/*/mode", "status": 500}, token=None)
    is_(call("GET", "/tenants/sbx2001/mode").status, 200, "fault for PUT leaves GET alone")
    is_(call("GET", "/tenants/sbx2001").status, 200, "fault pattern leaves other paths alone")
    is_(call("PUT", "/tenants/sbx2001/mode", {"mode": "running"}).status, 500, "PUT hits its fault")
    is_(call("DELETE", "/_faults", token=None).json["cleared"], 2, "DELETE /_faults clears")
    call("POST", "/_faults", {"path": "/clusters", "delay": 0.6}, token=None)
    t0 = time.time()
    r = call("GET", "/clusters")
    ok(r.status == 200 and time.time() - t0 >= 0.55, "delay fault delays, then answers")
    call("POST", "/_faults", {"path": "/clusters", "drop": True}, token=None)
    try:
        call("GET", "/clusters")
        ok(False, "dropped connection")
    except (http.client.HTTPException, OSError) as e:
        ok(True, "dropped connection (%s)" % type(e).__name__)
    # hold: the request waits until released; hits counts it while it waits
    fid = call("POST", "/_faults", {"path": "/clusters", "hold": True}, token=None).json["faults"][0]["id"]
    held = []
    th = threading.Thread(target=lambda: held.append(call("GET", "/clusters").status))
    th.start()
    for _ in range(600):
        if call("GET", "/_faults", token=None).json["faults"][0]["hits"] == 1:
            break
        time.sleep(0.05)
    ok(not held and th.is_alive(), "hold fault: the request waits (hits 1, no answer yet)")
    is_(call("POST", "/_faults/release", {"id": fid}, token=None).status, 200, "release the hold")
    th.join(60)
    is_(held, [200], "hold fault: released, the request is answered")
    call("DELETE", "/_faults", token=None)
    call("POST", "/_faults", {"path": "/apps", "status": 502, "count": 0}, token=None)
    ok(all(call("GET", "/apps").status == 502 for _ in range(4)), "count 0 hits every request")
    call("DELETE", "/_faults", token=None)
    is_(call("GET", "/apps").status, 200, "cleared")
    # Acted, then the connection dropped: the retry with the same key must
    # not act again.
    call("POST", "/_faults", {"method": "POST", "path": "/tenants/*/recycle", "drop": True, "after": True}, token=None)
    try:
        call("POST", "/tenants/sbx2001/recycle", headers={"Idempotency-Key": "rk"})
        ok(False, "after-fault drops the response")
    except (http.client.HTTPException, OSError):
        ok(True, "after-fault drops the response")
    r = call("POST", "/tenants/sbx2001/recycle", headers={"Idempotency-Key": "rk"})
    is_((r.status, r.headers.get("idempotent-replayed")), (202, "true"), "retry with the key replays")
    is_(sum(1 for t in get("/tenants/sbx2001/tasks")["tasks"] if t["kind"] == "recycle"), 1, "recycled once")
    is_(call("POST", "/_faults", {"path": "/x"}, token=None).status, 400, "fault without effect: 400")

    # -- log and reset -------------------------------------------------------
    log = call("GET", "/_log", token=None).json["requests"]
    ok(any(e["replayed"] for e in log) and any(e["fault"] for e in log), "/_log records replays and faults")

    def strip_times(s):
        for t in s["tenants"].values():
            for coll in ("tasks", "iis_operations"):
                for x in t[coll].values():
                    for f in ("created_at", "finishes_at"):
                        x.pop(f, None)
        return s
    call("POST", "/_reset", {"task_seconds": 0, "iis_seconds": 0}, token=None)
    seeded = strip_times(state())
    call("DELETE", "/tenants/cust1001/mail-routes")
    call("PUT", "/superid/tenants/cust1001/state", {"state": "Suspended"})
    call("POST", "/storage/sbx2001/templates/copy", {"from": "cust1001", "mirror": True})
    ok(strip_times(state()) != seeded, "mutations change the state")
    is_(call("POST", "/_reset", {"task_seconds": 0, "iis_seconds": 0}, token=None).status, 200, "POST /_reset")
    after = strip_times(state())
    ok(after == seeded, "reset restores the seeded state", "\n".join(diff(seeded, after)))
    is_(call("GET", "/_log", token=None).json["requests"], [], "reset clears the log")
    r1 = call("POST", "/tenants/cust1001/tasks", {"kind": "idem"}, headers={"Idempotency-Key": "key-1"})
    ok(r1.headers.get("idempotent-replayed") is None, "reset forgets idempotency keys")
except Exception as e:
    import traceback
    ok(False, "the test itself raised %s: %s" % (type(e).__name__, e), traceback.format_exc())
finally:
    proc.terminate()
    proc.wait(5)

print("1..%d" % count)
sys.exit(1 if failed else 0)
