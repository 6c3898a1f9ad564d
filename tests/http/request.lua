-- request.lua: wf.http against tests/http/server.py: methods, query
-- encoding, JSON both ways, headers, auth, redirects, connection reuse.
local tap = require "tap"
local http = require "wf.http"
local json = require "wf.json"

return workflow {
  name = "http_request",
  params = { url = { required = true } },
  steps = {
    step "methods" {
      timeout = 20,
      run = function(ctx)
        local base = ctx.params.url
        local r = http.get(base .. "/echo")
        tap.is(r.status, 200, "GET answers 200")
        tap.is(r.json.method, "GET", "GET is sent as GET")
        tap.is(r.headers["content-type"], "application/json", "header names are lower-case")
        tap.ok(type(r.time) == "number" and r.time >= 0, "time is a number of seconds")
        tap.is(r.body:sub(1, 1), "{", "body is the raw text")
        for _, method in ipairs { "POST", "PUT", "PATCH", "DELETE", "OPTIONS" } do
          local resp = http.request { method = method:lower(), url = base .. "/echo" }
          tap.is(resp.json.method, method, method .. " is sent as " .. method)
        end
        local head = http.head(base .. "/echo")
        tap.is(head.status, 200, "HEAD answers")
        tap.is(head.body, "", "HEAD has no body")
      end,
    },
    step "query" {
      timeout = 20,
      run = function(ctx)
        local r = http.get(ctx.params.url .. "/echo", {
          query = { q = "a b&c=d/é", n = 5, flag = true, off = false, list = { "x", "y" } },
        })
        tap.is(r.json.query, "flag=true&list=x&list=y&n=5&q=a%20b%26c%3Dd%2F%C3%A9",
          "query keys sorted, values percent-encoded (UTF-8), arrays repeated, false left out")
        tap.is(r.json.args.q[1], "a b&c=d/é", "the server decodes the value exactly")
        local r2 = http.get(ctx.params.url .. "/echo?fixed=1#frag", { query = { more = "2" } })
        tap.is(r2.json.query, "fixed=1&more=2", "query appended to an existing one")
        tap.is(http.escape("a+b c~"), "a%2Bb%20c~", "http.escape keeps only unreserved characters")
      end,
    },
    step "json" {
      timeout = 20,
      run = function(ctx)
        local base = ctx.params.url
        local sent = { name = "tenant", count = 3, tags = { "a", "b" }, none = json.null }
        local r = http.post(base .. "/echo", sent)
        tap.is(r.json.headers["content-type"], "application/json", "JSON body sent with its content type")
        tap.is(r.json.json.name, "tenant", "JSON body arrives (string)")
        tap.is(r.json.json.count, 3, "JSON body arrives (integer)")
        tap.is(r.json.json.tags[2], "b", "JSON body arrives (array)")
        tap.is(r.json.json.none, json.null, "JSON null survives the round trip")
        local got = http.get(base .. "/json")
        tap.is(got.json.n, 42, "JSON response decoded (content type with charset)")
        tap.is(got.json.big, 9007199254740993, "64-bit integers exact")
        tap.is(got.json.nested.ok, true, "nested objects")
        local raw = http.put(base .. "/echo", "plain text", { headers = { ["Content-Type"] = "text/plain" } })
        tap.is(raw.json.body, "plain text", "a string is sent as the body as it is")
        tap.is(raw.json.method, "PUT", "put sends PUT")
        tap.is(raw.json.headers["content-type"], "text/plain", "caller's content type kept")
        local patched = http.patch(base .. "/echo", { op = "x" }, { headers = { ["Content-Type"] = "application/merge-patch+json" } })
        tap.is(patched.json.headers["content-type"], "application/merge-patch+json", "caller's JSON content type wins")
        local empty = http.post(base .. "/echo")
        tap.is(empty.json.body, "", "post without data sends an empty body")
        local bad = tap.raises(function() http.get(base .. "/badjson") end, "undecodable JSON raises")
        tap.is(type(bad) == "table" and bad.code, "invalid_json", "... with code invalid_json")
        local tolerated = http.get(base .. "/badjson", { raise = false })
        tap.is(tolerated.json, nil, "raise = false: json is nil, body kept")
        tap.is(tolerated.body, "{not json", "... body kept")
      end,
    },
    step "headers_and_auth" {
      timeout = 20,
      run = function(ctx)
        local base = ctx.params.url
        local r = http.get(base .. "/echo", { headers = { ["X-Request-Id"] = "abc-1", ["X-Number"] = 7 } })
        tap.is(r.json.headers["x-request-id"], "abc-1", "custom header sent")
        tap.is(r.json.headers["x-number"], "7", "number header sent as text")
        tap.like(r.json.headers["user-agent"], "^wfengine", "user agent names wfengine")
        local basic = http.get(base .. "/echo", { auth = { user = "ops", password = "s3cret-pw" } })
        tap.is(basic.json.headers.authorization, "Basic b3BzOnMzY3JldC1wdw==", "basic auth")
        local bearer = http.get(base .. "/echo", { bearer = "tok-123456" })
        tap.is(bearer.json.headers.authorization, "Bearer tok-123456", "bearer token")
        local err = tap.raises(function()
          http.get(base .. "/echo", { headers = { ["X-Bad"] = "a\r\nInjected: 1" } })
        end, "a header value with a line break is refused")
        tap.like(tostring(err), "line break", "... saying why")
        -- Every value that lands in a header: CR, LF and NUL are refused
        -- before anything is sent, with the field named.
        local injections = {
          { "header value", "header X%-Bad", { headers = { ["X-Bad"] = "a\nInjected: 1" } } },
          { "header value NUL", "header X%-Bad", { headers = { ["X-Bad"] = "a\0b" } } },
          { "header name", "header name", { headers = { ["X-Bad\r\nInjected"] = "1" } } },
          { "positional header", "headers%[2%]", { headers = { "X-Ok: 1", "X-A: 1\r\nInjected: 1" } } },
          { "positional header NUL", "headers%[1%]", { headers = { "X-A: 1\0" } } },
          { "idempotency_key", "idempotency_key", { idempotency_key = "k\r\nInjected: 1" } },
          { "bearer", "bearer", { bearer = "tok\r\nInjected: 1" } },
          { "user_agent", "user_agent", { user_agent = "ua\r\nInjected: 1" } },
          { "user_agent NUL", "user_agent", { user_agent = "ua\0x" } },
          { "auth password NUL", "auth.password", { auth = { user = "u", password = "p\0w" } } },
        }
        for _, case in ipairs(injections) do
          local label, field, opts = case[1], case[2], case[3]
          local ok, e = pcall(http.get, base .. "/echo", opts)
          tap.ok(not ok and type(e) == "table" and e.kind == "usage" and e.retryable == false,
            label .. ": refused as a usage error, not retryable")
          tap.like(tostring(type(e) == "table" and e.message or e), field, label .. ": the error names the field")
        end
      end,
    },
    step "redirects" {
      timeout = 20,
      run = function(ctx)
        local base = ctx.params.url
        local r = http.get(base .. "/redirect/3")
        tap.is(r.status, 200, "redirects followed")
        tap.is(r.json.path, "/echo", "... to the end of the chain")
        tap.like(r.url, "/echo$", "response url is the final one")
        tap.is(r.headers.location, nil, "headers are the final response's")
        local kept = http.post(base .. "/redirect/1?code=307", { a = 1 })
        tap.is(kept.json.method, "POST", "307 keeps the method")
        tap.is(kept.json.json.a, 1, "... and the body")
        local stay = http.get(base .. "/redirect/1", { follow = false, raise = false })
        tap.is(stay.status, 302, "follow = false returns the redirect")
        tap.is(stay.headers.location, "/echo", "... with its location")
        local loop = tap.raises(function() http.get(base .. "/redirect/5", { max_redirects = 2 }) end,
          "too many redirects raise")
        tap.is(type(loop) == "table" and loop.code, "too_many_redirects", "... code too_many_redirects")
      end,
    },
    step "reuse" {
      timeout = 20,
      run = function(ctx)
        local base = ctx.params.url
        local a = http.get(base .. "/echo")
        local b = http.get(base .. "/echo")
        tap.is(a.json.client_port, b.json.client_port, "the second request reuses the connection")
        tap.done()
      end,
    },
  },
}
