-- http.lua: module "wf.http", the friendly Lua side of HTTP for workflows.
-- Uses the C primitives of "wf.http.core" (http.c: transfers on the engine's
-- curl multi) and "wf.json" when bodies are JSON. Here: argument sugar,
-- shorthands, query encoding, JSON both ways, idempotency keys, the dry-run
-- and simulate stand-ins, and structured errors for statuses >= 400.
local core = require "wf.http.core"

local http = {}

-- Module-wide defaults; a request's own fields win.
http.defaults = {
  timeout = 120,                  -- seconds for the whole request (0: none)
  connect_timeout = 15,           -- seconds to connect
  max_body = 64 * 1024 * 1024,    -- bytes of response body before failing
  follow = true,                  -- follow redirects (at most max_redirects)
  max_redirects = 10,
  error_body = 2048,              -- bytes of body kept in an error
  user_agent = "wfengine",
}

local RETRYABLE_STATUS = { [408] = true, [425] = true, [429] = true, [500] = true,
  [502] = true, [503] = true, [504] = true }

local json_module
local function json()
  if json_module == nil then
    local ok, module = pcall(require, "wf.json")
    json_module = ok and module or false
  end
  return json_module or nil
end

local function fail_usage(message)
  error(core.error("usage", nil, false, message), 3)
end

-- Every value that ends up in a request header: CR or LF would start a
-- header (or a request) of the caller's text, NUL cuts the C string.
local function header_safe(field, value)
  if value:find("[%z\r\n]") then
    fail_usage("http request: " .. field .. " contains a line break or NUL byte (refused in headers)")
  end
  return value
end

-- Query strings: keys sorted so a request is the same every time; an array
-- value repeats the key; booleans and numbers are written as Lua does.
local function encode_query(query)
  if type(query) == "string" then return query end
  local keys = {}
  for key in pairs(query) do keys[#keys + 1] = tostring(key) end
  table.sort(keys)
  local parts = {}
  for _, key in ipairs(keys) do
    local value = query[key]
    if value == nil then value = query[tonumber(key)] end
    local values = type(value) == "table" and value or { value }
    for _, v in ipairs(values) do
      if v ~= false then
        parts[#parts + 1] = core.escape(key) .. "=" .. core.escape(v == true and "true" or tostring(v))
      end
    end
  end
  return table.concat(parts, "&")
end

local function with_query(url, query)
  if query == nil then return url end
  local encoded = encode_query(query)
  if encoded == "" then return url end
  local base, fragment = url:match("^([^#]*)(#.*)$")
  base, fragment = base or url, fragment or ""
  return base .. (base:find("?", 1, true) and "&" or "?") .. encoded .. fragment
end

-- Idempotency keys: the same (run, step, n-th keyed request of the step) on
-- every attempt and on resume, so a retried POST is recognised as the same.
local key_counters = {}
local function derive_idempotency_key()
  local run_id, step_id, attempt = core.current_step()
  if not run_id then
    fail_usage("idempotency_key = true needs a running step (give a string instead)")
  end
  local slot = run_id .. "/" .. step_id
  local counter = key_counters[slot]
  if not counter or counter.attempt ~= attempt then
    counter = { attempt = attempt, n = 0 }
    key_counters[slot] = counter
  end
  counter.n = counter.n + 1
  return string.format("wf-%s-%s-%d", run_id, step_id, counter.n)
end

local function header_name_set(list)
  local set = {}
  for _, line in ipairs(list) do
    local name = line:match("^([^:]+):")
    if name then set[name:lower()] = true end
  end
  return set
end

local function user_agent(value)
  if value == nil or value == false then return nil end
  return header_safe("user_agent", tostring(value))
end

-- Registers a credential of a request as a secret (core.add_secret), or
-- refuses the request when it is too short to redact safely.
local function secret(value, what)
  if value == nil then return end
  local ok, why = core.add_secret(tostring(value))
  if not ok then fail_usage("http request: " .. what .. " is " .. why) end
end

-- Basic authentication: the password and the header value curl builds from
-- it (base64 of user:password), which a server may echo back in a body.
local function basic_secret(user, password)
  if password == nil then return end
  secret(password, "the password")
  secret(core.base64(tostring(user or "") .. ":" .. tostring(password)), "the Basic credentials")
end

local function percent_decoded(text)
  return (text:gsub("%%(%x%x)", function(hex) return string.char(tonumber(hex, 16)) end))
end

-- Turns request options into the spec core.perform takes, plus what the
-- response handling needs (method, url, raise, body preview).
local function prepare(opts)
  if type(opts) ~= "table" then fail_usage("http request: options must be a table") end
  local url = opts.url
  if type(url) ~= "string" or url == "" then fail_usage("http request: url is required") end
  local method = (opts.method or "GET")
  if type(method) ~= "string" or not method:match("^%a+$") then
    fail_usage("http request: bad method " .. tostring(method))
  end
  method = method:upper()
  url = with_query(url, opts.query)

  -- A password inside the URL (scheme://user:password@host) is a secret too.
  local userinfo = url:match("^%a[%w+.-]*://([^/?#@]*)@")
  local url_user, url_password = (userinfo or ""):match("^([^:]*):(.*)$")
  if url_password and url_password ~= "" then
    secret(url_password, "the password in the URL")
    basic_secret(percent_decoded(url_user), percent_decoded(url_password))
  end

  local headers = {}
  if opts.headers then
    if type(opts.headers) ~= "table" then fail_usage("http request: headers must be a table") end
    local names = {}
    for name in pairs(opts.headers) do
      if type(name) == "string" then names[#names + 1] = name end
    end
    table.sort(names)
    for _, name in ipairs(names) do
      local value = opts.headers[name]
      if value ~= nil and value ~= false then
        if name:find("[%z\r\n:]") or name == "" then
          local shown = string.format("%q", name):gsub("\\\n", "\\n")
          fail_usage("http request: header name " .. shown .. " contains a line break, NUL or colon")
        end
        value = header_safe("header " .. name, tostring(value))
        if name:lower() == "authorization" or name:lower() == "proxy-authorization" then
          secret(value, "the " .. name .. " header")
          secret(value:match("^%S+%s+(.+)$"), "the credentials in the " .. name .. " header")
        end
        headers[#headers + 1] = name .. ": " .. value
      end
    end
    for i, line in ipairs(opts.headers) do
      headers[#headers + 1] = header_safe("headers[" .. i .. "]", tostring(line))
    end
  end
  local present = header_name_set(headers)

  local body, preview = opts.body, nil
  if opts.json ~= nil then
    if body ~= nil then fail_usage("http request: give json or body, not both") end
    local j = json()
    if not j then fail_usage("http request: json bodies need the wf.json module") end
    -- Keys sorted: Lua's table order differs from one process to the next,
    -- and a retried or resumed request must send the same bytes under its
    -- Idempotency-Key (services compare the body).
    body = j.encode(opts.json, { sort_keys = true })
    if not present["content-type"] then headers[#headers + 1] = "Content-Type: application/json" end
  elseif body ~= nil and type(body) ~= "string" then
    fail_usage("http request: body must be a string (use json = ... for tables)")
  end
  if body then preview = body end
  if not present["accept"] then headers[#headers + 1] = "Accept: application/json, */*;q=0.5" end

  local key = opts.idempotency_key
  if key == true then key = derive_idempotency_key() end
  if key then
    key = header_safe("idempotency_key", tostring(key))
    headers[#headers + 1] = "Idempotency-Key: " .. key
  end

  local user, password, bearer
  if opts.auth then
    user = opts.auth.user or opts.auth[1]
    password = opts.auth.password or opts.auth[2]
    -- Basic auth is base64 on the wire; only NUL (cuts the C string) harms.
    if type(user) == "string" and user:find("%z") then fail_usage("http request: auth.user contains a NUL byte") end
    if type(password) == "string" and password:find("%z") then
      fail_usage("http request: auth.password contains a NUL byte")
    end
    basic_secret(user, password)
  end
  if opts.bearer then
    bearer = tostring(opts.bearer)
    header_safe("bearer", bearer)
    secret(bearer, "the bearer token")
  end

  local defaults = http.defaults
  local function pick(name)
    if opts[name] ~= nil then return opts[name] end
    return defaults[name]
  end
  local spec = {
    method = method, url = url, headers = headers, body = body,
    timeout = pick("timeout"), connect_timeout = pick("connect_timeout"),
    follow = pick("follow"), max_redirects = pick("max_redirects"),
    max_body = pick("max_body"), user_agent = user_agent(pick("user_agent")),
    insecure = opts.insecure == true,
    user = user, password = password, bearer = bearer,
  }
  return spec, { method = method, url = url, raise = opts.raise ~= false, preview = preview,
    idempotency_key = key }
end

-- Lower-case header names; a repeated header's values are joined with ", ".
local function parse_headers(raw)
  local headers, reason = {}, nil
  for line in raw:gmatch("[^\r\n]+") do
    local name, value = line:match("^([^:%s]+):%s*(.-)%s*$")
    if name then
      name = name:lower()
      headers[name] = headers[name] and (headers[name] .. ", " .. value) or value
    elseif not reason then
      reason = line:match("^HTTP/%S+%s+%d+%s+(.-)%s*$")
    end
  end
  return headers, reason
end

local function is_json(content_type)
  if not content_type then return false end
  local media = content_type:lower():match("^%s*([^;%s]+)")
  return media == "application/json" or (media or ""):match("%+json$") ~= nil
end

-- Seconds to wait from a Retry-After value: a delay in seconds or an HTTP date.
local function retry_after_seconds(value)
  if not value then return nil end
  local seconds = value:match("^%s*(%d+)%s*$")
  if seconds then return tonumber(seconds) end
  local when = core.getdate(value)
  if when then return math.max(0, when - core.time()) end
  return nil
end

local function one_line(text, limit)
  text = text:gsub("%s+", " ")
  if #text > limit then text = text:sub(1, limit) .. "..." end
  return text
end

local function response_from(result, info)
  if result.error then return nil, result.error end
  local headers, reason = parse_headers(result.headers)
  local response = { status = result.status, headers = headers, body = result.body,
    time = result.time, url = result.url, reason = reason }
  local decode_error
  if is_json(headers["content-type"]) and result.body:find("%S") then
    local j = json()
    if j then
      local ok, value = pcall(j.decode, result.body)
      if ok then response.json = value else decode_error = value end
    end
  end
  if response.status >= 400 and info.raise then
    local status = response.status
    local message = string.format("%s %s: HTTP %d%s", info.method, info.url, status,
      reason and reason ~= "" and (" " .. reason) or "")
    if result.body:find("%S") then message = message .. ": " .. one_line(result.body, 200) end
    local err = core.error("http", nil, RETRYABLE_STATUS[status] == true, message)
    err.code = status
    err.status = status
    err.body = #result.body > http.defaults.error_body
        and result.body:sub(1, http.defaults.error_body) or result.body
    err.json = response.json
    err.headers = headers
    err.method, err.url = info.method, info.url
    err.retry_after = retry_after_seconds(headers["retry-after"])
    return nil, err
  end
  if decode_error and info.raise then
    local err = core.error("http", "invalid_json", false, string.format(
      "%s %s: response says JSON but does not decode: %s", info.method, info.url,
      tostring(decode_error)))
    err.status, err.body = response.status, result.body:sub(1, http.defaults.error_body)
    return nil, err
  end
  return response
end

local function stand_in(mode, info)
  if mode == "simulate" then
    return { status = 200, headers = {}, body = "", json = {}, time = 0, url = info.url,
      simulated = true }
  end
  return { status = 0, headers = {}, body = "", json = {}, time = 0, url = info.url,
    dry_run = true }
end

local function report(info)
  -- the engine shows level "would" as "would <line>"
  local line = info.method .. " " .. info.url
  if info.preview and info.preview ~= "" then
    line = line .. " " .. one_line(info.preview, 1000)
  end
  core.log("would", line)
end

-- Runs the requests (option tables) together and returns the responses in
-- order; raises the first error in list order (with err.index).
local function run_all(list, limit)
  local mode = core.mode()
  local infos, responses, send, positions = {}, {}, {}, {}
  for i, opts in ipairs(list) do
    local spec, info = prepare(opts)
    infos[i] = info
    if spec.insecure then
      core.log("warn", "TLS certificate verification disabled (insecure = true) for " .. info.url)
    end
    if mode == "simulate" then
      responses[i] = stand_in(mode, info)
    elseif mode == "dry-run" and info.method ~= "GET" and info.method ~= "HEAD" then
      report(info)
      responses[i] = stand_in(mode, info)
    else
      send[#send + 1] = spec
      positions[#positions + 1] = i
    end
  end
  local errors = {}
  if #send > 0 then
    local results = core.perform(send, limit or 0)
    for n, result in ipairs(results) do
      local i = positions[n]
      local response, err = response_from(result, infos[i])
      responses[i] = response
      if err then errors[i] = err end
    end
  end
  for i = 1, #list do
    local err = errors[i]
    if err then
      if #list > 1 then err.index = i end
      error(err, 0)
    end
  end
  return responses
end

function http.request(opts)
  return run_all({ opts })[1]
end

-- http.parallel{ req, req, ..., concurrency = N }: at most N at once (all
-- at once when absent); responses in the order of the requests.
function http.parallel(list)
  if type(list) ~= "table" then fail_usage("http.parallel: give a list of requests") end
  local limit = list.concurrency or list.limit
  if limit ~= nil and (math.type(limit) ~= "integer" or limit < 1) then
    fail_usage("http.parallel: concurrency must be a positive integer")
  end
  if #list == 0 then return {} end
  return run_all(list, limit)
end

local function merged(opts, fields)
  local out = {}
  if opts ~= nil then
    if type(opts) ~= "table" then fail_usage("http: options must be a table") end
    for k, v in pairs(opts) do out[k] = v end
  end
  for k, v in pairs(fields) do out[k] = v end
  return out
end

function http.get(url, opts) return http.request(merged(opts, { method = "GET", url = url })) end
function http.head(url, opts) return http.request(merged(opts, { method = "HEAD", url = url })) end
function http.delete(url, opts) return http.request(merged(opts, { method = "DELETE", url = url })) end

-- post/put/patch(url, data, opts): a string is sent as the body as it is,
-- anything else (a table, wf.json.null, a number) as JSON.
local function with_data(method)
  return function(url, data, opts)
    local fields = { method = method, url = url }
    local request = merged(opts, fields)
    if type(data) == "string" then request.body = data
    elseif data ~= nil then request.json = data end
    return http.request(request)
  end
end
http.post = with_data("POST")
http.put = with_data("PUT")
http.patch = with_data("PATCH")

-- Exposed for tests and for workflows building URLs by hand.
http.escape = core.escape
http.encode_query = encode_query

return http
