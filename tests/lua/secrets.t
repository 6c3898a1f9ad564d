#!/usr/bin/env python3
# Secrets: a secret param (from the environment), config keys
# holding a password and tokens, a DSN with a password (to a closed port and
# to a real throwaway cluster), an HTTP bearer token and basic auth against a
# local server. None may appear in stdout, stderr, the journal, `show`,
# `show --json` or `runs`, in a run that succeeds and one that fails.
# Nor in the forms the engine itself writes (a
# URL-encoded query, a JSON body in a dry-run "would POST" line, the base64
# of Basic credentials echoed by a server, a table key), nor when only the
# config's DSN or URL holds the password; a secret too short to redact is
# refused; a secret equal to a step id, an event type or the year leaves the
# journal readable, and the run can be shown and resumed.
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
seen_queries = []


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        seen_auth.append(self.headers.get("Authorization"))
        seen_queries.append(self.path)
        status = 401 if self.path.startswith("/deny") else 200
        echo = {"path": self.path}
        if self.path.startswith("/deny-echo"):  # as httpbin does: the credentials back in the body
            echo["authorization"] = self.headers.get("Authorization")
        body = json.dumps(echo).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.do_GET()

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


# ---- the other forms and places of a secret ----
LEAK = {
    "query": "AbC+dEf/GhI=",          # a secret param sent in an HTTP query
    "quoted": 'Pa"ss\\word9',         # a secret param in a JSON body
    "pgpw": "PgConnPw55",             # only in the config's DSN (from the environment)
    "urlpw": "Url@Pass77",            # only in the config's URL, percent-encoded there
    "basic2": "LeakBasic4u",          # Basic auth password, echoed back as base64
}
LEAK_FORMS = dict(LEAK)
LEAK_FORMS.update({
    "query, URL-encoded": "AbC%2BdEf%2FGhI%3D",
    "query, URL-encoded lower case": "AbC%2bdEf%2fGhI%3d",
    "quoted, JSON-escaped": 'Pa\\"ss\\\\word9',
    "quoted, URL-encoded": "Pa%22ss%5Cword9",
    "urlpw, as written": "Url%40Pass77",
    "basic2, base64 of user:password": base64.b64encode(b"eve:" + LEAK["basic2"].encode()).decode(),
})


def leaked_forms(text):
    return [k for k, v in LEAK_FORMS.items() if v in text]


with open(os.path.join(TMP, "leaks.yaml"), "w") as f:
    f.write("dsn: host=127.0.0.1 port=%d user=app password=${WF_LEAK_PGPW} dbname=x\n"
            "url: postgresql://app:Url%%40Pass77@127.0.0.1:%d/db\n"
            "basic: %s\n" % (CLOSED_PORT, CLOSED_PORT, LEAK["basic2"]))
with open(os.path.join(TMP, "leaks.lua"), "w") as f:
    f.write("""
local http = require "wf.http"
return workflow {
  name = "leaks",
  params = {
    token = { secret = true, env = "WF_LEAK_TOKEN" }, quoted = { secret = true, env = "WF_LEAK_QUOTED" },
    hport = { required = true },
  },
  steps = {
    step "query" { run = function(ctx)
      local r = http.get("http://127.0.0.1:" .. ctx.params.hport .. "/echo", { query = { token = ctx.params.token } })
      ctx:log("fetched %s: %s", r.url, r.body)
      return { url = r.url, body = r.body }
    end },
    step "keyed" { run = function(ctx)
      ctx.state[ctx.params.quoted] = { [ctx.params.quoted] = "seen" }
      return { [ctx.params.token] = 1 }
    end },
    step "dsn" { run = function(ctx)
      ctx:log("dsn %s url %s", ctx.config.dsn, ctx.config.url)
      return { dsn = ctx.config.dsn, url = ctx.config.url }
    end },
    step "post" { run = function(ctx)
      http.post("http://127.0.0.1:" .. ctx.params.hport .. "/post", { pw = ctx.params.quoted },
        { query = { token = ctx.params.token } })
      return {}
    end },
    step "basic" { run = function(ctx)
      http.get("http://127.0.0.1:" .. ctx.params.hport .. "/deny-echo", { auth = { "eve", ctx.config.basic } })
    end },
  },
}
""")

LEAK_ENV = {"WF_LEAK_TOKEN": LEAK["query"], "WF_LEAK_QUOTED": LEAK["quoted"], "WF_LEAK_PGPW": LEAK["pgpw"]}
leak_base = ["run", "leaks.lua", "-c", "leaks.yaml", "-p", "hport=%d" % HTTP_PORT]
for label, extra in [("leak paths, run", []), ("leak paths, run --json", ["--json"]),
                     ("leak paths, dry-run", ["--dry-run"]), ("leak paths, dry-run --json", ["--dry-run", "--json"])]:
    rc, out, err = wf(leak_base + extra, env=LEAK_ENV)
    ok(rc == 1, "%s: fails at the Basic-auth step (exit 1)" % label, "rc=%r\n%s\n%s" % (rc, out[-800:], err[-800:]))
    ok(not leaked_forms(out), "%s: no secret in any form on stdout" % label,
       "leaked: %s\n%s" % (leaked_forms(out), out[-1500:]))
    ok(not leaked_forms(err), "%s: no secret in any form on stderr" % label,
       "leaked: %s\n%s" % (leaked_forms(err), err[-1500:]))
    if "dry-run" in label and "json" not in label:
        ok("would POST" in out, "%s: the would-POST line is shown (the test is real)" % label, out[-800:])
ok(any("token=AbC%2BdEf%2FGhI%3D" in q for q in seen_queries) and
   "Basic " + LEAK_FORMS["basic2, base64 of user:password"] in seen_auth,
   "the server received the encoded query and the Basic credentials (the test is real)", (seen_queries, seen_auth))
j = journal_text()
ok(not leaked_forms(j), "leak paths: no secret in any form under the state directory", "leaked: %s" % leaked_forms(j))
ok('"***":1' in j.replace(" ", ""), "leak paths: a table key that is a secret is journaled as ***", j[-600:])
for run_id in sorted(os.listdir(os.path.join(STATE, "runs"))):
    for args in (["show", run_id], ["show", run_id, "--json"]):
        rc, out, err = wf(args)
        ok(rc == 0 and not leaked_forms(out + err), "leak paths: " + " ".join(args[:1] + args[2:]) + ": no secret",
           "rc=%r leaked: %s" % (rc, leaked_forms(out + err)))
for args in (["runs"], ["runs", "--json"]):
    rc, out, err = wf(args)
    ok(rc == 0 and not leaked_forms(out + err), "leak paths: " + " ".join(args) + ": no secret",
       "rc=%r leaked: %s" % (rc, leaked_forms(out + err)))

# Too short to redact: refused with one line naming the value, before anything runs.
with open(os.path.join(TMP, "short.lua"), "w") as f:
    f.write("""
local http = require "wf.http"
local sql = require "wf.sql"
return workflow {
  name = "short",
  params = { pw = { secret = true }, hport = { default = "0" }, what = { default = "none" } },
  steps = {
    step "use" { run = function(ctx)
      if ctx.params.what == "http" then
        http.get("http://127.0.0.1:" .. ctx.params.hport .. "/a", { auth = { "bob", "ab1" } })
      elseif ctx.params.what == "sql" then
        sql.connect("host=127.0.0.1 port=1 password=ab1 connect_timeout=3")
      end
    end },
  },
}
""")
for name, text in [("a config key naming a password", "db:\n  password: xy1\n"),
                   ("a DSN in the config", "dsn: host=h password=xy1 dbname=d\n"),
                   ("a URL in the config", "url: https://u:xy1@example.org/\n")]:
    with open(os.path.join(TMP, "short.yaml"), "w") as f:
        f.write(text)
    rc, out, err = wf(["run", "short.lua", "-c", "short.yaml", "-p", "pw=long-enough"])
    where = "db.password" if "db:" in text else text.split(":")[0]
    ok(rc == 2 and "short.yaml: " + where + ":" in err and "too short to redact" in err and "xy1" not in out + err,
       "a 3-byte secret in %s is refused (exit 2), naming the key" % name, "rc=%r\n%s%s" % (rc, out, err))
rc, out, err = wf(["run", "short.lua", "-p", "pw=ab1"])
ok(rc == 2 and "parameter 'pw'" in err and "too short to redact" in err and "ab1" not in out + err,
   "a 3-byte secret parameter is refused (exit 2), naming it", "rc=%r\n%s%s" % (rc, out, err))
for what in ("http", "sql"):
    rc, out, err = wf(["run", "short.lua", "-p", "pw=long-enough", "-p", "what=" + what, "-p", "hport=%d" % HTTP_PORT])
    ok(rc == 1 and "usage: " in err and "too short to redact" in err and "ab1" not in out + err,
       "a 3-byte %s password is refused by the binding, not sent" % what, "rc=%r\n%s%s" % (rc, out, err))

# ---- a secret equal to a step id, an event type or the year ----
with open(os.path.join(TMP, "structure.lua"), "w") as f:
    f.write("""
return workflow {
  name = "structure", on_failure = "pause",
  params = { pw = { secret = true }, fail = { default = "no" } },
  steps = {
    step "deploy" { run = function(ctx)
      if ctx.params.fail == "yes" then error("deploy refused " .. ctx.params.pw) end
      return { used = ctx.params.pw }
    end },
    step "after" { run = function(ctx) return { done = true } end },
  },
}
""")
YEAR = str(__import__("datetime").datetime.now(__import__("datetime").timezone.utc).year)
TYPES = {"run_started", "run_resumed", "step_started", "step_failed", "step_succeeded", "run_paused",
         "run_succeeded", "log"}
for secret in ("deploy", "started", YEAR):
    before = set(os.listdir(os.path.join(STATE, "runs")))
    rc, out, err = wf(["run", "structure.lua", "-p", "pw=" + secret, "-p", "fail=yes", "--json"])
    run_id = (set(os.listdir(os.path.join(STATE, "runs"))) - before or {"?"}).pop()
    ok(rc == 5, "pw=%s: the failed run pauses (exit 5)" % secret, "rc=%r\n%s" % (rc, err[-500:]))
    events = []
    path = os.path.join(STATE, "runs", run_id, "events.jsonl")
    if os.path.exists(path):
        with open(path) as f:
            events = [json.loads(line) for line in f if line.strip()]
    bad = [e for e in events if e.get("type") not in TYPES or e.get("step", "deploy") not in ("deploy", "after")
           or not str(e.get("time", "")).startswith(YEAR) or e.get("run_id", run_id) != run_id]
    ok(events and not bad, "pw=%s: types, step ids, times and run id intact in the journal" % secret, bad[:3])
    printed = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    ok([e.get("type") for e in printed] == [e.get("type") for e in events] and
       all(e.get("step", "deploy") in ("deploy", "after") for e in printed),
       "pw=%s: --json prints the same intact events" % secret, out[-600:])
    failed = [e for e in events if e.get("type") == "step_failed"]
    ok(failed and secret not in failed[0]["error"]["message"] and "***" in failed[0]["error"]["message"],
       "pw=%s: the error message is still redacted" % secret, failed)
    rc, out, err = wf(["show", run_id, "--json"])
    shown = json.loads(out) if rc == 0 else {}
    ok(rc == 0 and [s["id"] for s in shown.get("steps", [])] == ["deploy", "after"]
       and str(shown.get("started", "")).startswith(YEAR) and shown.get("status") == "paused",
       "pw=%s: show --json names the steps, the start time and the status" % secret, "rc=%r %s%s" % (rc, out[-400:], err))
    rc, out, err = wf(["runs", "--json"])
    listed = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    mine = [r for r in listed if r.get("run_id") == run_id]
    ok(mine and str(mine[0].get("started")).startswith(YEAR) and mine[0].get("status") == "paused",
       "pw=%s: runs --json gives the run's start time and status" % secret, out[-400:] + err)
    rc, out, err = wf(["show", run_id])
    ok(rc == 0 and " deploy " in out and "paused" in out, "pw=%s: show lists step deploy" % secret, out + err)
    rc, out, err = wf(["resume", run_id, "-p", "pw=" + secret, "-p", "fail=no", "-y"])
    ok(rc == 0, "pw=%s: the run resumes and succeeds" % secret, "rc=%r\n%s%s" % (rc, out[-400:], err[-400:]))
    rc, out, err = wf(["show", run_id, "--json"])
    shown = json.loads(out) if rc == 0 else {}
    ok(shown.get("status") == "succeeded" and [s["status"] for s in shown.get("steps", [])] == ["succeeded"] * 2,
       "pw=%s: after resume both steps succeeded" % secret, out[-400:] + err)

server.shutdown()
subprocess.run(["sh", "-c", '. "$1/tests/lib/pg.sh" && pg_stop "$2"', "sh", ROOT, pg_dir], capture_output=True)
shutil.rmtree(TMP, ignore_errors=True)
print("1..%d" % count)
