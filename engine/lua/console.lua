-- console.lua: `wfengine serve`, the web console: the embedded front end
-- (engine/console/) and the HTTP API it uses (docs/console.md). HTTP is
-- libh2o's (wf.httpd); every request is a task on the engine's loop. What
-- the console knows of runs comes from console_state.lua.
local core = require "wfengine.core"
local dsl = require "wfengine.dsl"
local params = require "wfengine.params"
local sched = require "wfengine.sched"
local json = require "wf.json"
local httpd = require "wf.httpd"
local cs = require "wfengine.console_state"

local console = {}

local KEEPALIVE = 15
local CLOSED_CHECK = 1 -- seconds: how soon a stream notices its client went away

-- No inline script or style, nothing from elsewhere, no framing.
local CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
  .. "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

local function headers(content_type, extra)
  local h = { ["content-type"] = content_type, ["content-security-policy"] = CSP,
    ["x-content-type-options"] = "nosniff", ["referrer-policy"] = "no-referrer",
    ["cache-control"] = "no-store", ["x-frame-options"] = "DENY" }
  for k, v in pairs(extra or {}) do h[k] = v end
  return h
end

local function reply(req, status, value)
  req:respond(status, headers("application/json; charset=utf-8"), json.encode(value) .. "\n")
end

local function refuse(req, status, message)
  reply(req, status, { error = message })
end

-- ---- workflows ----------------------------------------------------------------

local function workflow_file(self, name)
  if type(name) ~= "string" or not name:match("^[%w_-]+$") then return nil end
  local path = self.workflows .. "/" .. name .. ".lua"
  local f = io.open(path, "rb")
  if not f then return nil end
  f:close()
  return path
end

local function workflow_names(self)
  local names = {}
  for _, entry in ipairs(core.listdir(self.workflows) or {}) do
    local name = entry:match("^([%w_-]+)%.lua$")
    if name then names[#names + 1] = name end
  end
  table.sort(names)
  return names
end

local function param_schema(wf)
  local out = {}
  for _, name in ipairs(params.sorted(wf)) do
    local spec = wf.params[name]
    out[#out + 1] = { name = name, doc = spec.doc, required = spec.required or false,
      secret = spec.secret or false, pattern = spec.pattern, env = spec.env,
      check = spec.check ~= nil, default = (not spec.secret) and spec.default or nil }
  end
  return json.array(out)
end

local function step_list(wf, estimates)
  local out = {}
  for _, s in ipairs(wf.steps) do
    local e = estimates[s.id]
    out[#out + 1] = { index = s.index, id = s.id, title = s.title, group = s.group, doc = s.doc,
      confirm = s.confirm, irreversible = s.irreversible or false, compensate = s.compensate ~= nil,
      estimate = e }
  end
  return json.array(out)
end

local api = {}

function api.workflows(self, req)
  local out = {}
  for _, name in ipairs(workflow_names(self)) do
    local wf, err = dsl.load(self.workflows .. "/" .. name .. ".lua")
    out[#out + 1] = wf and { name = name, title = wf.name, description = wf.description,
      steps = #wf.steps } or { name = name, error = err }
  end
  reply(req, 200, json.array(out))
end

function api.workflow(self, req, name)
  local file = workflow_file(self, name)
  if not file then return refuse(req, 404, "no workflow " .. tostring(name)) end
  local wf, err = dsl.load(file)
  if not wf then return refuse(req, 422, err) end
  reply(req, 200, { name = name, title = wf.name, description = wf.description,
    params = param_schema(wf), steps = step_list(wf, self.state:estimates(wf.name)) })
end

-- Checks the form's values as `wfengine run` will (pattern, check,
-- required): returns wf, given (non-secret), secrets (env -> value) or
-- nil, message.
local function validate(self, name, values)
  local file = workflow_file(self, name)
  if not file then return nil, "no workflow " .. tostring(name) end
  local wf, err = dsl.load(file)
  if not wf then return nil, err end
  if type(values) ~= "table" then values = {} end
  local list, given, secrets = {}, {}, {}
  for k, v in pairs(values) do
    if type(k) ~= "string" or not wf.params[k] then return nil, "unknown parameter '" .. tostring(k) .. "'" end
    if type(v) ~= "string" and type(v) ~= "number" and type(v) ~= "boolean" then
      return nil, "parameter '" .. k .. "': not a value"
    end
    if v ~= "" then
      list[#list + 1] = k .. "=" .. tostring(v)
      local spec = wf.params[k]
      if spec.secret then
        if not spec.env then
          return nil, "secret parameter '" .. k .. "' has no env: give it in the server's config"
        end
        secrets[spec.env] = tostring(v)
      else
        given[k] = v
      end
    end
  end
  local config = params.load_config(self.config) or {}
  local ok, _, problem = params.resolve(wf, list, config, self.config)
  if not ok then return nil, problem end
  return { file = file, wf = wf, given = given, secrets = secrets }
end

function api.validate(self, req, name, body)
  local v, err = validate(self, name, body.params)
  reply(req, 200, { ok = v ~= nil, error = err })
end

local MODES = { simulate = true, ["dry-run"] = true, run = true }

function api.start(self, req, _, body)
  if not MODES[body.mode] then return refuse(req, 400, "mode must be simulate, dry-run or run") end
  local v, err = validate(self, body.workflow, body.params)
  if not v then return refuse(req, 422, err) end
  local fail_at = type(body.fail_at) == "table" and body.fail_at or {}
  local run_id, start_err = self.state:start { file = v.file, params = v.given, secrets = v.secrets,
    mode = body.mode, fail_at = fail_at }
  if not run_id then return refuse(req, 422, start_err) end
  reply(req, 201, { run_id = run_id })
end

function api.runs(self, req, _, _, query)
  reply(req, 200, json.array(self.state:list_runs(query)))
end

function api.run(self, req, id)
  local rec, err = self.state:run(id)
  if not rec then return refuse(req, 404, err) end
  reply(req, 200, rec)
end

local function continuing(verb)
  return function(self, req, id)
    local ok, err = self.state:continue(id, verb)
    if not ok then return refuse(req, 409, err) end
    reply(req, 202, { run_id = id })
  end
end
api.resume = continuing("resume")
api.rollback = continuing("rollback")

function api.pause(self, req, id)
  local ok, err = self.state:interrupt(id)
  if not ok then return refuse(req, 409, err) end
  reply(req, 202, { run_id = id })
end

function api.confirm(self, req, id, body)
  local ok, err = self.state:answer(id, body.step, body.answer)
  if not ok then return refuse(req, 409, err) end
  reply(req, 200, { run_id = id, step = body.step, answer = body.answer })
end

-- ---- Server-Sent Events -----------------------------------------------------------

local function sse_event(ev)
  return "id: " .. tostring(ev.seq) .. "\ndata: " .. json.encode(ev) .. "\n\n"
end

local function progress_event(text)
  return "event: progress\ndata: " .. text .. "\n\n"
end

-- Streams the run's events after Last-Event-ID (or ?after=), then what its
-- follower (console_state's State:watch, one per run however many streams
-- watch it) sees, until the run is over and no process holds it.
function api.events(self, req, id, _, query, info)
  local f, err = self.state:watch(id)
  if not f then return refuse(req, 404, err) end
  local after = tonumber(info.headers["last-event-id"] or query.after) or 0
  req:start(200, headers("text/event-stream", { ["x-accel-buffering"] = "no" }))
  req:send(": wfengine\nretry: 1000\n\n")
  local next_at, progress_seen, quiet_since = 1, 0, core.time()
  while not req:closed() do
    local out = {}
    f.sse = f.sse or {} -- each event encoded once for every stream of the run
    for i = next_at, #f.events do
      local ev = f.events[i]
      if ev.seq > after then
        f.sse[i] = f.sse[i] or sse_event(ev)
        out[#out + 1] = f.sse[i]
        after = ev.seq
      end
    end
    next_at = #f.events + 1
    if f.progress_n ~= progress_seen then
      out[#out + 1] = progress_event(f.progress)
      progress_seen = f.progress_n
    end
    if f.over then out[#out + 1] = "event: end\ndata: {}\n\n" end
    if #out > 0 then
      if not req:send(table.concat(out)) or f.over then break end
      quiet_since = core.time()
    elseif core.time() - quiet_since > KEEPALIVE then
      if not req:send(": keepalive\n\n") then break end
      quiet_since = core.time()
    end
    if next_at > #f.events and f.progress_n == progress_seen and not f.over then
      self.state:wait(f, CLOSED_CHECK)
    end
  end
  self.state:unwatch(f)
  req:finish()
end

-- ---- routing, authentication, CSRF ------------------------------------------------

local function decode_query(text)
  local out = {}
  for pair in (text or ""):gmatch("[^&]+") do
    local k, v = pair:match("^([^=]*)=?(.*)$")
    local function unescape(s)
      return (s:gsub("+", " "):gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
    end
    out[unescape(k)] = unescape(v)
  end
  return out
end

local ROUTES = {
  { "GET", "^/api/workflows$", api.workflows },
  { "GET", "^/api/workflows/([%w_-]+)$", api.workflow },
  { "POST", "^/api/workflows/([%w_-]+)/validate$", api.validate },
  { "GET", "^/api/runs$", api.runs },
  { "POST", "^/api/runs$", api.start },
  { "GET", "^/api/runs/([%w._-]+)$", api.run },
  { "GET", "^/api/runs/([%w._-]+)/events$", api.events },
  { "POST", "^/api/runs/([%w._-]+)/resume$", api.resume },
  { "POST", "^/api/runs/([%w._-]+)/rollback$", api.rollback },
  { "POST", "^/api/runs/([%w._-]+)/pause$", api.pause },
  { "POST", "^/api/runs/([%w._-]+)/confirm$", api.confirm },
}

-- Compares in time independent of where the texts differ.
local function same_secret(a, b)
  if type(a) ~= "string" or #a ~= #b then return false end
  local diff = 0
  for i = 1, #a do diff = diff | (a:byte(i) ~ b:byte(i)) end
  return diff == 0
end

local function authorized(self, info)
  local given = (info.headers.authorization or ""):match("^Bearer%s+(%S+)$")
  return same_secret(given, self.token)
end

-- A state-changing request must come from the console's own page: a JSON
-- body with the X-WFEngine-CSRF header (a cross-site form cannot set
-- either without a CORS preflight, which is never granted), and an Origin,
-- when the browser sends one, of this server.
local function csrf_problem(info)
  local h = info.headers
  local authority = info.authority ~= "" and info.authority or h.host
  if h["x-wfengine-csrf"] ~= "1" then return "missing the X-WFEngine-CSRF: 1 header" end
  if not (h["content-type"] or ""):match("^application/json") then return "the body must be application/json" end
  local origin = h.origin
  if origin and origin ~= "null" then
    local host = origin:match("^https?://(.+)$")
    if host ~= authority then return "cross-origin request refused (Origin " .. origin .. ")" end
  end
end

local STATIC = { ["/"] = "index.html", ["/index.html"] = "index.html", ["/app.js"] = "app.js",
  ["/app.css"] = "app.css" }
local TYPES = { html = "text/html; charset=utf-8", js = "text/javascript; charset=utf-8",
  css = "text/css; charset=utf-8" }

local function serve_static(req, path)
  local name = STATIC[path]
  local body = name and require("wfengine.assets")[name]
  if not body then return refuse(req, 404, "not found") end
  req:respond(200, headers(TYPES[name:match("%.(%w+)$")], { ["cache-control"] = "no-cache" }), body)
end

local function route(self, req, info)
  local path, query = info.path:match("^([^?]*)%??(.*)$")
  if not path:match("^/api/") then
    if info.method ~= "GET" and info.method ~= "HEAD" then return refuse(req, 405, "method not allowed") end
    return serve_static(req, path)
  end
  if not authorized(self, info) then
    return refuse(req, 401, "missing or wrong token (Authorization: Bearer TOKEN)")
  end
  local body = {}
  if info.method == "POST" then
    local problem = csrf_problem(info)
    if problem then return refuse(req, 403, problem) end
    local ok, decoded = pcall(json.decode, info.body ~= "" and info.body or "{}")
    if not ok or type(decoded) ~= "table" then return refuse(req, 400, "the body is not a JSON object") end
    body = decoded
  end
  for _, r in ipairs(ROUTES) do
    local capture = path:match(r[2])
    if capture and info.method == r[1] then
      return r[3](self, req, capture ~= path and capture or nil, body, decode_query(query), info)
    end
  end
  refuse(req, 404, "no such API: " .. info.method .. " " .. path)
end

local function handle(self, req, info)
  local ok, err = xpcall(route, debug.traceback, self, req, info)
  if not ok then
    io.stderr:write("wfengine serve: internal error: ", core.redact(tostring(err)), "\n")
    refuse(req, 500, "internal error (see the server's log)")
  end
end

-- ---- start-up ---------------------------------------------------------------------

local function parse_listen(text)
  local host, port = text:match("^%[([%x:]+)%]:(%d+)$")
  if not host then host, port = text:match("^([^:]+):(%d+)$") end
  if not host then return nil end
  return host, tonumber(port)
end

local function loopback(host)
  return host:match("^127%.") ~= nil or host == "::1" or host == "localhost"
end

local function read_token(args)
  if args.token_file then
    local text, err = require("wfengine.files").read_file(args.token_file)
    if not text then return nil, "--token-file: " .. tostring(err) end
    local token = text:match("^%s*(%S+)%s*$")
    if not token or #token < 16 then
      return nil, "--token-file " .. args.token_file .. ": the token must be one word of 16 characters or more"
    end
    return token
  end
  local env = os.getenv("WFENGINE_TOKEN")
  if env and env ~= "" then
    if #env < 16 then return nil, "WFENGINE_TOKEN must be 16 characters or more" end
    return env
  end
  return cs.random_hex(24), true
end

-- Returns the exit code.
function console.serve(args, fail)
  local host, port = parse_listen(args.listen or "127.0.0.1:8080")
  if not host then return fail("--listen takes ADDRESS:PORT (e.g. 127.0.0.1:8080), not '%s'", args.listen) end
  if host == "localhost" then host = "127.0.0.1" end
  if not loopback(host) and not args.tls_cert then
    return fail("--listen %s is not a loopback address: give --tls-cert and --tls-key (and keep the token "
      .. "secret)", args.listen)
  end
  local token, generated = read_token(args)
  if not token then return fail("%s", generated) end
  local state, state_err = cs.open { state = args.state,
    config = args.config and (core.realpath(args.config) or args.config),
    exe = core.realpath("/proc/self/exe") }
  if not state then return fail("%s", state_err) end
  if args.config then
    local ok, config_err = params.load_config(args.config)
    if not ok then return fail("%s", config_err) end
  end
  local workflows = args.workflows or "."
  if not core.listdir(workflows) then return fail("--workflows %s: not a readable directory", workflows) end
  local server, err = httpd.listen(host, port, args.tls_cert, args.tls_key)
  if not server then return fail("%s", err) end
  local self = { state = state, workflows = workflows, token = token,
    config = args.config and (core.realpath(args.config) or args.config) }
  local scheme = args.tls_cert and "https" or "http"
  local shown_host = host:find(":") and ("[" .. host .. "]") or host
  io.stdout:write(string.format("wfengine serve: %s://%s:%d/ (state %s, workflows %s)\n", scheme,
    shown_host, port, state.dir, workflows))
  if generated then
    io.stdout:write(string.format("token (generated; set WFENGINE_TOKEN or --token-file to keep one): %s\n", token))
    io.stdout:write(string.format("open: %s://%s:%d/#token=%s\n", scheme, shown_host, port, token))
  end
  io.stdout:flush()
  local main = sched.spawn(function()
    while true do
      local req, info = server:accept()
      sched.spawn(handle, self, req, info)
    end
  end)
  sched.run(main)
  sched.cancel_all()
  io.stdout:write("wfengine serve: stopped\n")
  return core.EXIT.SUCCEEDED
end

return console
