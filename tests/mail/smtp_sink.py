#!/usr/bin/env python3
"""smtp_sink.py: an SMTP server for the wf.mail tests (standard library only).

    smtp_sink.py PORT DIR USER PASSWORD

Listens on 127.0.0.1:PORT, requires AUTH PLAIN or LOGIN with USER/PASSWORD,
and writes every accepted message to DIR/N.json as {"from", "rcpt", "data"}
(data with the dot-stuffing undone), and every AUTH attempt's user and
password as a line of DIR/auth.log. Recipients containing "reject" get 550,
containing "later" get 451, so the tests can see both error classes.
"""
import base64
import json
import os
import socketserver
import sys
import threading

PORT, DIR, USER, PASSWORD = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
counter = [0]
lock = threading.Lock()


class Session(socketserver.StreamRequestHandler):
    def reply(self, line):
        self.wfile.write((line + "\r\n").encode())

    def line(self):
        raw = self.rfile.readline(65536)
        if not raw:
            raise EOFError
        return raw.decode("utf-8", "replace").rstrip("\r\n")

    def check(self, user, password):
        with lock, open(os.path.join(DIR, "auth.log"), "a") as log:
            log.write("%s %s\n" % (user, password))
        if user == USER and password == PASSWORD:
            self.authed = True
            self.reply("235 2.7.0 Authentication successful")
        else:
            self.reply("535 5.7.8 Authentication credentials invalid")

    def handle(self):
        self.authed, sender, rcpt = False, None, []
        self.reply("220 sink ESMTP ready")
        try:
            while True:
                line = self.line()
                verb = line.split(" ", 1)[0].upper()
                arg = line[len(verb) + 1:]
                if verb in ("EHLO", "HELO"):
                    self.wfile.write(b"250-sink\r\n250-8BITMIME\r\n250-AUTH PLAIN LOGIN\r\n250 SIZE 10000000\r\n")
                elif verb == "AUTH":
                    parts = arg.split()
                    if parts[0].upper() == "PLAIN":
                        blob = parts[1] if len(parts) > 1 else None
                        if blob is None:
                            self.reply("334 ")
                            blob = self.line()
                        fields = base64.b64decode(blob).split(b"\0")
                        self.check(fields[1].decode(), fields[2].decode())
                    else:
                        user = parts[1] if len(parts) > 1 else None
                        if user is None:
                            self.reply("334 VXNlcm5hbWU6")
                            user = self.line()
                        self.reply("334 UGFzc3dvcmQ6")
                        password = self.line()
                        self.check(base64.b64decode(user).decode(), base64.b64decode(password).decode())
                elif verb == "MAIL":
                    if not self.authed:
                        self.reply("530 5.7.0 Authentication required")
                        continue
                    sender, rcpt = arg.split(":", 1)[1].strip().split(" ")[0].strip("<>"), []
                    self.reply("250 2.1.0 Ok")
                elif verb == "RCPT":
                    address = arg.split(":", 1)[1].strip().split(" ")[0].strip("<>")
                    if "reject" in address:
                        self.reply("550 5.1.1 <%s>: Recipient address rejected" % address)
                    elif "later" in address:
                        self.reply("451 4.3.0 <%s>: Try again later" % address)
                    else:
                        rcpt.append(address)
                        self.reply("250 2.1.5 Ok")
                elif verb == "DATA":
                    if not rcpt:
                        self.reply("554 5.5.1 No valid recipients")
                        continue
                    self.reply("354 End data with <CR><LF>.<CR><LF>")
                    lines = []
                    while True:
                        raw = self.rfile.readline(1 << 20)
                        if not raw or raw == b".\r\n":
                            break
                        if raw.startswith(b"."):
                            raw = raw[1:]
                        lines.append(raw)
                    with lock:
                        counter[0] += 1
                        path = os.path.join(DIR, "%d.json" % counter[0])
                    with open(path + ".tmp", "w") as f:
                        json.dump({"from": sender, "rcpt": rcpt,
                                   "data": b"".join(lines).decode("utf-8", "replace")}, f)
                    os.rename(path + ".tmp", path)
                    self.reply("250 2.0.0 Ok: queued as %d" % counter[0])
                elif verb == "RSET":
                    sender, rcpt = None, []
                    self.reply("250 2.0.0 Ok")
                elif verb == "NOOP":
                    self.reply("250 2.0.0 Ok")
                elif verb == "QUIT":
                    self.reply("221 2.0.0 Bye")
                    return
                else:
                    self.reply("502 5.5.2 Command not recognized")
        except (EOFError, ConnectionError):
            return


class Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


if __name__ == "__main__":
    os.makedirs(DIR, exist_ok=True)
    Server(("127.0.0.1", PORT), Session).serve_forever()
