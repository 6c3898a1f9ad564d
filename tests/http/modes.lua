-- modes.lua: dry-run runs GET and HEAD and reports the rest; simulate sends
-- nothing. The .t counts what reached the server and reads the journal.
local tap = require "tap"
local http = require "wf.http"

return workflow {
  name = "http_modes",
  params = { url = { required = true } },
  steps = {
    step "modes" {
      run = function(ctx)
        local base = ctx.params.url
        if ctx.mode == "dry-run" then
          local g = http.get(base .. "/echo")
          tap.is(g.status, 200, "dry-run: GET is sent")
          tap.is(g.json.method, "GET", "... and answered")
          tap.is(http.head(base .. "/echo").status, 200, "dry-run: HEAD is sent")
          local p = http.post(base .. "/echo", { token = "tok-very-secret" }, { bearer = "tok-very-secret" })
          tap.is(p.status, 0, "dry-run: POST reported, status 0")
          tap.is(p.dry_run, true, "... dry_run = true")
          tap.is(type(p.json), "table", "... json = {}")
          local d = http.delete(base .. "/echo")
          tap.is(d.dry_run, true, "dry-run: DELETE reported")
          local both = http.parallel { { url = base .. "/echo" }, { method = "PUT", url = base .. "/echo", body = "x" } }
          tap.is(both[1].status, 200, "dry-run parallel: the GET runs")
          tap.is(both[2].dry_run, true, "dry-run parallel: the PUT is reported")
          tap.is(http.get(base .. "/echo", { insecure = true }).status, 200, "insecure GET runs (and is shown)")
        else
          local g = http.get(base .. "/echo")
          tap.is(g.status, 200, "simulate: GET gives 200")
          tap.is(g.body, "", "... empty body")
          tap.is(type(g.json), "table", "... json = {}")
          tap.is(g.simulated, true, "... simulated = true")
          local p = http.post(base .. "/echo", { a = 1 })
          tap.is(p.status, 200, "simulate: POST gives 200 too")
          local e = http.get(base .. "/status/500")
          tap.is(e.status, 200, "simulate: nothing is sent, so no error")
        end
        tap.done()
      end,
    },
  },
}
