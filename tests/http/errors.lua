-- errors.lua: every error class of wf.http against tests/http/server.py:
-- statuses (retryable or not), Retry-After, raise = false, transport errors,
-- request timeouts that close the connection, the response size limit.
local tap = require "tap"
local http = require "wf.http"

local function catch(fn, ...)
  local ok, err = pcall(fn, ...)
  if ok then return nil end
  return err
end

return workflow {
  name = "http_errors",
  params = { url = { required = true }, closed_port = { required = true } },
  steps = {
    step "statuses" {
      timeout = 30,
      run = function(ctx)
        local base = ctx.params.url
        local err = catch(http.get, base .. "/status/404")
        tap.ok(type(err) == "table", "404 raises a table")
        err = err or {}
        tap.is(err.kind, "http", "kind http")
        tap.is(err.code, 404, "code is the status (integer)")
        tap.is(err.retryable, false, "404 is not retryable")
        tap.like(err.message, "GET http://127%.0%.0%.1:%d+/status/404: HTTP 404 Not Found",
          "message names method, url and status")
        tap.like(tostring(err), "HTTP 404", "tostring shows the message")
        tap.is(type(err.json) == "table" and err.json.error, "status 404", "error body decoded as JSON")
        local retryable = { [408] = true, [425] = true, [429] = true, [500] = true, [502] = true,
          [503] = true, [504] = true, [400] = false, [401] = false, [403] = false, [409] = false,
          [422] = false, [501] = false, [505] = false }
        local codes = {}
        for code in pairs(retryable) do codes[#codes + 1] = code end
        table.sort(codes)
        for _, code in ipairs(codes) do
          local e = catch(http.post, base .. "/status/" .. code, { x = 1 }) or {}
          tap.is(e.retryable, retryable[code], string.format("%d retryable = %s", code, retryable[code]))
        end
        local ok = catch(http.get, base .. "/status/204")
        tap.is(ok, nil, "204 does not raise")
        local r = http.get(base .. "/status/503", { raise = false })
        tap.is(r.status, 503, "raise = false returns the status")
        local long = string.rep("z", 5000)
        local big = catch(http.get, base .. "/status/500", { query = { body = long } }) or {}
        tap.is(#(big.body or ""), 2048, "error body truncated to 2048 bytes")
        tap.like(big.message, ": z+%.%.%.$", "message quotes the start of the body only")
      end,
    },
    step "retry_after" {
      timeout = 30,
      run = function(ctx)
        local base = ctx.params.url
        local e = catch(http.get, base .. "/status/429", { query = { retry_after = "7" } }) or {}
        tap.is(e.retry_after, 7, "Retry-After in seconds")
        tap.is(e.retryable, true, "429 retryable")
        local date = os.date("!%a, %d %b %Y %H:%M:%S GMT", os.time() + 30)
        local d = catch(http.get, base .. "/status/503", { query = { retry_after = date } }) or {}
        tap.ok(type(d.retry_after) == "number" and d.retry_after >= 25 and d.retry_after <= 31,
          "Retry-After as an HTTP date becomes seconds from now (" .. tostring(d.retry_after) .. ")")
        local past = os.date("!%a, %d %b %Y %H:%M:%S GMT", os.time() - 100)
        local p = catch(http.get, base .. "/status/503", { query = { retry_after = past } }) or {}
        tap.is(p.retry_after, 0, "a date in the past is 0")
        local none = catch(http.get, base .. "/status/503") or {}
        tap.is(none.retry_after, nil, "no Retry-After, no retry_after")
      end,
    },
    step "transport" {
      timeout = 30,
      run = function(ctx)
        local base = ctx.params.url
        local refused = catch(http.get, "http://127.0.0.1:" .. ctx.params.closed_port .. "/") or {}
        tap.is(refused.kind, "http", "connection refused: kind http")
        tap.is(refused.code, "couldnt_connect", "... code couldnt_connect")
        tap.is(refused.retryable, true, "... retryable")
        tap.like(refused.message, "GET http://127%.0%.0%.1:%d+/: .*onnect", "... curl's message")
        local dropped = catch(http.get, base .. "/drop") or {}
        tap.is(dropped.retryable, true, "connection closed without an answer: retryable")
        tap.is(dropped.code, "got_nothing", "... code got_nothing")
        local scheme = catch(http.get, "ftp://127.0.0.1/") or {}
        tap.is(scheme.retryable, false, "unsupported scheme: not retryable")
        local usage = catch(http.request, { method = "GET" }) or {}
        tap.like(tostring(usage.message), "url is required", "missing url is a usage error")
      end,
    },
    step "timeouts" {
      timeout = 30,
      run = function(ctx)
        local base = ctx.params.url
        local started = os.time()
        local e = catch(http.get, base .. "/hang/request_timeout", { timeout = 0.5 }) or {}
        tap.is(e.kind, "timeout", "a request timeout is kind timeout")
        tap.is(e.retryable, true, "... retryable")
        tap.ok(os.time() - started <= 3, "... and comes in time")
        local seen
        for _ = 1, 40 do
          seen = http.get(base .. "/observed/request_timeout").json
          if seen.closed then break end
          ctx:sleep(0.05)
        end
        tap.is(seen.closed, true, "the server saw the connection closed")
        local c = catch(http.get, base .. "/hang/connect", { connect_timeout = 0.3, timeout = 0.6 }) or {}
        tap.is(c.kind, "timeout", "timeout with a connect_timeout too")
      end,
    },
    step "size_limit" {
      timeout = 30,
      run = function(ctx)
        local base = ctx.params.url
        local e = catch(http.get, base .. "/big/2000000", { max_body = 1000000 }) or {}
        tap.is(e.code, "too_large", "a body over max_body (announced length) raises too_large")
        tap.is(e.retryable, false, "... not retryable")
        local c = catch(http.get, base .. "/big/3000000", { max_body = 1000000, query = { chunked = 1 } }) or {}
        tap.is(c.code, "too_large", "a chunked body over max_body raises too_large")
        local fits = http.get(base .. "/big/1000000", { max_body = 1000000 })
        tap.is(#fits.body, 1000000, "a body of exactly max_body is returned")
        local big = http.get(base .. "/big/5000000", { query = { chunked = 1 } })
        tap.is(#big.body, 5000000, "5 MB under the default limit")
        tap.done()
      end,
    },
  },
}
