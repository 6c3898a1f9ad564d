-- concurrency.lua: http.parallel really concurrent, results in order, the
-- concurrency limit, the first error in list order; then a step whose
-- timeout abandons a request (the .t checks the server saw it closed).
local tap = require "tap"
local http = require "wf.http"

return workflow {
  name = "http_concurrency",
  params = { url = { required = true } },
  steps = {
    step "parallel" {
      timeout = 30,
      run = function(ctx)
        local base = ctx.params.url
        local list = {}
        for i = 1, 10 do list[i] = { url = base .. "/delay/0.5", query = { i = i } } end
        local started = require("wf.http.core").now()
        local responses = http.parallel(list)
        local took = require("wf.http.core").now() - started
        tap.is(#responses, 10, "ten responses")
        local in_order = true
        for i, r in ipairs(responses) do
          if r.status ~= 200 or not r.url:find("i=" .. i .. "$") then in_order = false end
        end
        tap.ok(in_order, "responses in the order of the requests")
        tap.ok(took < 3, string.format("10 x 0.5 s requests together take %.2f s (< 3 s)", took))
        tap.diag(string.format("parallel: %.2f s", took))

        list.concurrency = 2
        for i = 1, 4 do list[i] = { url = base .. "/delay/0.5" } end
        for i = 5, 10 do list[i] = nil end
        started = require("wf.http.core").now()
        responses = http.parallel(list)
        took = require("wf.http.core").now() - started
        tap.is(#responses, 4, "four responses with concurrency = 2")
        tap.ok(took >= 0.9, string.format("concurrency = 2 runs them two at a time (%.2f s >= 0.9 s)", took))

        local ok, err = pcall(http.parallel, {
          { url = base .. "/echo" }, { url = base .. "/status/404" }, { url = base .. "/status/500" },
        })
        tap.ok(not ok, "a failing member raises")
        tap.is(type(err) == "table" and err.index, 2, "... the first failure in list order, with its index")
        local mixed = http.parallel {
          { url = base .. "/echo" }, { url = base .. "/status/404", raise = false },
        }
        tap.is(mixed[2].status, 404, "raise = false per request")
        tap.is(#http.parallel {}, 0, "an empty list gives an empty list")
        tap.raises(function() http.parallel { { url = base }, concurrency = 0 } end,
          "concurrency must be positive")
        tap.done()
      end,
    },
    step "abandoned" {
      timeout = 1,
      run = function(ctx)
        http.get(ctx.params.url .. "/hang/step_timeout", { timeout = 0 })
      end,
    },
  },
}
