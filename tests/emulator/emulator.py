#!/usr/bin/env python3
"""emulator.py: the lab's stand-in for the company's control plane.

One HTTP/1.1 JSON service on 127.0.0.1 with in-memory state: tenants and
their mode, the customer task queue, cluster connections, mail routes,
SuperID, blob storage (Azure templates, EjPackages), SoArc packages,
registered partner apps with webhook receivers, customer recycle and IIS
ApplicationHost.config operations. Every mutation answers with what it
replaced, so a workflow's compensation can put the previous state back
exactly. Test hooks live under /_ (no auth): /_state, /_reset, /_faults,
/_log, /_health. Every endpoint is documented in README.md next to this file.

Python standard library only.
"""

import argparse
import copy
import fnmatch
import hashlib
import json
import os
import re
import socket
import sys
import threading
import time
import traceback
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

TENANT_MODES = ("running", "offline_maintenance")
SUPERID_STATES = ("Normal", "In migration", "Suspended", "Deleted")
STORAGE_KINDS = ("templates", "ejpackages")


class ApiError(Exception):
    def __init__(self, status, code, message, extra=None):
        super().__init__(message)
        self.status, self.code, self.message, self.extra = status, code, message, extra or {}


def md5(text):
    return hashlib.md5(text.encode()).hexdigest()


def blob(name, content, content_type="application/octet-stream", modified="2024-01-15T08:00:00Z"):
    return {"name": name, "content": content, "content_type": content_type,
            "size": len(content.encode()), "md5": md5(content), "modified": modified}


def seed_state(now, task_seconds):
    """The state the lab starts from and /_reset returns to."""
    def task(tid, kind, seconds, created_ago=0):
        return {"id": tid, "kind": kind, "created_at": now - created_ago,
                "finishes_at": now + seconds, "seconds": seconds}

    tenants = {
        "cust1001": {
            "id": "cust1001", "name": "Acme Industries AS", "kind": "production", "source": None,
            "mode": "running", "cluster": "eu-new-01", "mail_domain": "acme-industries.com",
            "database": {"cluster": "source", "name": "cust1001"},
            "company": {"name": "Acme Industries AS", "org_no": "913 456 781", "country": "NO"},
            "license": {"serial_number": "1001-4471-ACME", "owner_company": "Acme Industries AS",
                        "seats": 250, "edition": "Enterprise"},
            "tasks": {"t1": task("t1", "nightly-reindex", 0, 3600),
                      "t2": task("t2", "mass-mailing", task_seconds, 30)},
            "iis_operations": {},
            "mail_routes": {
                "r1": {"id": "r1", "address": "support@acme-industries.com", "destination": "inbox:support", "enabled": True},
                "r2": {"id": "r2", "address": "sales@acme-industries.com", "destination": "inbox:sales", "enabled": True},
                "r3": {"id": "r3", "address": "invoices@acme-industries.com", "destination": "archive:invoices", "enabled": True},
            },
            "mail_routes_deleted": {},
        },
        "sbx2001": {
            "id": "sbx2001", "name": "Acme Industries AS (sandbox)", "kind": "sandbox", "source": "cust1001",
            "mode": "running", "cluster": "eu-new-02", "mail_domain": "sbx2001.sandbox.lab",
            "database": {"cluster": "sandbox", "name": "sbx2001"},
            "company": {"name": "TEST Acme Industries AS", "org_no": "913 456 781", "country": "NO"},
            "license": {"serial_number": "TEST-2001-0001", "owner_company": "TEST Acme Industries AS",
                        "seats": 10, "edition": "Sandbox"},
            "tasks": {"t3": task("t3", "report-export", task_seconds, 10),
                      "t4": task("t4", "import-contacts", 0, 7200)},
            "iis_operations": {},
            "mail_routes": {
                "r4": {"id": "r4", "address": "support@sbx2001.sandbox.lab", "destination": "inbox:support", "enabled": True},
                "r5": {"id": "r5", "address": "test@sbx2001.sandbox.lab", "destination": "inbox:test", "enabled": True},
            },
            "mail_routes_deleted": {},
        },
    }
    clusters = {
        "eu-old-01": {"id": "eu-old-01", "generation": "old", "region": "eu", "lab_cluster": "source"},
        "eu-old-02": {"id": "eu-old-02", "generation": "old", "region": "eu", "lab_cluster": "sandbox"},
        "eu-new-01": {"id": "eu-new-01", "generation": "new", "region": "eu", "lab_cluster": "source"},
        "eu-new-02": {"id": "eu-new-02", "generation": "new", "region": "eu", "lab_cluster": "sandbox"},
    }
    users = {}
    people = [("u1", "anna.berg", "Anna Berg"), ("u2", "Ole.Hansen", "Ole Hansen"),
              ("u3", "kari.nordmann+crm", "Kari Nordmann"), ("u4", "per.lie", "Per Lie"),
              ("u5", "admin", "Acme Admin")]
    for uid, local, name in people:
        users[uid] = {"id": uid, "email": local + "@acme-industries.com", "name": name, "customer": "cust1001"}
    users["u9"] = {"id": "u9", "email": "tester@sbx2001.sandbox.lab", "name": "Old Sandbox Tester",
                   "customer": "sbx2001"}
    superid = {
        "customers": {
            "cust1001": {"id": "cust1001", "name": "Acme Industries AS", "kind": "production",
                         "environment": "cust1001-prod", "registered_at": "2019-03-01T10:00:00Z"},
            "sbx2001": {"id": "sbx2001", "name": "Acme Industries AS (sandbox)", "kind": "sandbox",
                        "environment": "cust1001-test", "registered_at": "2023-05-10T12:00:00Z"},
        },
        "environments": {
            "cust1001-prod": {"id": "cust1001-prod", "customer": "cust1001", "kind": "production",
                              "tenant": "cust1001", "source": None, "cloned_at": None},
            "cust1001-test": {"id": "cust1001-test", "customer": "cust1001", "kind": "test",
                              "tenant": "sbx2001", "source": "cust1001", "cloned_at": "2023-05-10T12:00:00Z"},
        },
        "environment_history": {},
        "tenants": {
            "cust1001": {"state": "Normal", "users": ["u1", "u2", "u3", "u4", "u5"],
                         "plans": {"u1": ["crm-pro"], "u2": ["crm-pro"], "u3": ["crm-basic"],
                                   "u4": ["crm-basic"], "u5": ["crm-admin"]}},
            "sbx2001": {"state": "Normal", "users": ["u9", "u1"],
                        "plans": {"u9": ["sandbox-user"], "u1": ["sandbox-user"]}},
        },
        "users": users,
        "plans": {
            "crm-basic": {"id": "crm-basic", "name": "CRM Basic", "sandbox": False},
            "crm-pro": {"id": "crm-pro", "name": "CRM Pro", "sandbox": False},
            "crm-admin": {"id": "crm-admin", "name": "CRM Administrator", "sandbox": False},
            "sandbox-user": {"id": "sandbox-user", "name": "Production sandbox user", "sandbox": True},
            "sandbox-admin": {"id": "sandbox-admin", "name": "Production sandbox administrator", "sandbox": True},
        },
    }
    storage = {
        "cust1001": {
            "templates": {b["name"]: b for b in [
                blob("Offer.dotx", "Offer template v7 for {{company}}", "application/vnd.ms-word.template"),
                blob("Invoice.dotx", "Invoice template v12 for {{company}}", "application/vnd.ms-word.template"),
                blob("Welcome-letter.dotx", "Welcome {{person.first_name}}!", "application/vnd.ms-word.template"),
                blob("Contract.xltx", "Contract sheet v3", "application/vnd.ms-excel.template"),
            ]},
            "ejpackages": {b["name"]: b for b in [
                blob("crm-core-10.4.2.ejpkg", "crm-core 10.4.2 payload"),
                blob("acme-extensions-2.1.0.ejpkg", "acme customisations 2.1.0"),
                blob("reporting-5.0.1.ejpkg", "reporting 5.0.1 payload"),
            ]},
        },
        "sbx2001": {
            "templates": {b["name"]: b for b in [
                blob("Offer.dotx", "Offer template v5 for {{company}}", "application/vnd.ms-word.template",
                     "2023-05-10T12:00:00Z"),
                blob("Old-newsletter.dotx", "Newsletter 2022", "application/vnd.ms-word.template",
                     "2023-05-10T12:00:00Z"),
            ]},
            "ejpackages": {b["name"]: b for b in [
                blob("crm-core-10.1.0.ejpkg", "crm-core 10.1.0 payload", modified="2023-05-10T12:00:00Z"),
            ]},
        },
    }
    soarc = {
        "cust1001": {"packages": {b["name"]: b for b in [
            blob("archive-2022.soarc", "SoArc archive 2022"),
            blob("archive-2023.soarc", "SoArc archive 2023"),
            blob("ej-layouts.soarc", "EjPackage layouts"),
        ]}},
        "sbx2001": {"packages": {b["name"]: b for b in [
            blob("archive-2022.soarc", "SoArc archive 2022 (old copy)", modified="2023-05-10T12:00:00Z"),
        ]}},
    }
    apps = {
        "a1": {"id": "a1", "name": "Visma Sync", "client_id": "visma-sync",
               "system_user": "app_visma_sync", "uses_system_user": True, "notifications": []},
        "a2": {"id": "a2", "name": "Mailchimp Connector", "client_id": "mailchimp-connector",
               "system_user": "app_mailchimp", "uses_system_user": True, "notifications": []},
        "a3": {"id": "a3", "name": "Calendar Bridge", "client_id": "calendar-bridge",
               "system_user": None, "uses_system_user": False, "notifications": []},
        "a4": {"id": "a4", "name": "Legacy Fax", "client_id": "legacy-fax",
               "system_user": "app_legacy_fax", "uses_system_user": True, "notifications": []},
    }
    return {"tenants": tenants, "clusters": clusters, "superid": superid,
            "storage": storage, "soarc": soarc, "apps": apps}


class Emulator:
    """The state and every operation on it; the HTTP handler only routes."""

    def __init__(self, token, task_seconds, iis_seconds):
        self.token = token
        self.lock = threading.RLock()
        self.defaults = {"task_seconds": task_seconds, "iis_seconds": iis_seconds}
        self.port = 0
        self.reset({})

    # -- test hooks ------------------------------------------------------
    def release_holds(self, fault_id=None):
        for fid, event in getattr(self, "holds", {}).items():
            if fault_id in (None, fid):
                event.set()

    def reset(self, body):
        with self.lock:
            self.task_seconds = float(body.get("task_seconds", self.defaults["task_seconds"]))
            self.iis_seconds = float(body.get("iis_seconds", self.defaults["iis_seconds"]))
            self.state = seed_state(time.time(), self.task_seconds)
            self.release_holds()
            self.faults = []
            self.holds = {}  # fault id -> threading.Event: set when the held requests may go on
            self.idempotency = {}
            self.log = []
            self.serial = 100  # ids for created objects; not part of /_state on purpose

    def next_id(self, prefix):
        self.serial += 1
        return "%s%d" % (prefix, self.serial)


    def task_view(self, task):
        t = dict(task)
        t["state"] = "done" if time.time() >= task["finishes_at"] else "running"
        return t

    def app_view(self, app):
        a = copy.deepcopy(app)
        a["webhook_url"] = "http://127.0.0.1:%d/apps/%s/webhook" % (self.port, app["id"])
        return a

    def tenant_view(self, tenant):
        t = copy.deepcopy(tenant)
        t["tasks"] = {k: self.task_view(v) for k, v in tenant["tasks"].items()}
        t["iis_operations"] = {k: self.task_view(v) for k, v in tenant["iis_operations"].items()}
        return t

    def full_state(self):
        s = copy.deepcopy(self.state)
        s["tenants"] = {k: self.tenant_view(v) for k, v in self.state["tenants"].items()}
        s["apps"] = {k: self.app_view(v) for k, v in self.state["apps"].items()}
        return s

    # -- lookups ---------------------------------------------------------
    def tenant(self, tid):
        t = self.state["tenants"].get(tid)
        if t is None:
            raise ApiError(404, "not_found", "no tenant %r" % tid)
        return t

    def container(self, area, customer, kind):
        store = self.state[area].get(customer)
        if store is None or kind not in store:
            raise ApiError(404, "not_found", "no %s container %s/%s" % (area, customer, kind))
        return store[kind]

    def superid_tenant(self, tid):
        t = self.state["superid"]["tenants"].get(tid)
        if t is None:
            raise ApiError(404, "not_found", "no SuperID tenant %r" % tid)
        return t


def need(body, field, kind=None):
    if field not in body:
        raise ApiError(400, "bad_request", "missing field %r" % field)
    v = body[field]
    if kind is not None and not isinstance(v, kind):
        raise ApiError(400, "bad_request", "field %r has the wrong type" % field)
    return v


def sorted_list(d):
    return [d[k] for k in sorted(d)]


# ---------------------------------------------------------------------------
# Routes. Each handler: (emu, match, query, body) -> (status, json) or
# (status, json, headers). Called with emu.lock held.

ROUTES = []


def route(method, pattern):
    rx = re.compile("^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", pattern) + "$")

    def deco(fn):
        ROUTES.append((method, rx, fn))
        return fn
    return deco


# -- tenants, mode, tasks ----------------------------------------------------

@route("GET", "/tenants")
def tenants_list(emu, m, q, body):
    kind = q.get("kind")
    return 200, {"tenants": [emu.tenant_view(t) for t in sorted_list(emu.state["tenants"])
                             if kind is None or t["kind"] == kind]}


@route("GET", "/tenants/{t}")
def tenant_get(emu, m, q, body):
    return 200, emu.tenant_view(emu.tenant(m["t"]))


@route("GET", "/tenants/{t}/mode")
def mode_get(emu, m, q, body):
    return 200, {"mode": emu.tenant(m["t"])["mode"]}


@route("PUT", "/tenants/{t}/mode")
def mode_put(emu, m, q, body):
    t = emu.tenant(m["t"])
    mode = need(body, "mode", str)
    if mode not in TENANT_MODES:
        raise ApiError(400, "bad_request", "mode must be one of %s" % ", ".join(TENANT_MODES))
    previous = t["mode"]
    active = [emu.task_view(x) for x in sorted_list(t["tasks"])]
    active = [x for x in active if x["state"] != "done"]
    if mode == "offline_maintenance" and previous != mode and active and not body.get("force"):
        raise ApiError(409, "tasks_running", "tenant %s has %d unfinished task(s)" % (t["id"], len(active)),
                       {"tasks": active})
    out = {"previous": previous, "current": mode, "task": None, "iis_operations": []}
    if previous == mode:
        return 200, out
    t["mode"] = mode
    now = time.time()
    if mode == "offline_maintenance":
        # Entering maintenance drains sessions: a task step 2 waits for.
        tid = emu.next_id("t")
        t["tasks"][tid] = {"id": tid, "kind": "enter-maintenance", "created_at": now,
                           "finishes_at": now + emu.task_seconds, "seconds": emu.task_seconds}
        out["task"] = emu.task_view(t["tasks"][tid])
    else:
        # Going live rewrites the web farm's ApplicationHost.config: step 31 waits.
        for op in ("update-bindings", "recycle-app-pool"):
            oid = emu.next_id("iis")
            t["iis_operations"][oid] = {"id": oid, "kind": op, "created_at": now,
                                        "finishes_at": now + emu.iis_seconds, "seconds": emu.iis_seconds}
            out["iis_operations"].append(emu.task_view(t["iis_operations"][oid]))
    return 200, out


def _task_routes(collection, prefix, default_kind):
    @route("GET", "/tenants/{t}/" + collection)
    def lst(emu, m, q, body):
        items = [emu.task_view(x) for x in sorted_list(emu.tenant(m["t"])[_key(collection)])]
        if "state" in q:
            items = [x for x in items if x["state"] == q["state"]]
        return 200, {collection.split("/")[-1]: items,
                     "active": sum(1 for x in items if x["state"] != "done")}

    @route("POST", "/tenants/{t}/" + collection)
    def create(emu, m, q, body):
        t = emu.tenant(m["t"])
        seconds = float(body.get("seconds", emu.task_seconds if prefix == "t" else emu.iis_seconds))
        tid = emu.next_id(prefix)
        now = time.time()
        t[_key(collection)][tid] = {"id": tid, "kind": str(body.get("kind", default_kind)), "created_at": now,
                                    "finishes_at": now + seconds, "seconds": seconds}
        return 201, emu.task_view(t[_key(collection)][tid])

    @route("GET", "/tenants/{t}/" + collection + "/{id}")
    def get(emu, m, q, body):
        x = emu.tenant(m["t"])[_key(collection)].get(m["id"])
        if x is None:
            raise ApiError(404, "not_found", "no such %s %r" % (collection, m["id"]))
        return 200, emu.task_view(x)

    @route("DELETE", "/tenants/{t}/" + collection + "/{id}")
    def delete(emu, m, q, body):
        x = emu.tenant(m["t"])[_key(collection)].pop(m["id"], None)
        if x is None:
            raise ApiError(404, "not_found", "no such %s %r" % (collection, m["id"]))
        return 200, {"deleted": emu.task_view(x)}

    for fn in (lst, create, get, delete):
        fn.__name__ += "_" + _key(collection)


def _key(collection):
    return "tasks" if collection == "tasks" else "iis_operations"


_task_routes("tasks", "t", "manual")
_task_routes("iis/operations", "iis", "update-bindings")


@route("POST", "/tenants/{t}/recycle")
def recycle(emu, m, q, body):
    t = emu.tenant(m["t"])
    tid = emu.next_id("t")
    now = time.time()
    t["tasks"][tid] = {"id": tid, "kind": "recycle", "created_at": now,
                       "finishes_at": now + emu.task_seconds, "seconds": emu.task_seconds}
    return 202, {"task": emu.task_view(t["tasks"][tid])}


# -- clusters --------------------------------------------------------------------

@route("GET", "/clusters")
def clusters_list(emu, m, q, body):
    return 200, {"clusters": sorted_list(emu.state["clusters"])}


@route("GET", "/tenants/{t}/cluster")
def cluster_get(emu, m, q, body):
    t = emu.tenant(m["t"])
    return 200, dict(emu.state["clusters"][t["cluster"]], cluster=t["cluster"])


@route("PUT", "/tenants/{t}/cluster")
def cluster_put(emu, m, q, body):
    t = emu.tenant(m["t"])
    c = need(body, "cluster", str)
    if c not in emu.state["clusters"]:
        raise ApiError(400, "bad_request", "no cluster %r" % c)
    previous, t["cluster"] = t["cluster"], c
    return 200, {"previous": previous, "current": c}


# -- company and license -----------------------------------------------------

def _record_put(field):
    def handler(emu, m, q, body):
        t = emu.tenant(m["t"])
        if not isinstance(body, dict) or not body:
            raise ApiError(400, "bad_request", "body must be a non-empty object")
        previous = t[field]
        t[field] = copy.deepcopy(body)
        return 200, {"previous": previous, "current": t[field]}
    handler.__name__ = field + "_put"
    route("PUT", "/tenants/{t}/" + field)(handler)

    def getter(emu, m, q, body):
        return 200, emu.tenant(m["t"])[field]
    getter.__name__ = field + "_get"
    route("GET", "/tenants/{t}/" + field)(getter)


_record_put("company")
_record_put("license")


# -- mail routes -------------------------------------------------------------------

@route("GET", "/tenants/{t}/mail-routes")
def routes_list(emu, m, q, body):
    t = emu.tenant(m["t"])
    return 200, {"mail_routes": sorted_list(t["mail_routes"]), "deleted": sorted_list(t["mail_routes_deleted"])}


@route("POST", "/tenants/{t}/mail-routes")
def routes_create(emu, m, q, body):
    t = emu.tenant(m["t"])
    need(body, "address", str)
    rid = body.get("id") or emu.next_id("r")
    if rid in t["mail_routes"]:
        raise ApiError(409, "exists", "mail route %r exists" % rid)
    # Re-creating a deleted route (a compensation holding the object) takes
    # it out of the deleted list, so the state is exactly as before.
    t["mail_routes_deleted"].pop(rid, None)
    r = {"id": rid, "address": body["address"], "destination": body.get("destination", "inbox"),
         "enabled": bool(body.get("enabled", True))}
    t["mail_routes"][rid] = r
    return 201, r


@route("DELETE", "/tenants/{t}/mail-routes/{r}")
def routes_delete(emu, m, q, body):
    t = emu.tenant(m["t"])
    r = t["mail_routes"].pop(m["r"], None)
    if r is None:
        raise ApiError(404, "not_found", "no mail route %r" % m["r"])
    if q.get("purge") not in ("1", "true"):
        t["mail_routes_deleted"][r["id"]] = r
    return 200, {"deleted": r}


@route("DELETE", "/tenants/{t}/mail-routes")
def routes_delete_all(emu, m, q, body):
    t = emu.tenant(m["t"])
    deleted = sorted_list(t["mail_routes"])
    t["mail_routes_deleted"].update(t["mail_routes"])
    t["mail_routes"] = {}
    return 200, {"deleted": deleted}


@route("POST", "/tenants/{t}/mail-routes/restore")
def routes_restore(emu, m, q, body):
    t = emu.tenant(m["t"])
    ids = body.get("ids")
    ids = sorted(t["mail_routes_deleted"]) if ids is None else ids
    restored = []
    for rid in ids:
        r = t["mail_routes_deleted"].get(rid)
        if r is None:
            raise ApiError(404, "not_found", "mail route %r is not among the deleted" % rid)
        if rid in t["mail_routes"]:
            raise ApiError(409, "exists", "mail route %r exists" % rid)
    for rid in ids:
        t["mail_routes"][rid] = t["mail_routes_deleted"].pop(rid)
        restored.append(t["mail_routes"][rid])
    return 200, {"restored": restored}


# -- SuperID ---------------------------------------------------------------------

@route("GET", "/superid/customers")
def sid_customers(emu, m, q, body):
    return 200, {"customers": sorted_list(emu.state["superid"]["customers"])}


@route("GET", "/superid/customers/{c}")
def sid_customer_get(emu, m, q, body):
    c = emu.state["superid"]["customers"].get(m["c"])
    if c is None:
        raise ApiError(404, "not_found", "customer %r is not registered in SuperID" % m["c"])
    return 200, c


@route("PUT", "/superid/customers/{c}")
def sid_customer_put(emu, m, q, body):
    customers = emu.state["superid"]["customers"]
    rec = copy.deepcopy(body)
    rec["id"] = m["c"]
    for f in ("name", "kind", "environment"):
        need(rec, f)
    rec.setdefault("registered_at", time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    previous = customers.get(m["c"])
    customers[m["c"]] = rec
    if m["c"] not in emu.state["superid"]["tenants"]:
        emu.state["superid"]["tenants"][m["c"]] = {"state": "Normal", "users": [], "plans": {}}
        rec_tenant_created = True
    else:
        rec_tenant_created = False
    return (201 if previous is None else 200), {"previous": previous, "current": rec,
                                                 "tenant_created": rec_tenant_created}


@route("DELETE", "/superid/customers/{c}")
def sid_customer_delete(emu, m, q, body):
    c = emu.state["superid"]["customers"].pop(m["c"], None)
    if c is None:
        raise ApiError(404, "not_found", "customer %r is not registered in SuperID" % m["c"])
    # The tenant record goes with the registration; returned so that
    # PUT /superid/tenants/{t} can bring it back exactly.
    tenant = emu.state["superid"]["tenants"].pop(m["c"], None)
    return 200, {"deleted": c, "tenant": tenant}


@route("GET", "/superid/environments")
def sid_envs(emu, m, q, body):
    envs = sorted_list(emu.state["superid"]["environments"])
    if "customer" in q:
        envs = [e for e in envs if e["customer"] == q["customer"]]
    return 200, {"environments": envs}


@route("GET", "/superid/environments/{e}")
def sid_env_get(emu, m, q, body):
    e = emu.state["superid"]["environments"].get(m["e"])
    if e is None:
        raise ApiError(404, "not_found", "no environment %r" % m["e"])
    return 200, dict(e, history=len(emu.state["superid"]["environment_history"].get(m["e"], [])))


@route("PUT", "/superid/environments/{e}")
def sid_env_put(emu, m, q, body):
    envs = emu.state["superid"]["environments"]
    rec = copy.deepcopy(body)
    rec["id"] = m["e"]
    for f in ("customer", "kind", "tenant"):
        need(rec, f, str)
    previous = envs.get(m["e"])
    if previous is not None:
        emu.state["superid"]["environment_history"].setdefault(m["e"], []).append(previous)
    envs[m["e"]] = rec
    return (201 if previous is None else 200), {"previous": previous, "current": rec}


@route("POST", "/superid/environments/{e}/restore")
def sid_env_restore(emu, m, q, body):
    hist = emu.state["superid"]["environment_history"]
    stack = hist.get(m["e"])
    if not stack:
        raise ApiError(409, "nothing_to_restore", "environment %r has no replaced version" % m["e"])
    replaced = emu.state["superid"]["environments"].get(m["e"])
    emu.state["superid"]["environments"][m["e"]] = stack.pop()
    if not stack:
        del hist[m["e"]]
    return 200, {"replaced": replaced, "current": emu.state["superid"]["environments"][m["e"]]}


@route("DELETE", "/superid/environments/{e}")
def sid_env_delete(emu, m, q, body):
    e = emu.state["superid"]["environments"].pop(m["e"], None)
    if e is None:
        raise ApiError(404, "not_found", "no environment %r" % m["e"])
    return 200, {"deleted": e}


@route("GET", "/superid/tenants/{t}")
def sid_tenant_get(emu, m, q, body):
    return 200, emu.superid_tenant(m["t"])


@route("PUT", "/superid/tenants/{t}")
def sid_tenant_put(emu, m, q, body):
    for f, kind in (("state", str), ("users", list), ("plans", dict)):
        need(body, f, kind)
    previous = emu.state["superid"]["tenants"].get(m["t"])
    emu.state["superid"]["tenants"][m["t"]] = {"state": body["state"], "users": list(body["users"]),
                                               "plans": copy.deepcopy(body["plans"])}
    return 200, {"previous": previous, "current": emu.state["superid"]["tenants"][m["t"]]}


@route("GET", "/superid/tenants/{t}/state")
def sid_state_get(emu, m, q, body):
    return 200, {"state": emu.superid_tenant(m["t"])["state"]}


@route("PUT", "/superid/tenants/{t}/state")
def sid_state_put(emu, m, q, body):
    t = emu.superid_tenant(m["t"])
    s = need(body, "state", str)
    if s not in SUPERID_STATES:
        raise ApiError(400, "bad_request", "state must be one of %s" % ", ".join(SUPERID_STATES))
    previous, t["state"] = t["state"], s
    return 200, {"previous": previous, "current": s}


@route("GET", "/superid/users")
def sid_users(emu, m, q, body):
    us = sorted_list(emu.state["superid"]["users"])
    if "customer" in q:
        us = [u for u in us if u["customer"] == q["customer"]]
    return 200, {"users": us}


@route("GET", "/superid/users/{u}")
def sid_user(emu, m, q, body):
    u = emu.state["superid"]["users"].get(m["u"])
    if u is None:
        raise ApiError(404, "not_found", "no SuperID user %r" % m["u"])
    return 200, u


@route("GET", "/superid/plans")
def sid_plans(emu, m, q, body):
    return 200, {"plans": sorted_list(emu.state["superid"]["plans"])}


@route("GET", "/superid/tenants/{t}/users")
def sid_tenant_users(emu, m, q, body):
    t = emu.superid_tenant(m["t"])
    users = emu.state["superid"]["users"]
    return 200, {"users": [dict(users.get(u, {"id": u}), plans=t["plans"].get(u, [])) for u in t["users"]]}


@route("PUT", "/superid/tenants/{t}/users")
def sid_tenant_users_put(emu, m, q, body):
    t = emu.superid_tenant(m["t"])
    new = need(body, "users", list)
    previous, t["users"] = t["users"], list(new)
    return 200, {"previous": previous, "current": t["users"]}


@route("GET", "/superid/tenants/{t}/plans")
def sid_tenant_plans(emu, m, q, body):
    return 200, {"plans": emu.superid_tenant(m["t"])["plans"]}


@route("POST", "/superid/tenants/{t}/plans/assign")
def sid_plans_assign(emu, m, q, body):
    t = emu.superid_tenant(m["t"])
    assignments = need(body, "assignments", dict)
    known_plans = emu.state["superid"]["plans"]
    for uid, plans in assignments.items():
        if uid not in emu.state["superid"]["users"]:
            raise ApiError(400, "bad_request", "no SuperID user %r" % uid)
        if plans is not None and (not isinstance(plans, list) or any(p not in known_plans for p in plans)):
            raise ApiError(400, "bad_request", "unknown plan in %r" % (plans,))
    previous = {uid: t["plans"].get(uid) for uid in assignments}
    for uid, plans in assignments.items():
        if plans is None:
            t["plans"].pop(uid, None)
        else:
            t["plans"][uid] = list(plans)
    return 200, {"previous": previous, "current": {uid: t["plans"].get(uid) for uid in assignments}}


@route("POST", "/superid/tenants/{t}/users/sync")
def sid_users_sync(emu, m, q, body):
    t = emu.superid_tenant(m["t"])
    wanted = body.get("users")
    if wanted is None:
        wanted = sorted(t["plans"])  # everyone who holds a plan on this tenant
    for uid in wanted:
        if uid not in emu.state["superid"]["users"]:
            raise ApiError(400, "bad_request", "no SuperID user %r" % uid)
    previous = t["users"]
    t["users"] = list(wanted)
    return 200, {"previous": previous, "current": t["users"],
                 "added": [u for u in wanted if u not in previous],
                 "removed": [u for u in previous if u not in wanted]}


# -- blob storage and SoArc --------------------------------------------------------

def _container_routes(area, prefix, kinds, key):
    kind_rx = "{kind}" if len(kinds) > 1 else kinds[0]

    def kind_of(m):
        k = m.get("kind", kinds[0])
        if k not in kinds:
            raise ApiError(404, "not_found", "no container kind %r" % k)
        return k

    def lst(emu, m, q, body):
        c = emu.container(area, m["c"], kind_of(m))
        return 200, {key: sorted_list(c)}

    def get(emu, m, q, body):
        c = emu.container(area, m["c"], kind_of(m))
        name = urllib.parse.unquote(m["name"])
        if name not in c:
            raise ApiError(404, "not_found", "no blob %r" % name)
        return 200, c[name]

    def put(emu, m, q, body):
        c = emu.container(area, m["c"], kind_of(m))
        name = urllib.parse.unquote(m["name"])
        content = need(body, "content", str)
        b = blob(name, content, body.get("content_type", "application/octet-stream"),
                 body.get("modified", time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())))
        previous = c.get(name)
        c[name] = b
        return (201 if previous is None else 200), {"previous": previous, "current": b}

    def delete(emu, m, q, body):
        c = emu.container(area, m["c"], kind_of(m))
        name = urllib.parse.unquote(m["name"])
        if name not in c:
            raise ApiError(404, "not_found", "no blob %r" % name)
        return 200, {"deleted": c.pop(name)}

    def put_all(emu, m, q, body):
        k = kind_of(m)
        c = emu.container(area, m["c"], k)
        items = need(body, key, list)
        for b in items:
            if not isinstance(b, dict) or "name" not in b or "content" not in b:
                raise ApiError(400, "bad_request", "each item needs name and content")
        previous = sorted_list(c)
        emu.state[area][m["c"]][k] = {b["name"]: copy.deepcopy(b) for b in items}
        return 200, {"previous": previous, "current": sorted_list(emu.state[area][m["c"]][k])}

    def copy_from(emu, m, q, body):
        k = kind_of(m)
        dst = emu.container(area, m["c"], k)
        src_id = need(body, "from", str)
        src = emu.container(area, src_id, k)
        names = body.get("names")
        names = sorted(src) if names is None else names
        for n in names:
            if n not in src:
                raise ApiError(404, "not_found", "no blob %r in %s" % (n, src_id))
        previous = sorted_list(dst)
        overwrite = body.get("overwrite", True)
        copied, skipped, deleted = [], [], []
        if body.get("mirror"):
            for n in sorted(dst):
                if n not in names:
                    del dst[n]
                    deleted.append(n)
        for n in names:
            if n in dst and not overwrite:
                skipped.append(n)
                continue
            dst[n] = copy.deepcopy(src[n])
            copied.append(n)
        return 200, {"copied": copied, "skipped": skipped, "deleted": deleted, "previous": previous}

    base = "/%s/{c}/%s" % (prefix, kind_rx)
    for method, path, fn in (("GET", base, lst), ("PUT", base, put_all), ("POST", base + "/copy", copy_from),
                             ("GET", base + "/{name}", get), ("PUT", base + "/{name}", put),
                             ("DELETE", base + "/{name}", delete)):
        fn.__name__ = "%s_%s" % (area, fn.__name__)
        route(method, path)(fn)


_container_routes("storage", "storage", STORAGE_KINDS, "blobs")
_container_routes("soarc", "soarc", ("packages",), "packages")


# -- partner apps and their webhooks ------------------------------------------------

@route("GET", "/apps")
def apps_list(emu, m, q, body):
    return 200, {"apps": [emu.app_view(a) for a in sorted_list(emu.state["apps"])]}


def _app(emu, aid):
    a = emu.state["apps"].get(aid)
    if a is None:
        raise ApiError(404, "not_found", "no app %r" % aid)
    return a


@route("GET", "/apps/{a}")
def app_get(emu, m, q, body):
    return 200, emu.app_view(_app(emu, m["a"]))


@route("POST", "/apps/{a}/webhook")
def app_webhook(emu, m, q, body):
    a = _app(emu, m["a"])
    event = need(body, "event", str)
    n = {"id": emu.next_id("n"), "event": event, "tenant": body.get("tenant"), "body": body,
         "received_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    a["notifications"].append(n)
    return 202, {"received": n["id"]}


@route("GET", "/apps/{a}/notifications")
def app_notifications(emu, m, q, body):
    return 200, {"notifications": _app(emu, m["a"])["notifications"]}


@route("DELETE", "/apps/{a}/notifications/{n}")
def app_notification_delete(emu, m, q, body):
    a = _app(emu, m["a"])
    for i, n in enumerate(a["notifications"]):
        if n["id"] == m["n"]:
            return 200, {"deleted": a["notifications"].pop(i)}
    raise ApiError(404, "not_found", "no notification %r" % m["n"])


# ---------------------------------------------------------------------------
# HTTP


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "wfengine-lab-emulator/1"

    def log_message(self, fmt, *args):
        if self.server.verbose:
            sys.stderr.write("%s %s\n" % (time.strftime("%H:%M:%S"), fmt % args))

    def do_GET(self):
        self.dispatch()

    do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_GET

    def send_json(self, status, obj, headers=None):
        data = (json.dumps(obj, sort_keys=True, indent=None) + "\n").encode() if obj is not None else b""
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)
        return data

    def drop(self):
        self.close_connection = True
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        except OSError:
            pass
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def dispatch(self):
        emu = self.server.emu
        url = urllib.parse.urlsplit(self.path)
        path = url.path.rstrip("/") or "/"
        query = dict(urllib.parse.parse_qsl(url.query))
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        body = {}
        if raw:
            try:
                body = json.loads(raw)
            except ValueError:
                return self.send_json(400, {"error": "bad_json", "message": "the body is not JSON"})
        if path.startswith("/_"):
            return self.hooks(emu, path, query, body)
        if self.headers.get("Authorization", "") != "Bearer " + emu.token:
            self.record(path, 401)
            return self.send_json(401, {"error": "unauthorized", "message": "a valid bearer token is required"},
                                  {"WWW-Authenticate": 'Bearer realm="lab"'})
        method = "GET" if self.command == "HEAD" else self.command
        fault = self.take_fault(emu, method, path)
        if fault and fault.get("hold"):
            # held until a test releases it (POST /_faults/release), at most 10 minutes
            emu.holds[fault["id"]].wait(600)
        if fault and fault.get("delay"):
            time.sleep(float(fault["delay"]))
        if fault and not fault.get("after") and (fault.get("drop") or fault.get("status")):
            return self.apply_fault(path, fault)
        key = self.headers.get("Idempotency-Key") if method in ("POST", "PUT", "DELETE", "PATCH") else None
        with emu.lock:
            if key is not None and key in emu.idempotency:
                seen = emu.idempotency[key]
                fingerprint = (method, path, hashlib.sha256(raw).hexdigest())
                if seen["fingerprint"] != fingerprint:
                    status, obj, headers = 422, {"error": "idempotency_key_reused",
                                                 "message": "Idempotency-Key was used for another request"}, {}
                else:
                    status, obj, headers = seen["status"], seen["body"], {"Idempotent-Replayed": "true"}
            else:
                status, obj, headers = self.route(emu, method, path, query, body)
                if key is not None and status < 500:
                    emu.idempotency[key] = {"fingerprint": (method, path, hashlib.sha256(raw).hexdigest()),
                                            "status": status, "body": obj}
            self.record(path, status, key, headers.get("Idempotent-Replayed") == "true")
        if fault and fault.get("after") and (fault.get("drop") or fault.get("status")):
            return self.apply_fault(path, fault)
        self.send_json(status, obj, headers)

    def route(self, emu, method, path, query, body):
        allowed = []
        for rmethod, rx, fn in ROUTES:
            mt = rx.match(path)
            if not mt:
                continue
            if rmethod != method:
                allowed.append(rmethod)
                continue
            if not isinstance(body, dict):
                return 400, {"error": "bad_request", "message": "the body must be a JSON object"}, {}
            try:
                res = fn(emu, mt.groupdict(), query, body)
            except ApiError as e:
                return e.status, dict(e.extra, error=e.code, message=e.message), {}
            except Exception as e:  # a bug here must not look like a dropped connection
                traceback.print_exc()
                return 500, {"error": "emulator_bug", "message": "%s: %s" % (type(e).__name__, e)}, {}
            return res if len(res) == 3 else (res[0], res[1], {})
        if allowed:
            return 405, {"error": "method_not_allowed", "message": "use " + ", ".join(sorted(set(allowed)))}, \
                {"Allow": ", ".join(sorted(set(allowed)))}
        return 404, {"error": "not_found", "message": "no endpoint %s %s" % (method, path)}, {}

    def record(self, path, status, key=None, replayed=False, fault=None):
        emu = self.server.emu
        with emu.lock:
            emu.log.append({"time": time.time(), "method": self.command, "path": path, "status": status,
                            "idempotency_key": key, "replayed": replayed, "fault": fault})
            del emu.log[:-10000]

    def take_fault(self, emu, method, path):
        with emu.lock:
            for f in emu.faults:
                if f["remaining"] == 0:
                    continue
                if f["method"] not in ("*", method) or not fnmatch.fnmatchcase(path, f["path"]):
                    continue
                if f["remaining"] > 0:
                    f["remaining"] -= 1
                f["hits"] += 1
                return dict(f)
        return None

    def apply_fault(self, path, fault):
        if fault.get("drop"):
            self.record(path, 0, fault=fault["id"])
            return self.drop()
        headers = {}
        if fault.get("retry_after") is not None:
            headers["Retry-After"] = str(fault["retry_after"])
        self.record(path, fault["status"], fault=fault["id"])
        self.send_json(fault["status"], fault.get("body") or {"error": "injected", "message": "injected fault %s" % fault["id"]},
                       headers)

    def hooks(self, emu, path, query, body):
        m = self.command
        with emu.lock:
            if path == "/_health" and m == "GET":
                return self.send_json(200, {"ok": True, "port": emu.port})
            if path == "/_state" and m == "GET":
                return self.send_json(200, emu.full_state())
            if path == "/_reset" and m == "POST":
                emu.reset(body if isinstance(body, dict) else {})
                return self.send_json(200, {"reset": True, "task_seconds": emu.task_seconds,
                                            "iis_seconds": emu.iis_seconds})
            if path == "/_apps" and m == "POST" and isinstance(body, dict) and body.get("id"):
                app = {"id": body["id"], "name": body.get("name", body["id"]), "client_id": body.get("client_id"),
                       "system_user": body.get("system_user"), "uses_system_user": bool(body.get("system_user")),
                       "notifications": []}
                emu.state["apps"][app["id"]] = app
                return self.send_json(201, emu.app_view(app))
            if path == "/_log" and m == "GET":
                return self.send_json(200, {"requests": emu.log})
            if path == "/_log" and m == "DELETE":
                emu.log = []
                return self.send_json(200, {"cleared": True})
            if path == "/_faults" and m == "GET":
                return self.send_json(200, {"faults": emu.faults})
            if path == "/_faults/release" and m == "POST":
                fid = body.get("id") if isinstance(body, dict) else None
                emu.release_holds(fid)
                return self.send_json(200, {"released": fid or "all"})
            if path == "/_faults" and m == "DELETE":
                emu.release_holds()
                n, emu.faults = len(emu.faults), []
                return self.send_json(200, {"cleared": n})
            if path == "/_faults" and m == "POST":
                specs = body if isinstance(body, list) else [body]
                made = []
                for spec in specs:
                    if not isinstance(spec, dict) or not (spec.get("status") or spec.get("drop") or spec.get("delay")
                                                           or spec.get("hold")):
                        return self.send_json(400, {"error": "bad_request",
                                                    "message": "a fault needs status, drop, delay or hold"})
                    count = int(spec.get("count", 1))
                    f = {"id": emu.next_id("f"), "method": spec.get("method", "*").upper(),
                         "path": spec.get("path", "*"), "status": spec.get("status"),
                         "delay": spec.get("delay"), "drop": bool(spec.get("drop")),
                         "retry_after": spec.get("retry_after"), "body": spec.get("body"),
                         "after": bool(spec.get("after")), "hold": bool(spec.get("hold")), "count": count,
                         "remaining": -1 if count == 0 else count, "hits": 0}
                    emu.faults.append(f)
                    if f["hold"]:
                        emu.holds[f["id"]] = threading.Event()
                    made.append(f)
                return self.send_json(201, {"faults": made})
        return self.send_json(404, {"error": "not_found", "message": "no test hook %s %s" % (m, path)})


def main(argv):
    p = argparse.ArgumentParser(description="wfengine lab control-plane emulator")
    p.add_argument("port", nargs="?", type=int, default=None)
    p.add_argument("--port", dest="port_opt", type=int, default=None)
    p.add_argument("--token", default=os.environ.get("EMULATOR_TOKEN", "lab-token"))
    p.add_argument("--task-seconds", type=float, default=float(os.environ.get("EMULATOR_TASK_SECONDS", "3")))
    p.add_argument("--iis-seconds", type=float, default=float(os.environ.get("EMULATOR_IIS_SECONDS", "2")))
    p.add_argument("--pid-file")
    p.add_argument("-v", "--verbose", action="store_true")
    a = p.parse_args(argv)
    port = a.port_opt or a.port or int(os.environ.get("EMULATOR_PORT", "18080"))
    emu = Emulator(a.token, a.task_seconds, a.iis_seconds)
    ThreadingHTTPServer.allow_reuse_address = True
    ThreadingHTTPServer.daemon_threads = True
    srv = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    srv.emu, srv.verbose = emu, a.verbose
    emu.port = srv.server_address[1]
    if a.pid_file:
        with open(a.pid_file, "w") as f:
            f.write("%d\n" % os.getpid())
    sys.stderr.write("emulator: listening on http://127.0.0.1:%d\n" % emu.port)
    sys.stderr.flush()
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        srv.server_close()


if __name__ == "__main__":
    main(sys.argv[1:])
