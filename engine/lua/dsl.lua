-- dsl.lua: the workflow language of docs/workflow-language.md: `workflow`, `step` and
-- `parallel` as globals for workflow files, the validation that names the
-- offending field, step or parameter, and loading a workflow file.
local core = require "wfengine.core"

local dsl = {}

local ID_PATTERN = "^[a-z][a-z0-9_]*$"

local STEP_FIELDS = {
  title = "string", doc = "string", run = "function", compensate = "function",
  retry = "table", timeout = "number", when = "function", confirm = "string",
  irreversible = "boolean", simulate = "function", undo_partial = "boolean",
}
local GROUP_FIELDS = { title = "string", doc = "string" }
local WORKFLOW_FIELDS = {
  name = "string", description = "string", params = "table", retry = "table",
  timeout = "number", on_failure = "string", lock = { "function", "string" }, steps = "table",
}
local PARAM_FIELDS = {
  required = "boolean", doc = "string", secret = "boolean", env = "string",
  pattern = "string", check = "function",
}
local RETRY_FIELDS = {
  attempts = "number", delay = "number", backoff = "number", max_delay = "number",
  jitter = "boolean", retry_on = "function",
}

-- A validation error: "file:line: what". Raised with level 0 so Lua adds no
-- position of its own.
local function invalid(where, fmt, ...)
  error((where and (where .. ": ") or "") .. string.format(fmt, ...), 0)
end

local function caller(level)
  local info = debug.getinfo(level + 1, "Sl")
  if info and info.currentline and info.currentline > 0 then
    return (info.source:gsub("^@", "")) .. ":" .. info.currentline
  end
  return nil
end

-- Where the `{ ... }` of `step "id" { ... }` was written (the call's last
-- line), or nil when `return step "id" { ... }` was a tail call that left
-- no frame: the caller then keeps where `step "id"` was.
local function body_caller()
  if debug.getinfo(2, "t").istailcall then return nil end
  return caller(3)
end

local function type_matches(value, expected)
  if type(expected) == "table" then
    for _, t in ipairs(expected) do
      if type(value) == t then return true end
    end
    return false
  end
  return type(value) == expected
end

local function describe(expected)
  return type(expected) == "table" and table.concat(expected, " or ") or expected
end

local function edit_distance(a, b)
  local previous = {}
  for j = 0, #b do previous[j] = j end
  for i = 1, #a do
    local current = { [0] = i }
    for j = 1, #b do
      local cost = a:byte(i) == b:byte(j) and 0 or 1
      current[j] = math.min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
    end
    previous = current
  end
  return previous[#b]
end

-- The known field closest to a misspelt one (at most 3 edits away), the
-- same every time: ties go to the first in alphabetical order.
local function nearest(name, fields)
  local sorted = {}
  for field in pairs(fields) do sorted[#sorted + 1] = field end
  table.sort(sorted)
  local best, best_distance = nil, 4
  for _, field in ipairs(sorted) do
    local distance = edit_distance(name, field)
    if distance < best_distance and distance < #field then best, best_distance = field, distance end
  end
  return best
end
dsl.nearest = nearest

local function check_fields(where, what, t, fields, allow_array)
  for key, value in pairs(t) do
    if type(key) == "number" and allow_array then -- luacheck: ignore 542
      -- array part: checked by the caller
    elseif type(key) ~= "string" or fields[key] == nil then
      local hint = type(key) == "string" and nearest(key, fields)
      invalid(where, "%s: unknown field '%s'%s", what, tostring(key),
        hint and (" (did you mean '" .. hint .. "'?)") or "")
    elseif key ~= "default" and not type_matches(value, fields[key]) then
      invalid(where, "%s: field '%s' must be a %s, not a %s", what, key, describe(fields[key]),
        type(value))
    end
  end
end

local function check_retry(where, what, retry)
  if retry == nil then return end
  check_fields(where, what .. ": retry", retry, RETRY_FIELDS)
  local attempts = retry.attempts
  if attempts ~= nil and (math.type(attempts) ~= "integer" and attempts ~= math.floor(attempts)
      or attempts < 1) then
    invalid(where, "%s: retry.attempts must be a whole number >= 1", what)
  end
  for _, field in ipairs { "delay", "max_delay" } do
    if retry[field] ~= nil and retry[field] < 0 then
      invalid(where, "%s: retry.%s must be >= 0", what, field)
    end
  end
  if retry.backoff ~= nil and retry.backoff < 1 then
    invalid(where, "%s: retry.backoff must be >= 1", what)
  end
end

local function check_timeout(where, what, timeout)
  -- not (> 0), not <= 0: NaN is refused too
  if timeout ~= nil and not (timeout > 0) then -- luacheck: ignore 581
    invalid(where, "%s: timeout must be a number of seconds > 0", what)
  end
end

local function default_title(id)
  local text = id:gsub("_", " ")
  return text:sub(1, 1):upper() .. text:sub(2)
end

function dsl.step(id)
  local where = caller(2)
  if type(id) ~= "string" or not id:find(ID_PATTERN) then
    invalid(where, "step id %s: ids are made of [a-z][a-z0-9_]*", type(id) == "string"
      and string.format("%q", id) or tostring(id))
  end
  return function(def)
    where = body_caller() or where
    if type(def) ~= "table" then invalid(where, "step '%s': expected a table { ... }", id) end
    local what = "step '" .. id .. "'"
    check_fields(where, what, def, STEP_FIELDS)
    if def.run == nil then invalid(where, "%s: field 'run' (a function) is required", what) end
    if def.undo_partial and def.compensate == nil then
      invalid(where, "%s: undo_partial needs a 'compensate' function", what)
    end
    check_retry(where, what, def.retry)
    check_timeout(where, what, def.timeout)
    local s = { kind = "step", id = id, where = where }
    for k, v in pairs(def) do s[k] = v end
    s.title = s.title or default_title(id)
    return s
  end
end

function dsl.parallel(id)
  local where = caller(2)
  if type(id) ~= "string" or not id:find(ID_PATTERN) then
    invalid(where, "parallel group id %s: ids are made of [a-z][a-z0-9_]*", tostring(id))
  end
  return function(def)
    where = body_caller() or where
    local what = "parallel '" .. id .. "'"
    if type(def) ~= "table" then invalid(where, "%s: expected a table { step ..., }", what) end
    check_fields(where, what, def, GROUP_FIELDS, true)
    local group = { kind = "group", id = id, where = where, steps = {},
      title = def.title or default_title(id), doc = def.doc }
    for i, member in ipairs(def) do
      if type(member) ~= "table" or member.kind ~= "step" then
        invalid(where, "%s: item %d is not a step (groups hold steps only)", what, i)
      end
      member.group = id
      group.steps[#group.steps + 1] = member
    end
    if #group.steps == 0 then invalid(where, "%s: holds no steps", what) end
    return group
  end
end

local function check_params(where, params)
  for name, spec in pairs(params) do
    if type(name) ~= "string" or not name:find("^[%a_][%w_]*$") then
      invalid(where, "params: parameter name %s is not an identifier", tostring(name))
    end
    if type(spec) ~= "table" then
      invalid(where, "parameter '%s': expected a table { ... }", name)
    end
    check_fields(where, "parameter '" .. name .. "'", spec, setmetatable({ default = true },
      { __index = PARAM_FIELDS }))
    for key in pairs(spec) do
      if key ~= "default" and PARAM_FIELDS[key] == nil then
        invalid(where, "parameter '%s': unknown field '%s'", name, tostring(key))
      end
    end
    if spec.pattern and not pcall(string.find, "", spec.pattern) then
      invalid(where, "parameter '%s': pattern %q is not a valid Lua pattern", name, spec.pattern)
    end
  end
end

function dsl.workflow(def)
  local where = caller(2) or dsl.fallback_where
  if type(def) ~= "table" then invalid(where, "workflow: expected a table { ... }") end
  local fields = {}
  for k, v in pairs(WORKFLOW_FIELDS) do fields[k] = v end
  check_fields(where, "workflow", def, fields)
  if def.on_failure ~= nil and def.on_failure ~= "compensate" and def.on_failure ~= "pause" then
    invalid(where, "workflow: on_failure must be \"compensate\" or \"pause\", not %q",
      def.on_failure)
  end
  check_retry(where, "workflow", def.retry)
  check_timeout(where, "workflow", def.timeout)
  check_params(where, def.params or {})
  if type(def.steps) ~= "table" or #def.steps == 0 then
    invalid(where, "workflow: field 'steps' must list at least one step")
  end
  local wf = {}
  for k, v in pairs(def) do wf[k] = v end
  wf.kind, wf.where, wf.units, wf.steps, wf.by_id = "workflow", where, {}, {}, {}
  wf.params = def.params or {}
  wf.on_failure = def.on_failure or "compensate"
  local function register(item)
    local previous = wf.by_id[item.id]
    if previous then
      invalid(item.where, "duplicate id '%s' (first defined at %s)", item.id, previous.where)
    end
    wf.by_id[item.id] = item
  end
  for i, unit in ipairs(def.steps) do
    if type(unit) ~= "table" or (unit.kind ~= "step" and unit.kind ~= "group") then
      invalid(where, "workflow: steps[%d] is not a step or parallel group", i)
    end
    register(unit)
    wf.units[#wf.units + 1] = unit
    for _, s in ipairs(unit.kind == "group" and unit.steps or { unit }) do
      if unit.kind == "group" then register(s) end
      wf.steps[#wf.steps + 1] = s
      s.index = #wf.steps
    end
  end
  return wf
end

-- The source text of a step's functions, so a resumed run can tell which
-- steps were edited. sources: lines by file name, of the workflow file and
-- every module it required (a step may be defined in either).
local function step_fingerprint(s, sources)
  local parts = {}
  for _, field in ipairs { "run", "compensate", "simulate", "when" } do
    local fn = s[field]
    if fn then
      local info = debug.getinfo(fn, "S")
      local lines = sources[info.source:gsub("^@", "")] or {}
      for line = info.linedefined, info.lastlinedefined do parts[#parts + 1] = lines[line] or "" end
    end
  end
  return core.hash(table.concat(parts, "\n"))
end

local function split_lines(text)
  local lines = {}
  for line in (text .. "\n"):gmatch("(.-)\r?\n") do lines[#lines + 1] = line end
  return lines
end

local function read_file(path)
  local file = io.open(path, "rb")
  if not file then return nil end
  local text = file:read("a")
  file:close()
  return text
end
dsl.read_file = read_file

-- Where print() in workflow code goes; the runner routes it to the step's
-- log while a run goes.
function dsl.on_print(text)
  io.stderr:write(core.redact(text), "\n")
end

local LIBRARIES = { "string", "table", "math", "os", "io", "utf8", "coroutine", "debug" }

-- Globals of the engine's own state that workflow code gets its own
-- version of: the loaders (text only, the workflow's environment) and the
-- module system (its own package table, no engine modules).
local REPLACED = { package = true, require = true, load = true, loadfile = true, dofile = true }

local function is_internal(name)
  return name == "wfengine" or name:sub(1, 9) == "wfengine."
end

local function is_directory(path)
  return core.listdir(path) ~= nil
end

-- The project's library: the nearest directory up from dir that is named
-- workflows or holds one; nil when there is none.
local function project_library(dir)
  local at = core.realpath(dir)
  while at do
    if at:match("[^/]*$") == "workflows" then return at end
    local candidate = (at == "/" and "" or at) .. "/workflows"
    if is_directory(candidate) then return candidate end
    if at == "/" then return nil end
    at = at:match("^(.*)/[^/]*$")
    if at == "" then at = "/" end
  end
  return nil
end
dsl.project_library = project_library

-- package.path of a workflow: its own directory, the project's library, then
-- each directory of $WFENGINE_PATH; never the current directory.
function dsl.module_path(path)
  local dir = path:match("^(.*)/[^/]*$") or "."
  if dir == "" then dir = "/" end
  local dirs = { dir }
  local library = project_library(dir)
  if library and library ~= core.realpath(dir) then dirs[#dirs + 1] = library end
  for entry in (os.getenv("WFENGINE_PATH") or ""):gmatch("[^:]+") do dirs[#dirs + 1] = entry end
  local templates, seen = {}, {}
  for _, d in ipairs(dirs) do
    d = d:gsub("/+$", "")
    for _, template in ipairs { d .. "/?.lua", d .. "/?/init.lua" } do
      if not seen[template] then
        seen[template] = true
        templates[#templates + 1] = template
      end
    end
  end
  return table.concat(templates, ";")
end

-- load, loadfile and dofile for workflow code: text chunks only (a forged
-- binary chunk can crash the engine), and the workflow's environment unless
-- the caller gives one.
local function loaders(env)
  local function chosen_env(n, given)
    if n >= 4 then return given end
    return env
  end
  local function workflow_load(chunk, name, _, ...)
    return load(chunk, name, "t", chosen_env(select("#", ...) + 3, ...))
  end
  local function workflow_loadfile(filename, _, ...)
    return loadfile(filename, "t", chosen_env(select("#", ...) + 3, ...))
  end
  local function workflow_dofile(filename)
    local chunk, err = loadfile(filename, "t", env)
    if not chunk then error(err, 2) end
    return chunk()
  end
  return workflow_load, workflow_loadfile, workflow_dofile
end

local function module_not_found(name, search_path)
  local looked = {}
  for template in search_path:gmatch("[^;]+") do looked[#looked + 1] = template end
  return string.format("module '%s' not found (looked in: %s)", name, table.concat(looked, ", "))
end

-- How one module is found: the workflow's preload, a binding (one instance,
-- shared with the engine), or a text file on the workflow's package.path.
local function find_module(env, pkg, name)
  if pkg.preload[name] then return pkg.preload[name], ":preload:" end
  if name:sub(1, 3) == "wf." and package.preload[name] then
    return function() return require(name) end, ":preload:"
  end
  local filename = package.searchpath(name, pkg.path)
  if not filename then error(module_not_found(name, pkg.path), 3) end
  local chunk, err = loadfile(filename, "t", env)
  if not chunk then error(string.format("cannot load module '%s': %s", name, err), 3) end
  return chunk, filename
end

-- require for workflow code and its modules, over its own package table;
-- appends the file of each module it loads to required.
local function workflow_require(env, pkg, required)
  return function(name)
    if type(name) ~= "string" then
      error("bad argument #1 to 'require' (string expected, got " .. type(name) .. ")", 2)
    end
    if pkg.loaded[name] ~= nil then return pkg.loaded[name] end
    if is_internal(name) then
      error(string.format("module '%s' is internal to the engine: workflows cannot require it",
        name), 2)
    end
    local loader, data = find_module(env, pkg, name)
    if data ~= ":preload:" then required[#required + 1] = data end
    local value = loader(name, data)
    if value ~= nil then pkg.loaded[name] = value end
    if pkg.loaded[name] == nil then pkg.loaded[name] = true end
    return pkg.loaded[name], data
  end
end

-- The DSL as a module: `local wf = require "wf"` in a workflow or in a
-- file of steps it requires (the globals stay for single-file workflows).
local function dsl_module()
  return { workflow = dsl.workflow, step = dsl.step, parallel = dsl.parallel }
end

local function workflow_package(env, path)
  local loaded = { _G = env }
  for _, name in ipairs(LIBRARIES) do loaded[name] = env[name] end
  return { path = dsl.module_path(path), cpath = "", loaded = loaded,
    preload = { wf = dsl_module }, config = package.config, searchpath = package.searchpath }
end

-- The environment workflow code runs in: the standard library, with its
-- library tables copied, so that a workflow replacing `tostring`, `pairs`
-- or `string.format` changes its own world and not the engine's; its own
-- loaders and module system.
local function workflow_env(path, required)
  local env = {}
  for k, v in pairs(_G) do
    if not REPLACED[k] then env[k] = v end
  end
  for _, name in ipairs(LIBRARIES) do
    local copy = {}
    for k, v in pairs(_G[name]) do copy[k] = v end
    env[name] = copy
  end
  env._G = env
  env.workflow, env.step, env.parallel = dsl.workflow, dsl.step, dsl.parallel
  env.print = function(...)
    local parts = table.pack(...)
    for i = 1, parts.n do parts[i] = tostring(parts[i]) end
    dsl.on_print(table.concat(parts, "\t", 1, parts.n))
  end
  -- Lua's os.execute (system()) would block every other task and swallow
  -- Ctrl-C while the command runs: the engine's runs it as a child the
  -- step waits for, which an interrupt or a timeout stops.
  env.os.execute = function(command)
    if command == nil then return true end
    return core.execute(command)
  end
  env.os.exit = function()
    error("os.exit is not allowed in a workflow: fail the step with ctx:fail or error()", 2)
  end
  env.load, env.loadfile, env.dofile = loaders(env)
  env.package = workflow_package(env, path)
  env.require = workflow_require(env, env.package, required)
  return env
end

-- The line of `workflow {` in the text, for errors raised where Lua's tail
-- call (`return workflow { ... }`) left no frame to name.
local function workflow_line(path, text)
  local line = 1
  for prefix in (text .. "\n"):gmatch("(.-)\n") do
    if prefix:find("workflow%s*{") or prefix:find("workflow%s*$") then return path .. ":" .. line end
    line = line + 1
  end
  return path
end

-- Loads a workflow file: returns the validated workflow, or nil and a
-- one-line message naming file:line.
function dsl.load(path)
  local file, open_err = io.open(path, "rb")
  if not file then return nil, open_err end
  local text = file:read("a")
  file:close()
  if not text then return nil, path .. ": cannot read the workflow (is it a directory?)" end
  dsl.fallback_where = workflow_line(path, text)
  if text:sub(1, 4) == "\27Lua" then
    return nil, path .. ": is precompiled Lua bytecode; give the source file"
  end
  local required = {}
  local chunk, syntax_err = load(text, "@" .. path, "t", workflow_env(path, required))
  if not chunk then return nil, syntax_err end
  local ok, result = xpcall(chunk, function(e)
    local message = type(e) == "table" and rawget(e, "message") or e
    if type(message) == "string" then
      return message:find("^[^\n]-:%d+:") and message or (dsl.fallback_where .. ": " .. message)
    end
    local info = debug.getinfo(2, "Sl")
    local where = info and info.currentline and info.currentline > 0
      and (info.source:gsub("^@", "") .. ":" .. info.currentline) or path
    return string.format("%s: error while loading the workflow (%s)", where, tostring(e))
  end)
  if not ok then return nil, result end
  if type(result) ~= "table" or result.kind ~= "workflow" then
    return nil, path .. ": does not return workflow { ... }"
  end
  if not utf8.len(result.name or "") then
    return nil, (result.where or path) .. ": workflow: name is not valid UTF-8"
  end
  result.file = path
  result.name = result.name or (path:match("([^/]+)%.lua$") or path)
  -- The files the workflow is made of: its own, then each module it
  -- required from a file, in the order they were loaded. The hash covers
  -- them all, so an edit to a file of steps is seen by resume.
  result.files = { path }
  local sources, texts = { [path] = split_lines(text) }, { text }
  for _, module_file in ipairs(required) do
    local module_text = read_file(module_file) or ""
    result.files[#result.files + 1] = module_file
    sources[module_file] = split_lines(module_text)
    texts[#texts + 1] = module_text
  end
  result.hash = core.hash(#texts == 1 and text or table.concat(texts, "\0"))
  for _, s in ipairs(result.steps) do s.fingerprint = step_fingerprint(s, sources) end
  return result
end

return dsl
