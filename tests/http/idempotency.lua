-- idempotency.lua: idempotency_key = true gives the same key on every
-- attempt of a step and again when the run is resumed; a string is sent as
-- given. The run pauses once (on_failure = "pause") and the .t resumes it.
local tap = require "tap"
local http = require "wf.http"

local function keys(ctx, id)
  return http.get(ctx.params.url .. "/keys/" .. id).json.keys
end

return workflow {
  name = "http_idempotency",
  params = { url = { required = true }, marker = { required = true } },
  on_failure = "pause",
  steps = {
    step "pay" {
      retry = { attempts = 3, delay = 0, jitter = false },
      run = function(ctx)
        local r = http.post(ctx.params.url .. "/flaky/pay", { amount = 1 },
          { idempotency_key = true, query = { fail = 2 } })
        http.post(ctx.params.url .. "/flaky/second", nil, { idempotency_key = true, query = { fail = 0 } })
        http.post(ctx.params.url .. "/flaky/given", nil, { idempotency_key = "order-42", query = { fail = 0 } })
        http.post(ctx.params.url .. "/flaky/none", nil, { query = { fail = 0 } })
        return { tries = r.json.tries }
      end,
    },
    step "check" {
      run = function(ctx)
        local pay = keys(ctx, "pay")
        tap.is(#pay, 3, "the POST was tried three times (503, 503, 200)")
        local want = "wf-" .. ctx.run_id .. "-pay-1"
        tap.is(pay[1], want, "the key derives from run, step and counter")
        tap.ok(pay[2] == want and pay[3] == want, "every retry sent the same key")
        tap.is(keys(ctx, "second")[1], "wf-" .. ctx.run_id .. "-pay-2", "the next keyed request of the step counts on")
        tap.is(keys(ctx, "given")[1], "order-42", "a string key is sent as given")
        tap.is(keys(ctx, "none")[1], require("wf.json").null, "no key without idempotency_key")
      end,
    },
    step "charge" {
      run = function(ctx)
        http.post(ctx.params.url .. "/flaky/charge", { n = 1 }, { idempotency_key = true, query = { fail = 0 } })
        local f = io.open(ctx.params.marker)
        if not f then
          assert(io.open(ctx.params.marker, "w")):close()
          ctx:fail("stop here once; the test resumes the run", { retryable = false })
        end
        f:close()
      end,
    },
    step "check_resumed" {
      run = function(ctx)
        local charge = keys(ctx, "charge")
        tap.is(#charge, 2, "the step ran before and after the resume")
        local want = "wf-" .. ctx.run_id .. "-charge-1"
        tap.ok(charge[1] == want and charge[2] == want, "the resumed step sent the same key (" .. tostring(charge[2]) .. ")")
        tap.done()
      end,
    },
  },
}
