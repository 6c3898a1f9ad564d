#!/usr/bin/env python3
# Handle leaks: connections dropped without close() and after
# errors are closed by garbage collection (server side: pg_stat_activity);
# curl transfers that fail or are dropped leave no file descriptors behind.
import http.server, os, shutil, subprocess, tempfile, threading

WFENGINE = os.path.abspath(os.environ.get("WFENGINE", "./wfengine"))
ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
TMP = tempfile.mkdtemp(prefix="wf-handles-")
PG_PORT = 26508
count = 0


def ok(cond, name, detail=None, skip=None):
    global count
    count += 1
    print(("ok" if cond or skip else "not ok") + " %d - %s%s" % (count, name, " # SKIP " + skip if skip else ""),
          flush=True)
    if not cond and not skip and detail:
        for line in str(detail).splitlines()[-20:]:
            print("#   " + line)


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        status = 500 if self.path.startswith("/fail") else 200
        self.send_response(status)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *a):
        pass


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
threading.Thread(target=server.serve_forever, daemon=True).start()
pg_dir = os.path.join(TMP, "pg")
pg = subprocess.run(["sh", "-c", '. "$1/tests/lib/pg.sh" && pg_start "$2" "$3"', "sh", ROOT, pg_dir, str(PG_PORT)],
                    capture_output=True, text=True)

with open(os.path.join(TMP, "h.lua"), "w") as f:
    f.write("""
local sql, http = require "wf.sql", require "wf.http"
-- descriptors of this process; the pipe of io.popen counts in every call alike
local pid = io.open("/proc/self/stat"):read("n")
local function fds()
  local ls = io.popen("ls /proc/" .. pid .. "/fd")
  local n = 0
  for _ in ls:lines() do n = n + 1 end
  ls:close()
  return n
end
return workflow {
  name = "handles",
  params = { pgport = { required = true }, hport = { required = true } },
  steps = {
    step "sql_gc" { run = function(ctx)
      if ctx.params.pgport == "0" then return { skipped = true } end
      local dsn = "postgresql://postgres@127.0.0.1:" .. ctx.params.pgport .. "/postgres"
      for i = 1, 30 do local c = sql.connect(dsn) c:scalar("select 1") end       -- dropped, never closed
      for i = 1, 30 do pcall(function() local c = sql.connect(dsn) c:query("select nonsense") end) end
      collectgarbage() collectgarbage()
      local probe = sql.connect(dsn)
      -- A closed connection's backend exits a moment later: poll for it.
      local n
      for _ = 1, 50 do
        n = probe:scalar("select count(*) from pg_stat_activity where backend_type = 'client backend'")
        if n == 1 then break end
        ctx:sleep(0.1)
      end
      probe:close()
      local closed_err = pcall(function() probe:scalar("select 1") end)
      return { backends = n, closed_raises = not closed_err }
    end },
    step "curl_gc" { run = function(ctx)
      local base = "http://127.0.0.1:" .. ctx.params.hport
      http.get(base .. "/warm")
      local before = fds()
      for i = 1, 100 do pcall(http.get, base .. "/fail" .. i, { timeout = 5 }) end
      for i = 1, 100 do http.get(base .. "/ok" .. i) end
      for i = 1, 50 do pcall(http.get, "http://127.0.0.1:1/closed", { timeout = 2 }) end
      collectgarbage() collectgarbage()
      return { before = before, after = fds() }
    end },
  },
}
""")

p = subprocess.run([WFENGINE, "run", "h.lua", "--json", "--state", "st", "-p",
                    "pgport=%d" % (PG_PORT if pg.returncode == 0 else 0), "-p", "hport=%d" % server.server_address[1]],
                   capture_output=True, text=True, cwd=TMP, timeout=180)
import json
results = {}
for line in p.stdout.splitlines():
    ev = json.loads(line)
    if ev["type"] == "step_succeeded":
        results[ev["step"]] = ev.get("result")
ok(p.returncode == 0, "the handle workflow runs", p.stdout[-1500:] + p.stderr)
sq = results.get("sql_gc") or {}
skip = None if pg.returncode == 0 else "no PostgreSQL cluster"
ok(sq.get("backends") == 1, "60 dropped connections (30 after an error) are closed on GC: 1 backend left", sq,
   skip=skip)
ok(sq.get("closed_raises") is True, "a closed connection raises on use", sq, skip=skip)
cu = results.get("curl_gc") or {}
ok(cu and cu["after"] <= cu["before"] + 4, "250 transfers (150 failing) leave no descriptors behind", cu)

server.shutdown()
subprocess.run(["sh", "-c", '. "$1/tests/lib/pg.sh" && pg_stop "$2"', "sh", ROOT, pg_dir], capture_output=True)
shutil.rmtree(TMP, ignore_errors=True)
print("1..%d" % count)
