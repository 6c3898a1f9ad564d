-- service.lua: the HTTP client every service module (tenants, superid,
-- storage, apps, iis) is built on. Uses wf.http and wf.json. Base URL and
-- bearer token come from ctx.config.services.<name>; every change carries an
-- Idempotency-Key "<run_id>:<step>[:undo]:<METHOD path>", the same on every
-- attempt and on resume, so a retried or resumed step never acts twice, and
-- a compensation ("undo") never replays its step's answer.
local http = require "wf.http"
local json = require "wf.json"

local service = {}

-- Seconds one request may take (services.<name>.timeout overrides). Without it a
-- service that accepts the connection and never answers holds the step until the
-- step's own timeout (300 s, up to 1900 s); with it the request fails as a
-- retryable timeout and the step's retry policy applies.
service.TIMEOUT = 60

local Client = {}
Client.__index = Client

-- service.client(ctx, name, undo) -> client for ctx.config.services[name].
function service.client(ctx, name, undo)
  local services = ctx.config.services
  local conf = services and services[name]
  if (type(conf) ~= "table" or type(conf.url) ~= "string") and ctx.mode == "simulate" then
    conf = { url = "http://" .. name .. ".simulated.invalid" } -- no config needed to rehearse
  elseif type(conf) ~= "table" or type(conf.url) ~= "string" then
    ctx:fail(string.format("config: services.%s.url is missing", name), { retryable = false })
  end
  return setmetatable({ ctx = ctx, name = name, base = (conf.url:gsub("/+$", "")),
    token = conf.token, undo = undo, timeout = tonumber(conf.timeout) or service.TIMEOUT }, Client)
end

function Client:key(method, path)
  local parts = { self.ctx.run_id, self.ctx.step }
  if self.undo then parts[#parts + 1] = "undo" end
  parts[#parts + 1] = method .. " " .. path
  return table.concat(parts, ":")
end

-- request(method, path, body, opts) -> decoded JSON ({} when none), response.
-- opts.raise = false returns error statuses instead of raising them.
function Client:request(method, path, body, opts)
  opts = opts or {}
  local request = { method = method, url = self.base .. path, bearer = self.token, json = body,
    raise = opts.raise, query = opts.query, timeout = self.timeout }
  if method ~= "GET" and method ~= "HEAD" then request.idempotency_key = self:key(method, path) end
  local response = http.request(request)
  local data = response.json
  if type(data) ~= "table" then data = {} end
  return data, response
end

function Client:get(path, opts) return self:request("GET", path, nil, opts) end
function Client:put(path, body, opts) return self:request("PUT", path, body or json.object(), opts) end
function Client:post(path, body, opts) return self:request("POST", path, body or json.object(), opts) end
function Client:delete(path, opts) return self:request("DELETE", path, nil, opts) end

-- A path segment from an id, escaped.
function service.segment(id)
  return http.escape(tostring(id))
end

-- present(v): v is neither nil nor JSON null.
function service.present(v)
  return v ~= nil and v ~= json.null
end

return service
