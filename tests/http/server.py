#!/usr/bin/env python3
"""server.py: the HTTP peer of the wf.http tests (Python standard library only).

    server.py PORT        serves on 127.0.0.1:PORT until killed

Threaded HTTP/1.1 with keep-alive, so connection reuse and concurrency are
real. Endpoints (any method unless said):
  /echo                  JSON of what arrived: method, path, query, args,
                         headers (lower-case), body, json, client_port
  /status/CODE           that status; ?retry_after=V sets Retry-After,
                         ?body=TEXT the body (JSON error object otherwise)
  /redirect/N            302 chain of N hops ending at /echo; ?code=307 keeps method
  /delay/SECONDS         answers after a sleep (0.5 for the parallel test)
  /hang/ID               sends nothing; records when the client hangs up;
                         /observed/ID tells {"closed": true, "after": seconds}
  /big/BYTES             a body of BYTES bytes; ?chunked=1 hides the length
  /flaky/ID?fail=N       503 (Retry-After: 0) N times for ID, then 200; every
                         Idempotency-Key seen is in /keys/ID
  /json, /badjson        a JSON body; a body that claims JSON and is not
  /drop                  closes the connection without answering
  /count                 how many requests the server has answered so far
"""
import json
import socket
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

lock = threading.RLock()  # send() counts under it, also when a handler holds it
observed = {}      # hang id -> {"closed": bool, "after": seconds}
flaky = {}         # flaky id -> failures so far
keys = {}          # flaky id -> [Idempotency-Key, ...]
answered = [0]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):  # quiet: TAP owns stdout
        pass

    def read_body(self):
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def send(self, status, body=b"", content_type="application/json", headers=()):
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
        elif isinstance(body, str):
            body = body.encode()
        if status in (204, 304) or status < 200:
            body = b""
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        if status not in (204, 304) and status >= 200:
            self.send_header("Content-Length", str(len(body)))
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD" and body:
            self.wfile.write(body)
        with lock:
            answered[0] += 1

    def handle_any(self):
        url = urllib.parse.urlsplit(self.path)
        args = urllib.parse.parse_qs(url.query, keep_blank_values=True)
        parts = [p for p in url.path.split("/") if p]
        body = self.read_body()
        head = parts[0] if parts else ""
        arg = parts[1] if len(parts) > 1 else ""

        if head == "echo":
            text = body.decode("utf-8", "replace")
            decoded = None
            if "json" in (self.headers.get("Content-Type") or ""):
                try:
                    decoded = json.loads(text)
                except ValueError:
                    decoded = "INVALID"
            self.send(200, {
                "method": self.command, "path": url.path, "query": url.query,
                "args": args, "body": text, "json": decoded,
                "headers": {k.lower(): v for k, v in self.headers.items()},
                "client_port": self.client_address[1],
            })
        elif head == "status":
            code = int(arg)
            extra = []
            if "retry_after" in args:
                extra.append(("Retry-After", args["retry_after"][0]))
            if "body" in args:
                self.send(code, args["body"][0], "text/plain", extra)
            else:
                self.send(code, {"error": "status %d" % code}, headers=extra)
        elif head == "redirect":
            hops = int(arg)
            code = int(args.get("code", ["302"])[0])
            target = "/redirect/%d?code=%d" % (hops - 1, code) if hops > 1 else "/echo"
            self.send(code, "", "text/plain", [("Location", target)])
        elif head == "delay":
            time.sleep(float(arg))
            self.send(200, {"delayed": float(arg)})
        elif head == "hang":
            start = time.time()
            with lock:
                observed[arg] = {"closed": False}
            self.connection.settimeout(0.05)
            while time.time() - start < 30:
                try:
                    if self.connection.recv(1) == b"":
                        break
                except socket.timeout:
                    continue
                except OSError:
                    break
            with lock:
                observed[arg] = {"closed": True, "after": time.time() - start}
            self.close_connection = True
        elif head == "observed":
            with lock:
                self.send(200, observed.get(arg, {"closed": False, "unknown": True}))
        elif head == "big":
            size = int(arg)
            if args.get("chunked"):
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                sent, block = 0, b"x" * 65536
                try:
                    while sent < size:
                        piece = block[:min(len(block), size - sent)]
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                        sent += len(piece)
                    self.wfile.write(b"0\r\n\r\n")
                except OSError:
                    self.close_connection = True
            else:
                try:
                    self.send(200, b"x" * size, "application/octet-stream")
                except OSError:
                    self.close_connection = True
        elif head == "flaky":
            fail = int(args.get("fail", ["1"])[0])
            with lock:
                keys.setdefault(arg, []).append(self.headers.get("Idempotency-Key"))
                seen = flaky.get(arg, 0)
                flaky[arg] = seen + 1
            if seen < fail:
                self.send(503, {"error": "try again"}, headers=[("Retry-After", "0")])
            else:
                self.send(200, {"ok": True, "tries": seen + 1})
        elif head == "keys":
            with lock:
                self.send(200, {"keys": keys.get(arg, [])})
        elif head == "json":
            self.send(200, {"name": "wf", "n": 42, "big": 9007199254740993, "list": [1, 2, 3],
                            "nested": {"ok": True, "none": None}}, "application/json; charset=utf-8")
        elif head == "badjson":
            self.send(200, "{not json", "application/json")
        elif head == "drop":
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
        elif head == "count":
            with lock:
                self.send(200, {"answered": answered[0]})
        else:
            self.send(404, {"error": "no such endpoint"})

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = handle_any


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128  # ten parallel connects must not overflow the backlog

    def handle_error(self, request, client_address):
        pass  # clients hanging up (timeouts, size limits) are part of the tests


if __name__ == "__main__":
    server = Server(("127.0.0.1", int(sys.argv[1])), Handler)
    server.serve_forever()
