# wfconsole.py: a `wfengine serve` for the console tests (tests/console/):
# start it, call its API as a script would (urllib), read a run's event
# stream, stop it.
import json
import os
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request

TOKEN = "console-test-token-0123456789"


def port_open(host, port):
    try:
        socket.create_connection((host, port), 0.5).close()
        return True
    except OSError:
        return False


class Console:
    """wfengine serve on host:port; tls: (cert, key) for HTTPS, trusted as a CA by call()."""

    def __init__(self, exe, port, workflows, state, config=None, env=None, host="127.0.0.1", tls=None,
                 log=None, cwd=None):
        self.host, self.port = host, port
        self.base = "%s://%s:%d" % ("https" if tls else "http", host, port)
        self.context = ssl.create_default_context(cafile=tls[0]) if tls else None
        argv = [exe, "serve", "--listen", "%s:%d" % (host, port), "--workflows", workflows, "--state", state]
        if config:
            argv += ["-c", config]
        if tls:
            argv += ["--tls-cert", tls[0], "--tls-key", tls[1]]
        e = dict(env or os.environ, WFENGINE_TOKEN=TOKEN)
        self.log_path = log or state + ".serve.log"
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(argv, env=e, stdout=self.log, stderr=subprocess.STDOUT, cwd=cwd)
        for _ in range(200):
            if port_open(host, port) or self.proc.poll() is not None:
                break
            time.sleep(0.05)

    def request(self, method, path, body=None, token=TOKEN, csrf=True, origin=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base + path, data=data, method=method)
        if token:
            req.add_header("Authorization", "Bearer " + token)
        if data is not None:
            req.add_header("Content-Type", "application/json")
            if csrf:
                req.add_header("X-WFEngine-CSRF", "1")
        if origin:
            req.add_header("Origin", origin)
        return req

    def call(self, method, path, body=None, token=TOKEN, csrf=True, origin=None):
        req = self.request(method, path, body, token, csrf, origin)
        try:
            with urllib.request.urlopen(req, timeout=30, context=self.context) as r:
                return r.status, json.loads(r.read() or b"null")
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"null")

    def stream(self, run_id, timeout=120):
        """The SSE stream of a run, read until the end event: [(kind, data)]."""
        req = self.request("GET", "/api/runs/%s/events" % run_id)
        out, kind = [], "message"
        with urllib.request.urlopen(req, timeout=timeout, context=self.context) as r:
            for raw in r:
                line = raw.decode().rstrip("\n")
                if line.startswith("event: "):
                    kind = line[7:]
                elif line.startswith("data: "):
                    out.append((kind, json.loads(line[6:])))
                elif line == "":
                    if kind == "end":
                        break
                    kind = "message"
        return out

    def events(self, run_id, timeout=120):
        """The journal events of a run's SSE stream, read until the end event."""
        return [data for kind, data in self.stream(run_id, timeout) if kind == "message"]

    def cpu_seconds(self):
        """The server's CPU time so far (user + system)."""
        with open("/proc/%d/stat" % self.proc.pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.log.close()
