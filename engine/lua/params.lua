-- params.lua: workflow parameters and the -c config file. Every parameter
-- is resolved and validated before the first step starts; a rejected value
-- is a usage error (exit 2). Precedence: -p, then the parameter's `env`
-- variable, then `params:` in the config file, then the `default`.
local core = require "wfengine.core"

local params = {}

-- ---- secrets in the config ----
-- A config value is a secret from load time when the last word of its key
-- names a credential (password, db_password, PGPASSWORD, api_key, apiKey,
-- client_secret, tokens: [...]; not token_ttl or password_file), and so is
-- the password of any connection string or URL in any config value.

local CREDENTIAL_WORDS = {
  password = true, passwords = true, passwd = true, pass = true, pw = true, pwd = true,
  passphrase = true, secret = true, secrets = true, token = true, tokens = true, key = true,
  keys = true, apikey = true, credential = true, credentials = true,
}
-- Words run together (pgpassword, apitoken); not "key": monkey, turnkey.
local CREDENTIAL_ENDINGS = { "password", "passwd", "secret", "token", "apikey" }

local function names_credential(key)
  if type(key) ~= "string" then return false end
  local last = key:gsub("(%l)(%u)", "%1_%2"):lower():match("(%w+)%W*$")
  if not last then return false end
  if CREDENTIAL_WORDS[last] then return true end
  for _, ending in ipairs(CREDENTIAL_ENDINGS) do
    if last:sub(-#ending) == ending then return true end
  end
  return false
end

params.names_credential = names_credential

local function percent_decoded(text)
  return (text:gsub("%%(%x%x)", function(hex) return string.char(tonumber(hex, 16)) end))
end

-- A quoted conninfo value starting at text[at] (the quote): as written
-- between the quotes, and unescaped as libpq reads it.
local function quoted_value(text, at)
  local parts, i = {}, at + 1
  while i <= #text do
    local c = text:sub(i, i)
    if c == "'" then break end
    if c == "\\" then
      i = i + 1
      c = text:sub(i, i)
    end
    parts[#parts + 1] = c
    i = i + 1
  end
  return text:sub(at + 1, i - 1), table.concat(parts)
end

-- The passwords in a text, each as written and as the client decodes it:
-- scheme://user:password@host, ?password= in a URL's query, and
-- password=... (or password='...') in a key=value connection string.
function params.dsn_passwords(text)
  local found = {}
  local function add(written, decoded)
    found[#found + 1] = written
    if decoded ~= written then found[#found + 1] = decoded end
  end
  -- Found from each "://" forwards: a pattern starting at the scheme would
  -- rescan a long value once per character.
  local at = 1
  while true do
    local _, stop = text:find("://", at, true)
    if not stop then break end
    local password = (text:match("^([^/?#@%s]*)@", stop + 1) or ""):match(":(.*)$")
    if password then add(password, percent_decoded(password)) end
    at = stop + 1
  end
  for value in text:gmatch("[?&][Pp][Aa][Ss][Ss][Ww][Oo][Rr][Dd]=([^&#%s]*)") do
    add(value, percent_decoded(value))
  end
  local lowered = text:lower()
  at = 1
  while true do
    local start, stop = lowered:find("password%s*=%s*", at)
    if not start then break end
    if start == 1 or lowered:sub(start - 1, start - 1):find("^%s") then
      if text:sub(stop + 1, stop + 1) == "'" then
        add(quoted_value(text, stop + 1))
      else
        local value = text:match("^%S*", stop + 1)
        add(value, value)
      end
    end
    at = stop + 1
  end
  return found
end

-- Registers the secrets of a config (see above). Returns true, or nil and
-- a message naming the key of a secret too short to redact.
local function register_config_secrets(value, path, depth, in_credential)
  if depth > 32 then return true end
  for k, v in pairs(value) do
    local where = path and (path .. "." .. tostring(k)) or tostring(k)
    local credential = names_credential(k) or (in_credential and math.type(k) == "integer")
    local candidates = {}
    if type(v) == "table" then
      local ok, err = register_config_secrets(v, where, depth + 1, names_credential(k))
      if not ok then return nil, err end
    elseif credential and (type(v) == "string" or type(v) == "number") then
      candidates[1] = { tostring(v), "the value (a secret: its key names a credential)" }
    end
    if type(v) == "string" then
      for _, password in ipairs(params.dsn_passwords(v)) do
        candidates[#candidates + 1] = { password, "the password in this connection string or URL" }
      end
    end
    for _, candidate in ipairs(candidates) do
      local ok, why = core.add_secret(candidate[1])
      if not ok then return nil, string.format("%s: %s is %s", where, candidate[2], why) end
    end
  end
  return true
end

-- Reads the YAML config with ${VAR} / ${VAR:-default} interpolation, and
-- registers its secrets before anything can print them.
function params.load_config(path)
  if not path then return {} end
  local yaml = require "wf.yaml"
  local ok, config = pcall(yaml.load_file, path, { env = true })
  -- a yaml error's message already names the file, line and column
  if not ok then return nil, type(config) == "table" and config.message or tostring(config) end
  if config == nil then return {} end
  if type(config) ~= "table" or (#config > 0 and next(config, #config) == nil and config[1] ~= nil) then
    return nil, path .. ": the config must be a mapping of names to values"
  end
  if config.params ~= nil and (type(config.params) ~= "table" or #config.params > 0) then
    return nil, path .. ": params: must be a mapping of parameter names to values"
  end
  local registered, problem = register_config_secrets(config, nil, 0, false)
  if not registered then return nil, path .. ": " .. problem end
  return config
end

local function anchored(pattern)
  if pattern:sub(1, 1) ~= "^" then pattern = "^" .. pattern end
  if pattern:sub(-1) ~= "$" or pattern:sub(-2) == "%$" then pattern = pattern .. "$" end
  return pattern
end

-- "parameter 'name'", with its doc when it has one.
local function label(name, spec)
  return string.format("parameter '%s'", name) .. (spec.doc and (" (" .. spec.doc .. ")") or "")
end

-- The same refusal for an unknown name from -p and from the config's params:.
local function unknown(wf, name)
  local hint = require("wfengine.dsl").nearest(name, wf.params)
  return string.format("unknown parameter '%s' (this workflow takes: %s%s)", name, params.names(wf),
    hint and ("; did you mean '" .. hint .. "'?") or "")
end

-- Returns the resolved values, the redacted copy for journals, or nil and
-- a message naming the parameter. config_path names the config in errors.
function params.resolve(wf, given_list, config, config_path)
  local getenv = os.getenv
  local given = {}
  for _, item in ipairs(given_list or {}) do
    local name, value = item:match("^([^=]+)=(.*)$")
    if not wf.params[name] then return nil, nil, unknown(wf, name) end
    given[name] = value
  end
  local from_config = type(config) == "table" and type(config.params) == "table" and config.params
    or {}
  for name in pairs(from_config) do
    if not wf.params[name] then
      return nil, nil, (config_path or "the config") .. ": params: " .. unknown(wf, tostring(name))
    end
  end
  local values, shown = {}, {}
  for _, name in ipairs(params.sorted(wf)) do
    local spec = wf.params[name]
    local value = given[name]
    if value == nil and spec.env then value = getenv(spec.env) end
    if value == nil then value = from_config[name] end
    if value == nil then value = spec.default end
    if value == nil and spec.required then
      return nil, nil, string.format("%s is required%s", label(name, spec),
        spec.env and (" (-p " .. name .. "=... or $" .. spec.env .. ")") or
        (" (-p " .. name .. "=...)"))
    end
    if type(value) == "string" and not utf8.len(value) then
      return nil, nil, string.format("%s: the value is not valid UTF-8", label(name, spec))
    end
    if value ~= nil and type(value) ~= "string" and type(value) ~= "number"
        and type(value) ~= "boolean" then
      return nil, nil, string.format("%s: a %s is not a parameter value", label(name, spec), type(value))
    end
    if spec.secret and value ~= nil then
      local ok, why = core.add_secret(tostring(value))
      if not ok then
        return nil, nil, string.format("parameter '%s' is secret and its value is %s", name, why)
      end
    end
    if value ~= nil and spec.pattern and not tostring(value):find(anchored(spec.pattern)) then
      return nil, nil, string.format("%s: %s does not match the pattern %s", label(name, spec),
        spec.secret and "the value" or string.format("%q", tostring(value)), spec.pattern)
    end
    values[name] = value
  end
  for _, name in ipairs(params.sorted(wf)) do
    local spec = wf.params[name]
    if spec.check and values[name] ~= nil then
      local ok, problem = pcall(spec.check, values[name], values)
      if not ok then
        return nil, nil, string.format("%s: its check failed: %s", label(name, spec), core.redact(tostring(problem)))
      elseif problem ~= nil and problem ~= true then
        return nil, nil, string.format("%s: %s", label(name, spec), core.redact(tostring(problem)))
      end
    end
    if spec.secret and values[name] ~= nil then
      shown[name] = "***"
    else
      shown[name] = values[name]
    end
  end
  return values, shown
end

function params.sorted(wf)
  local names = {}
  for name in pairs(wf.params) do names[#names + 1] = name end
  table.sort(names)
  return names
end

function params.names(wf)
  local names = params.sorted(wf)
  return #names > 0 and table.concat(names, ", ") or "no parameters"
end

-- A read-only view of t (and of the tables inside it).
function params.readonly(t, what)
  if type(t) ~= "table" then return t end
  local cache = {}
  return setmetatable({}, {
    __jsonsource = t, -- json.encode(ctx.config) encodes what the view shows
    __index = function(_, k)
      local v = t[k]
      if type(v) == "table" then
        cache[k] = cache[k] or params.readonly(v, what)
        return cache[k]
      end
      return v
    end,
    __newindex = function(_, k) error(string.format("%s is read-only (setting '%s')", what, tostring(k)), 2) end,
    __pairs = function()
      return function(_, k)
        local nk, nv = next(t, k)
        if type(nv) == "table" then nv = params.readonly(nv, what) end
        return nk, nv
      end, nil, nil
    end,
    __len = function() return #t end,
  })
end


-- One line per parameter for check and plan: name, what it needs, its doc.
function params.describe(wf)
  local lines = {}
  for _, name in ipairs(params.sorted(wf)) do
    local spec, traits = wf.params[name], {}
    if spec.required then traits[#traits + 1] = "required" end
    if spec.default ~= nil and not spec.secret then traits[#traits + 1] = "default " .. tostring(spec.default) end
    if spec.env then traits[#traits + 1] = "$" .. spec.env end
    if spec.secret then traits[#traits + 1] = "secret" end
    lines[#lines + 1] = "  " .. name .. (#traits > 0 and (" (" .. table.concat(traits, ", ") .. ")") or "")
      .. (spec.doc and (": " .. spec.doc) or "")
  end
  return lines
end

return params
