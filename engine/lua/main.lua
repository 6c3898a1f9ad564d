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
local json = require "wf.json"

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

-- Loads the workflow, the config and the parameters: everything that must
-- be right before anything runs. Returns a table or nil, message.
local function prepare(args)
  local wf, err = dsl.load(args.workflow)
  if not wf then return nil, err end
  local config, config_err = params.load_config(args.config)
  if not config then return nil, config_err end
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
    if attempt and tonumber(attempt) < 1 then
      return nil, "--fail-at " .. spec .. ": attempts count from 1"
    end
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
  if not ok then return nil, "lock: " .. core.redact(tostring(key)) end
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

-- Opens the journal, takes the lock and drives the run to its exit code.
-- spec: wf, mode, params, shown, config, options, state, run_id, args,
-- events (when continuing), started (run_started or run_resumed fields).
local function drive(spec, continuing)
  core.set_mode(spec.mode)
  sched.use_virtual_clock(spec.mode == "simulate")
  local key, key_err = lock_key(spec.wf, spec.params)
  if key_err then return fail("%s", key_err) end
  local locks = require "wfengine.locks"
  if key and spec.mode ~= "simulate" then
    local held, holder = locks.acquire(spec.state, key, spec.run_id)
    if not held then return fail("%s", holder) end
  end
  local writer, open_err = journal.open(spec.state, spec.run_id, spec.mode ~= "simulate")
  if not writer then return fail("cannot open the journal: %s", open_err) end
  local args = spec.args
  local v = view.new { json = args.json, quiet = args.quiet, verbose = args.verbose,
    total = #spec.wf.steps, steps = spec.wf.by_id, run_id = spec.run_id }
  local run = runner.new { wf = spec.wf, mode = spec.mode, params = spec.params,
    config = spec.config, options = spec.options, writer = writer, view = v, run_id = spec.run_id,
    events = spec.events }
  v:start_ticker(spec.mode)
  local code
  if continuing then
    code = runner.resume(run, spec.started)
  else
    spec.started.lock = key
    code = runner.start(run, spec.started)
  end
  v:finish()
  locks.release_if_done(spec.state, key, spec.run_id, code)
  return code
end

local function plan_of(wf)
  local steps = {}
  for _, s in ipairs(wf.steps) do
    steps[#steps + 1] = { id = s.id, fingerprint = s.fingerprint, group = s.group,
      compensate = s.compensate ~= nil, undo_partial = s.undo_partial or nil }
  end
  return json.array(steps)
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
  local run_id = journal.new_run_id()
  return drive({ wf = wf, mode = mode, params = prepared.params, shown = prepared.shown,
    config = prepared.config, options = options, state = journal.state_dir(args.state),
    run_id = run_id, args = args,
    started = { run_id = run_id, workflow = wf.name, file = core.realpath(args.workflow) or args.workflow,
      hash = wf.hash, mode = mode, params = prepared.shown, pid = core.getpid(), steps = plan_of(wf),
      config = args.config and (core.realpath(args.config) or args.config),
      options = { fail_at = json.array(args.fail_at), only = args.only, skip = args.skip,
        from = args.from, on_failure = args.on_failure } } })
end

-- What changed in the workflow file since the run started, as lines; or
-- nil and why the run cannot go on with it.
local function workflow_changes(rec, wf)
  for id, s in pairs(rec.steps) do
    if s.status == "succeeded" and not wf.by_id[id] then
      return nil, string.format("step '%s' completed in this run but is no longer in %s", id, wf.file)
    end
  end
  if wf.hash == rec.hash then return {} end
  local changes = { string.format("%s: file hash %s -> %s", wf.file, tostring(rec.hash), wf.hash) }
  local before = {}
  for _, s in ipairs(rec.plan or {}) do before[s.id] = s end
  for _, s in ipairs(wf.steps) do
    local old = before[s.id]
    if not old then changes[#changes + 1] = "step added: " .. s.id
    elseif old.fingerprint ~= s.fingerprint then changes[#changes + 1] = "step changed: " .. s.id end
    before[s.id] = nil
  end
  for _, s in ipairs(rec.plan or {}) do
    if before[s.id] then changes[#changes + 1] = "step removed: " .. s.id end
  end
  return changes
end

-- resume and rollback: the run's journal is replayed into its record and the
-- same runner goes on from there.
local function continue_run(args, rollback)
  local history = require "wfengine.history"
  local state = journal.state_dir(args.state)
  local rec, events = history.load(state, args.run_id)
  if not rec then return fail("%s", events) end
  if rec.warning then io.stderr:write("warning: ", rec.warning, "\n") end
  local verb = rollback and "roll back" or "resume"
  if rec.mode == "dry-run" then
    return fail("run %s is a dry-run: dry-runs are journaled but never resumed", args.run_id)
  end
  if rec.status == "succeeded" then
    return fail("run %s already succeeded: nothing to %s", args.run_id, verb)
  end
  if rec.status == "compensated" then
    return fail("run %s was already compensated: nothing to %s", args.run_id, verb)
  end
  if rec.live then
    return fail("run %s is still running (pid %s)", args.run_id, tostring(rec.first and rec.first.pid))
  end
  local wf, err = dsl.load(rec.file)
  if not wf then return fail("%s", err) end
  local changes, refusal = workflow_changes(rec, wf)
  if not changes then return fail("cannot %s run %s: %s", verb, args.run_id, refusal) end
  -- The config file of the run, read again (its secrets were never journaled).
  local config, config_err = params.load_config(args.config or rec.first.config)
  if not config then return fail("%s", config_err) end
  local given = {}
  for name, value in pairs(rec.params or {}) do
    local spec = wf.params[name]
    if spec and not spec.secret then given[#given + 1] = name .. "=" .. tostring(value) end
  end
  for _, item in ipairs(args.params) do given[#given + 1] = item end
  local values, shown, param_err = params.resolve(wf, given, config)
  if not values then return fail("cannot %s run %s: %s", verb, args.run_id, param_err) end
  local original = rec.first and rec.first.options or {}
  local options, option_err = run_options({ workflow = rec.file, fail_at = args.fail_at,
    only = original.only, skip = original.skip, from = original.from }, wf)
  if not options then return fail("%s", option_err) end
  options.yes = args.yes
  options.on_failure = args.on_failure or original.on_failure
  return drive({ wf = wf, mode = rec.mode, params = values, shown = shown, config = config,
    options = options, state = state, run_id = args.run_id, args = args, events = events,
    started = { run_id = args.run_id, workflow = wf.name, hash = wf.hash, rollback = rollback,
      changes = json.array(changes), pid = core.getpid() } }, true)
end

function commands.resume(args)
  return continue_run(args, false)
end

function commands.rollback(args)
  return continue_run(args, true)
end

function commands.runs(args)
  return require("wfengine.history").runs(journal.state_dir(args.state), args.json)
end

function commands.show(args)
  return require("wfengine.history").show(journal.state_dir(args.state), args.run_id, args.json)
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
    io.stderr:write("wfengine: internal error: ", core.redact(tostring(code)), "\n")
    return 3
  end
  return code
end
