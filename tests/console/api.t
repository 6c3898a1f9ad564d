#!/usr/bin/env python3
# api.t: `wfengine serve` through its API alone, no browser, no lab.
#   - pause, resume and rollback of a real run (tests/console/workflows/
#     gate.lua): the run is paused while its step "hold" waits for a file
#     the test creates, a point observed in the run's state, never timed;
#   - TLS: --listen 127.0.0.2:PORT with a certificate made here (openssl)
#     answers over HTTPS and refuses plain HTTP; a non-loopback --listen
#     without TLS is refused at start with one line;
#   - 50 event streams of one run cost the server no more journal reads
#     than one stream (one follower per run; the server's read calls
#     counted in /proc/PID/io over one second each).
# Ports 26766-26768.
import http.client
import os
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import wfconsole  # noqa: E402
import wftest  # noqa: E402

t = wftest.Tap()
EXE = os.path.abspath(os.path.join(wftest.ROOT, "wfengine"))
WORKFLOWS = os.path.join(wftest.ROOT, "tests", "console", "workflows")
consoles = []


def console(port, state, **kw):
    c = wfconsole.Console(EXE, port, WORKFLOWS, t.path(state), **kw)
    consoles.append(c)
    return c


until = t.until


def run_of(c, rid):
    return c.call("GET", "/api/runs/" + rid)[1]


def step(run, sid):
    return next((s for s in run.get("steps", []) if s["id"] == sid), {})


def held(c, rid):
    """The run is live and its step hold is waiting for the gate file."""
    run = run_of(c, rid)
    return run.get("live") and step(run, "hold").get("status") == "running"


def stopped(c, rid):
    """The run's process is gone: its record."""
    run = run_of(c, rid)
    return run if run.get("status") != "running" and not run.get("live") else None


def start_gate(c, gate):
    code, body = c.call("POST", "/api/runs", {"workflow": "gate", "mode": "run", "params": {"gate": gate}})
    t.is_(code, 201, "POST /api/runs starts a real gate run")
    rid = body.get("run_id", "none")
    t.ok(until(lambda: held(c, rid), "step hold"), "the run reaches step hold and waits there")
    return rid


def pause(c, rid):
    code, body = c.call("POST", "/api/runs/%s/pause" % rid, {})
    t.is_(code, 202, "POST /api/runs/ID/pause: 202")
    run = until(lambda: stopped(c, rid), "the paused run to stop") or {}
    t.is_(run.get("status"), "interrupted", "the paused run is interrupted (resumable), its process gone")
    t.is_([step(run, sid).get("status") for sid in ("prepare", "hold", "finish")],
          ["succeeded", "running", "pending"], "the run stopped in step hold (cut short: it stays running)")
    return run


def open_streams(c, rid, n):
    """n event streams of run rid, each read until it got the run's events so far."""
    socks = []
    for _ in range(n):
        sock = socket.create_connection((c.host, c.port), 10)
        sock.sendall(("GET /api/runs/%s/events HTTP/1.1\r\nHost: %s:%d\r\nAuthorization: Bearer %s\r\n\r\n"
                      % (rid, c.host, c.port, wfconsole.TOKEN)).encode())
        got = b""
        while b'"step_started"' not in got:
            chunk = sock.recv(65536)
            if not chunk:
                break
            got += chunk
        socks.append(sock)
    return socks


def read_calls(c):
    with open("/proc/%d/io" % c.proc.pid) as f:
        return int(next(line for line in f if line.startswith("syscr:")).split()[1])


def reads_while_watched(c, rid, n, window=1.0):
    """The server's read calls during window seconds while n streams watch the held run."""
    socks = open_streams(c, rid, n)
    before = read_calls(c)
    time.sleep(window)  # a measuring window, not a trigger
    reads = read_calls(c) - before
    for sock in socks:
        sock.close()
    return reads


def watch_cost(c, rid):
    """50 streams of a run cost the server what one does: one follower reads the journal for all."""
    one = reads_while_watched(c, rid, 1)
    fifty = reads_while_watched(c, rid, 50)
    t.ok(fifty <= 2 * one + 20, "50 event streams of a run: %d read calls in 1 s, 1 stream: %d (one follower "
         "per run)" % (fifty, one))


try:
    # ---- pause, resume, rollback ------------------------------------------------
    c = console(26766, "state")
    gate = t.path("gate")
    rid = start_gate(c, gate)
    code, body = c.call("POST", "/api/runs/%s/resume" % rid, {})
    t.is_(code, 409, "resume of a run still running: 409")
    t.like(body.get("error"), "running right now", "the refusal says it is running")
    code, body = c.call("POST", "/api/runs/%s/rollback" % rid, {})
    t.is_(code, 409, "rollback of a run still running: 409")
    watch_cost(c, rid)
    pause(c, rid)
    code, body = c.call("POST", "/api/runs/%s/pause" % rid, {})
    t.is_(code, 409, "pause of a run no longer running: 409")
    t.like(body.get("error"), "is not running", "the refusal says so")

    open(gate, "w").close()
    code, body = c.call("POST", "/api/runs/%s/resume" % rid, {})
    t.is_(code, 202, "POST /api/runs/ID/resume: 202")
    evs = c.events(rid)
    types = [e["type"] for e in evs]
    t.ok("run_resumed" in types and types[-1] == "run_succeeded",
         "the event stream shows the resume and ends with run_succeeded", diag=types)
    run = run_of(c, rid)
    t.is_(run.get("status"), "succeeded", "the resumed run succeeded")
    t.is_([s["status"] for s in run["steps"]], ["succeeded"] * 3, "all three steps succeeded")

    os.remove(gate)
    rid = start_gate(c, gate)
    pause(c, rid)
    code, body = c.call("POST", "/api/runs/%s/rollback" % rid, {})
    t.is_(code, 202, "POST /api/runs/ID/rollback: 202")
    evs = c.events(rid)
    undone = [e["step"] for e in evs if e["type"] == "compensation_succeeded"]
    t.is_(undone, ["prepare"], "the event stream shows step prepare undone")
    run = run_of(c, rid)
    t.is_(run.get("status"), "compensated", "the rolled back run is compensated")
    t.is_(run.get("owed"), [], "nothing is owed after the rollback")
    code, body = c.call("POST", "/api/runs/%s/resume" % rid, {})
    t.is_(code, 409, "resume of a compensated run: 409")
    code, body = c.call("POST", "/api/runs/nosuchrun/rollback", {})
    t.is_(code, 409, "rollback of an unknown run: 409")
    c.stop()

    # ---- TLS ----------------------------------------------------------------------
    cert, key = t.path("cert.pem"), t.path("key.pem")
    r = subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                        "-subj", "/CN=127.0.0.2", "-addext", "subjectAltName=IP:127.0.0.2",
                        "-keyout", key, "-out", cert], capture_output=True, text=True)
    t.is_(r.returncode, 0, "openssl made a self-signed certificate for 127.0.0.2")
    s = console(26767, "tls-state", host="127.0.0.2", tls=(cert, key))
    code, body = s.call("GET", "/api/workflows")
    t.ok(code == 200 and "gate" in [w["name"] for w in body], "HTTPS on 127.0.0.2: GET /api/workflows answers",
         diag=[code, body])
    code, body = s.call("GET", "/api/workflows", token=None)
    t.is_(code, 401, "HTTPS without the token: 401")
    try:
        plain = http.client.HTTPConnection("127.0.0.2", 26767, timeout=10)
        plain.request("GET", "/api/workflows", headers={"Authorization": "Bearer " + wfconsole.TOKEN})
        answer = plain.getresponse().status
    except (OSError, http.client.HTTPException) as e:
        answer = type(e).__name__
    t.ok(not isinstance(answer, int), "plain HTTP to the TLS port gets no HTTP answer (%s)" % answer)
    with open(s.log_path) as f:
        t.like(f.read(), "https://127.0.0.2:26767/", "the server prints its https:// address")
    s.stop()

    for listen in ("0.0.0.0:26768", "10.9.8.7:26768", "[::]:26768"):
        r = subprocess.run([EXE, "serve", "--listen", listen, "--workflows", WORKFLOWS,
                            "--state", t.path("refused")], capture_output=True, text=True, timeout=30,
                           env=dict(os.environ, WFENGINE_TOKEN=wfconsole.TOKEN))
        t.is_(r.returncode, wftest.USAGE, "--listen %s without TLS: refused (exit 2)" % listen)
        lines = r.stderr.strip().splitlines()
        t.ok(len(lines) == 1 and "not a loopback address" in lines[0] and "--tls-cert" in lines[0],
             "--listen %s without TLS: one line naming the address and --tls-cert" % listen, diag=lines)
        t.ok(not wfconsole.port_open("127.0.0.1", 26768), "--listen %s without TLS: nothing listens" % listen)
    r = subprocess.run([EXE, "serve", "--listen", "0.0.0.0:26768", "--tls-cert", cert, "--workflows", WORKFLOWS],
                       capture_output=True, text=True, timeout=30)
    t.is_(r.returncode, wftest.USAGE, "--tls-cert without --tls-key: refused")
    t.like(r.stderr, "--tls-cert and --tls-key go together", "the refusal says both are needed")
    s = console(26768, "any-state", host="0.0.0.0", tls=(cert, key))
    s.base = "https://127.0.0.2:26768"
    code, _ = s.call("GET", "/api/workflows")
    t.is_(code, 200, "--listen 0.0.0.0 with TLS: serves HTTPS")
finally:
    for c in consoles:
        c.stop()
t.done()
