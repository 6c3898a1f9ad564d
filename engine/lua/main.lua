-- main.lua: the commands of DESIGN section 1, given the parsed command line
-- (engine/main.c). Returns the exit code. Every failure a user can cause is
-- one line on stderr: what, and where (file:line, line:col, step id).
local core = require "wfengine.core"
local dsl = require "wfengine.dsl"
local params = require "wfengine.params"
local journal = require "wfengine.journal"
local runner = require "wfengine.runner"
local sched = require "wfengine.sched"
local view = require "wfengine.view"

local EXIT_USAGE = 2

local function fail(fmt, ...)
  io.stderr:write("wfengine: ", string.format(fmt, ...), "\n")
  return EXIT_USAGE
end

local function split_list(text)
  local out = {}
  for item in (text or ""):gmatch("[^,%s]+") do out[item] = true end
  return out
end

-- Config values under keys that name credentials are secrets too.
local SECRET_KEY = { "password", "passwd", "secret", "token", "api_key", "apikey", "credential" }

local function register_config_secrets(value, depth)
  if type(value) ~= "table" or depth > 32 then return end
  for k, v in pairs(value) do
    if type(v) == "table" then
      register_config_secrets(v, depth + 1)
    elseif type(k) == "string" and (type(v) == "string" or type(v) == "number") then
      local key = k:lower()
      for _, word in ipairs(SECRET_KEY) do
        if key:find(word, 1, true) then core.add_secret(tostring(v)) break end
      end
    end
  end
end

-- Loads the workflow, the config and the parameters: everything that must
-- be right before anything runs. Returns a table or nil, message.
local function prepare(args)
  local wf, err = dsl.load(args.workflow)
  if not wf then return nil, err end
  local config, config_err = params.load_config(args.config)
  if not config then return nil, config_err end
  register_config_secrets(config, 0)
  local values, shown, param_err = params.resolve(wf, args.params, config)
  if not values then return nil, param_err end
  return { wf = wf, config = config, params = values, shown = shown }
end

-- The command-line switches that shape a run, checked against the workflow.
local function run_options(args, wf)
  local options = { yes = args.yes, on_failure = args.on_failure, fail_at = {} }
  local function known(id, option)
    if not wf.by_id[id] then
      return nil, string.format("%s: no step '%s' in %s", option, id, args.workflow)
    end
    return true
  end
  for _, spec in ipairs(args.fail_at or {}) do
    local id, attempt = spec:match("^([^:]+):(%d+)$")
    id = id or spec
    local ok, err = known(id, "--fail-at")
    if not ok then return nil, err end
    if attempt then
      local rule = options.fail_at[id]
      if rule ~= true then
        rule = rule or {}
        rule[tonumber(attempt)] = true
        options.fail_at[id] = rule
      end
    elseif spec:find(":") then
      return nil, "--fail-at takes STEP or STEP:ATTEMPT, not '" .. spec .. "'"
    else
      options.fail_at[id] = true
    end
  end
  for _, name in ipairs { "only", "skip" } do
    if args[name] then
      options[name] = split_list(args[name])
      for id in pairs(options[name]) do
        local ok, err = known(id, "--" .. name)
        if not ok then return nil, err end
      end
    end
  end
  if args.from then
    local ok, err = known(args.from, "--from")
    if not ok then return nil, err end
    local target = wf.by_id[args.from]
    options.from = args.from
    options.from_index = target.kind == "group" and target.steps[1].index or target.index
  end
  return options
end

local function needs_confirmation(wf, options)
  for _, s in ipairs(wf.steps) do
    if s.confirm and not (options.skip and options.skip[s.id]) then return s end
  end
end

local function lock_key(wf, values)
  if wf.lock == nil then return nil end
  if type(wf.lock) == "string" then return wf.lock end
  local ok, key = pcall(wf.lock, { params = params.readonly(values, "ctx.params") })
  if not ok then return nil, "lock: " .. tostring(key) end
  return tostring(key)
end

local commands = {}

function commands.check(args)
  local prepared, err
  if #args.params > 0 or args.config then
    prepared, err = prepare(args)
  else
    local wf
    wf, err = dsl.load(args.workflow)
    prepared = wf and { wf = wf }
  end
  if not prepared then return fail("%s", err) end
  local wf = prepared.wf
  if not args.quiet then
    local groups = 0
    for _, unit in ipairs(wf.units) do if unit.kind == "group" then groups = groups + 1 end end
    print(string.format("ok: %s: workflow %s, %d steps (%d parallel groups), parameters: %s",
      args.workflow, wf.name, #wf.steps, groups, params.names(wf)))
  end
  return 0
end

function commands.plan(args)
  local wf, err = dsl.load(args.workflow)
  if not wf then return fail("%s", err) end
  local plan = require "wfengine.plan"
  io.stdout:write(plan[args.format or "text"](wf))
  return 0
end

local function mode_of(args)
  return args.simulate and "simulate" or args.dry_run and "dry-run" or "run"
end

function commands.run(args)
  local prepared, err = prepare(args)
  if not prepared then return fail("%s", err) end
  local wf = prepared.wf
  local options, option_err = run_options(args, wf)
  if not options then return fail("%s", option_err) end
  local mode = mode_of(args)
  local asking = needs_confirmation(wf, options)
  if asking and mode == "run" and not args.yes and not core.isatty(0) then
    return fail("step '%s' asks to confirm (%q) and there is no terminal: run with -y to answer yes",
      asking.id, asking.confirm)
  end
  core.set_mode(mode)
  sched.use_virtual_clock(mode == "simulate")
  local state = journal.state_dir(args.state)
  local key, key_err = lock_key(wf, prepared.params)
  if key_err then return fail("%s", key_err) end
  local run_id = journal.new_run_id()
  local locks = require "wfengine.locks"
  if key and mode ~= "simulate" then
    local held, holder = locks.acquire(state, key, run_id)
    if not held then return fail("%s", holder) end
  end
  local writer, open_err = journal.open(state, run_id)
  if not writer then return fail("cannot create the journal: %s", open_err) end
  local by_id = {}
  for _, s in ipairs(wf.steps) do by_id[s.id] = s end
  local v = view.new { json = args.json, quiet = args.quiet, verbose = args.verbose,
    total = #wf.steps, steps = by_id, run_id = run_id }
  local run = runner.new { wf = wf, mode = mode, params = prepared.params, config = prepared.config,
    options = options, writer = writer, view = v, run_id = run_id }
  local plan_steps = {}
  for _, s in ipairs(wf.steps) do
    plan_steps[#plan_steps + 1] = { id = s.id, fingerprint = s.fingerprint, group = s.group }
  end
  v:start_ticker(mode)
  local code = runner.start(run, { run_id = run_id, workflow = wf.name, file = args.workflow,
    hash = wf.hash, mode = mode, params = prepared.shown, lock = key, pid = core.getpid(),
    steps = plan_steps, options = { fail_at = args.fail_at, only = args.only, skip = args.skip,
      from = args.from, on_failure = args.on_failure } })
  v:finish()
  locks.release_if_done(state, key, run_id, code)
  return code
end

return function(args)
  local command = commands[args.command]
  if not command then
    return fail("'%s' is not available yet", args.command)
  end
  local ok, code = xpcall(command, function(e)
    return debug.traceback(tostring(e), 2)
  end, args)
  if not ok then
    io.stderr:write("wfengine: internal error: ", tostring(code), "\n")
    return 3
  end
  return code
end
