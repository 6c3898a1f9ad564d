#!/usr/bin/env python3
# Secrets: a secret param (from the environment), config keys
# holding a password and tokens, a DSN with a password (to a closed port and
# to a real throwaway cluster), an HTTP bearer token and basic auth against a
# local server. None may appear in stdout, stderr, the journal, `show`,
# `show --json` or `runs`, in a run that succeeds and one that fails.
import base64, http.server, json, os, shutil, socket, subprocess, sys, tempfile, threading

WFENGINE = os.path.abspath(os.environ.get("WFENGINE", "./wfengine"))
ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
TMP = tempfile.mkdtemp(prefix="wf-secrets-")
STATE = os.path.join(TMP, "state")
PG_PORT = 26507
count = 0

SECRETS = {
    "param": "ParamSecretZ9q",
    "db": "DbPassw0rdQx",
    "token": "TokAbc123XYZw",
    "basic": "BasicPw987v",
}
SECRETS["basic_b64"] = base64.b64encode(("bob:" + SECRETS["basic"]).encode()).decode()


def ok(cond, name, detail=None, skip=None):
    global count
    count += 1
    print(("ok" if cond or skip else "not ok") + " %d - %s%s" % (count, name, " # SKIP " + skip if skip else ""),
          flush=True)
    if not cond and not skip and detail is not None:
        for line in str(detail).splitlines()[:15]:
            print("#   " + line)
    return cond


seen_auth = []


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        seen_auth.append(self.headers.get("Authorization"))
        status = 401 if self.path.startswith("/deny") else 200
        body = json.dumps({"path": self.path}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
threading.Thread(target=server.serve_forever, daemon=True).start()
HTTP_PORT = server.server_address[1]

s = socket.socket()
s.bind(("127.0.0.1", 0))
CLOSED_PORT = s.getsockname()[1]
s.close()

pg_dir = os.path.join(TMP, "pg")
pg = subprocess.run(["sh", "-c", '. "$1/tests/lib/pg.sh" && pg_start "$2" "$3"', "sh", ROOT, pg_dir, str(PG_PORT)],
                    capture_output=True, text=True)
PG_OK = pg.returncode == 0

with open(os.path.join(TMP, "cfg.yaml"), "w") as f:
    f.write("db:\n  password: %s\napi:\n  token: %s\n  basic: %s\n" % (SECRETS["db"], SECRETS["token"], SECRETS["basic"]))

with open(os.path.join(TMP, "sec.lua"), "w") as f:
    f.write("""
local sql = require "wf.sql"
local http = require "wf.http"
local function dsn(ctx, port)
  return "postgresql://postgres:" .. ctx.config.db.password .. "@127.0.0.1:" .. port .. "/postgres?connect_timeout=3"
end
return workflow {
  name = "secrets",
  params = {
    pw = { secret = true, env = "WF_SECRET_PW" },
    hport = { required = true }, pgport = { required = true }, closed = { required = true },
    fail = { default = "no" },
  },
  steps = {
    step "log_it" { run = function(ctx)
      ctx:log("param %s config %s %s", ctx.params.pw, ctx.config.db.password, ctx.config.api.token)
      ctx:warn("dsn %s", dsn(ctx, 1))
      ctx.state.copy = ctx.params.pw
      return { echoed = ctx.params.pw, tok = ctx.config.api.token, dsn = dsn(ctx, 1) }
    end },
    step "http_auth" { run = function(ctx)
      local a = http.get("http://127.0.0.1:" .. ctx.params.hport .. "/a", { bearer = ctx.config.api.token })
      local b = http.get("http://127.0.0.1:" .. ctx.params.hport .. "/b", { auth = { "bob", ctx.config.api.basic } })
      http.get("http://127.0.0.1:" .. ctx.params.hport .. "/deny", { bearer = ctx.config.api.token, raise = false })
      return { a = a.status, b = b.status }
    end },
    step "db_real" { run = function(ctx)
      if ctx.params.pgport == "0" then return { skipped = true } end
      local conn = sql.connect(dsn(ctx, ctx.params.pgport))
      local n = conn:scalar("select 1")
      conn:close()
      return { n = n }
    end },
    step "db_closed" { retry = { attempts = 1 }, run = function(ctx)
      if ctx.params.fail ~= "yes" then return {} end
      sql.connect(dsn(ctx, ctx.params.closed))
    end },
  },
}
""")


def wf(args, env=None):
    e = dict(os.environ, WF_SECRET_PW=SECRETS["param"])
    e.update(env or {})
    p = subprocess.run([WFENGINE] + args + ["--state", STATE], capture_output=True, cwd=TMP, env=e, timeout=120)
    return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")


def leaks(text):
    return [k for k, v in SECRETS.items() if v in text]


def journal_text():
    out = []
    for root, _, files in os.walk(STATE):
        for name in files:
            with open(os.path.join(root, name), "rb") as f:
                out.append(f.read().decode("utf-8", "replace"))
    return "\n".join(out)


base = ["run", "sec.lua", "-c", "cfg.yaml", "-y", "-p", "hport=%d" % HTTP_PORT,
        "-p", "pgport=%d" % (PG_PORT if PG_OK else 0), "-p", "closed=%d" % CLOSED_PORT]
for label, extra, want in [("succeeding run", [], 0), ("failing run (DSN to a closed port)", ["-p", "fail=yes"], 1),
                           ("failing run, --json -v", ["-p", "fail=yes", "--json"], 1)]:
    rc, out, err = wf(base + extra + (["-v"] if "-v" in label else []))
    ok(rc == want, "%s exits %d" % (label, want), "rc=%r\n%s\n%s" % (rc, out[-800:], err[-800:]))
    ok(not leaks(out), "%s: no secret on stdout" % label, "leaked: %s\n%s" % (leaks(out), out[-1500:]))
    ok(not leaks(err), "%s: no secret on stderr" % label, "leaked: %s\n%s" % (leaks(err), err[-1500:]))
auth = [a for a in seen_auth if a]
ok("Bearer " + SECRETS["token"] in auth and "Basic " + SECRETS["basic_b64"] in auth,
   "the server did receive both credentials (the test is real)", seen_auth)

j = journal_text()
ok(not leaks(j), "no secret in any file under the state directory", "leaked: %s" % leaks(j))
runs = sorted(os.listdir(os.path.join(STATE, "runs")))
for run_id in runs:
    for args in (["show", run_id], ["show", run_id, "--json"]):
        rc, out, err = wf(args)
        ok(rc == 0 and not leaks(out + err), " ".join(args[:1] + args[2:]) + " of a run: no secret",
           "rc=%r leaked: %s" % (rc, leaks(out + err)))
for args in (["runs"], ["runs", "--json"]):
    rc, out, err = wf(args)
    ok(rc == 0 and not leaks(out + err), " ".join(args) + ": no secret", "rc=%r leaked: %s" % (rc, leaks(out + err)))
rc, out, err = wf(["show", runs[0], "--json"])
db_real = [st for st in json.loads(out)["steps"] if st["id"] == "db_real"]
ok(db_real and db_real[0].get("result") == {"n": 1}, "the DSN with a password reached a real cluster", out[-500:],
   skip=None if PG_OK else "no PostgreSQL cluster: " + pg.stderr[-200:])
rc, out, err = wf(["resume", runs[-1], "-y"], env={"WF_SECRET_PW": SECRETS["param"]})
ok(not leaks(out + err), "resume of a failed run: no secret", "leaked: %s" % leaks(out + err))

server.shutdown()
subprocess.run(["sh", "-c", '. "$1/tests/lib/pg.sh" && pg_stop "$2"', "sh", ROOT, pg_dir], capture_output=True)
shutil.rmtree(TMP, ignore_errors=True)
print("1..%d" % count)
