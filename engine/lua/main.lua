-- main.lua: the commands of `wfengine --help` (engine/main.c), given the parsed command line
-- (engine/main.c). Returns the exit code. Every failure a user can cause is
-- one line on stderr: what, and where (file:line, line:col, step id).
local core = require "wfengine.core"
local dsl = require "wfengine.dsl"
local params = require "wfengine.params"
local journal = require "wfengine.journal"
local state = require "wfengine.state"
local runner = require "wfengine.runner"
local sched = require "wfengine.sched"
local view = require "wfengine.view"
local json = require "wf.json"

local EXIT = core.EXIT

local last_failure

local function fail(fmt, ...)
  last_failure = string.format(fmt, ...)
  io.stderr:write("wfengine: ", last_failure, "\n")
  return EXIT.USAGE
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
  local values, shown, param_err = params.resolve(wf, args.params, config, args.config)
  if not values then return nil, param_err end
  return { wf = wf, config = config, params = values, shown = shown }
end

-- A step named on the command line: its id, or its number in the plan
-- (`wfengine plan` shows both). Returns the id, or nil when it names none.
local function step_ref(wf, ref)
  if wf.by_id[ref] then return ref end
  local number = ref:match("^%d+$") and tonumber(ref)
  local s = number and wf.steps[number]
  return s and s.id
end

-- The command-line switches that shape a run, checked against the workflow.
local function run_options(args, wf)
  local options = { yes = args.yes, on_failure = args.on_failure, fail_at = {},
    confirm_from_state = args.confirm_from_state }
  local function known(ref, option)
    local id = step_ref(wf, ref)
    if not id then
      return nil, string.format("%s: no step '%s' in %s (give a step id, or its number 1-%d from `wfengine plan`)",
        option, ref, args.workflow, #wf.steps)
    end
    return id
  end
  for _, spec in ipairs(args.fail_at or {}) do
    local ref, attempt = spec:match("^([^:]+):(%d+)$")
    local id, err = known(ref or spec, "--fail-at")
    if not id then return nil, err end
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
      options[name] = {}
      for ref in pairs(split_list(args[name])) do
        local id, err = known(ref, "--" .. name)
        if not id then return nil, err end
        options[name][id] = true
      end
    end
  end
  if args.from then
    local id, err = known(args.from, "--from")
    if not id then return nil, err end
    local target = wf.by_id[id]
    options.from = id
    options.from_index = target.kind == "group" and target.steps[1].index or target.index
  end
  return options
end

-- A set of step ids as the comma list --only and --skip take: ids, not
-- numbers, so that a resume after an edit selects the same steps.
local function id_list(set)
  if not set then return nil end
  local ids = {}
  for id in pairs(set) do ids[#ids + 1] = id end
  table.sort(ids)
  return table.concat(ids, ",")
end

-- A confirm step the run is sure to reach (no `when`, not left out by
-- --only, --skip or --from): without a terminal the run refuses before it
-- touches anything. A conditional one is decided when reached (runner).
local function needs_confirmation(wf, options)
  for _, s in ipairs(wf.steps) do
    if s.confirm and not s.when and not runner.selection_skip(options, s) then return s end
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
  -- static checks (engine/lua/lint.lua) of every file the workflow is made of
  local lint_errors = require("wfengine.lint").check(wf, io.stderr)
  if lint_errors > 0 then
    return fail("%s: %d error%s found by the static checks", args.workflow, lint_errors,
      lint_errors == 1 and "" or "s")
  end
  if not args.quiet then
    local groups = 0
    for _, unit in ipairs(wf.units) do if unit.kind == "group" then groups = groups + 1 end end
    print(string.format("ok: %s: workflow %s, %d steps (%d parallel groups), parameters: %s",
      args.workflow, wf.name, #wf.steps, groups, params.names(wf)))
    for _, line in ipairs(params.describe(wf)) do print(line) end
  end
  return EXIT.SUCCEEDED
end

-- Each step's median and worst duration from the earlier real runs in the state.
local function estimate_lines(wf, store)
  local estimate = require "wfengine.estimate"
  return estimate.lines(wf, estimate.collect(store, wf.name))
end

function commands.plan(args)
  local wf, err = dsl.load(args.workflow)
  if not wf then return fail("%s", err) end
  if args.estimate then
    if args.format then return fail("plan --estimate prints text: no --format") end
    local store, state_err = state.open(args.state)
    local lines = store and estimate_lines(wf, store)
    if not lines then return fail("%s", state_err) end
    print(table.concat(lines, "\n"))
    return EXIT.SUCCEEDED
  end
  local plan = require "wfengine.plan"
  io.stdout:write(plan[args.format or "text"](wf))
  return EXIT.SUCCEEDED
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
  local store = spec.store
  store.mode = spec.mode
  if key and spec.mode ~= "simulate" then
    local held, holder = store:lock_key(key, spec.run_id)
    if not held then return fail("%s", holder) end
  end
  if not continuing and not spec.claimed then -- resume, rollback and workers hold it already
    local run_lock, run_lock_err = store:run_lock(spec.run_id, true, spec.mode ~= "simulate", spec.started)
    if not run_lock then return fail("%s", run_lock_err) end
  end
  local writer, open_err = store:writer(spec.run_id, spec.mode ~= "simulate")
  if not writer then return fail("cannot open the journal: %s", open_err) end
  if open_err then io.stderr:write("warning: ", open_err, "\n") end
  local args = spec.args
  local v = view.new { json = args.json, quiet = args.quiet, verbose = args.verbose,
    total = #spec.wf.steps, steps = spec.wf.by_id, run_id = spec.run_id, mode = spec.mode }
  local run = runner.new { wf = spec.wf, mode = spec.mode, params = spec.params,
    config = spec.config, options = spec.options, writer = writer, store = store, view = v,
    run_id = spec.run_id, events = spec.events, collect = spec.collect }
  v:start_ticker(spec.mode)
  -- on a shared state: which claim of the run this process holds and, for a
  -- worker, whose; so the journal of a run that moved between workers says
  -- which events each wrote (docs/operations.md)
  spec.started.epoch = store.epochs and store.epochs[spec.run_id] or nil
  spec.started.worker = args.claimed and store.owner or nil
  local code
  if continuing then
    code = runner.resume(run, spec.started)
  else
    spec.started.lock = key
    code = runner.start(run, spec.started)
  end
  v:finish()
  store:release_key(key, spec.run_id, code)
  store:finished(spec.run_id, code)
  return code
end

local function plan_of(wf)
  local steps = {}
  for _, s in ipairs(wf.steps) do
    steps[#steps + 1] = { id = s.id, title = s.title, fingerprint = s.fingerprint, group = s.group,
      compensate = s.compensate ~= nil, undo_partial = s.undo_partial or nil }
  end
  return json.array(steps)
end

-- The names of the secret parameters that have a value (never the values):
-- a resume refuses to go on without them.
local function secrets_given(wf, values)
  local names = {}
  for _, name in ipairs(params.sorted(wf)) do
    if wf.params[name].secret and values[name] ~= nil then names[#names + 1] = name end
  end
  return json.array(names)
end

-- Starts a new run in `mode`; returns its exit code, its events and run id.
-- approved: the approval a real run checked (run --approved); a claimed run
-- (a worker) keeps the id it was queued with.
local function start_run(args, prepared, options, store, mode, approved)
  local wf = prepared.wf
  local run_id = mode ~= "dry-run" and args.run_id or journal.new_run_id()
  local collect = {}
  local code = drive({ wf = wf, mode = mode, params = prepared.params, shown = prepared.shown,
    config = prepared.config, options = options, store = store, claimed = args.claimed,
    run_id = run_id, args = args, collect = collect,
    started = { run_id = run_id, workflow = wf.name, file = core.realpath(args.workflow) or args.workflow,
      hash = wf.hash, mode = mode, params = prepared.shown, pid = core.getpid(), steps = plan_of(wf),
      secrets = secrets_given(wf, prepared.params), approved = approved,
      config = args.config and (core.realpath(args.config) or args.config),
      options = { fail_at = json.array(args.fail_at), only = id_list(options.only),
        skip = id_list(options.skip), from = options.from, on_failure = args.on_failure } } })
  return code, collect, run_id
end

local function build_report(args, prepared, events, run_id)
  return require("wfengine.report").build(prepared.wf, events, { run_id = run_id,
    file = args.workflow, params = prepared.shown })
end

-- run --approved FILE: a fresh dry-run first; the run starts only when its
-- report matches the approved one (report.differences), else exit 2.
local function approved_run(args, prepared, options, store)
  local report = require "wfengine.report"
  local approved, read_err = report.read(args.approved)
  if not approved then return fail("%s", read_err) end
  local tolerance = tonumber(args.tolerance) or 0
  local code, events, dry_id = start_run(args, prepared, options, store, "dry-run")
  require("wf.sql")._forget_read_as()
  if code ~= EXIT.SUCCEEDED then
    return fail("refusing to run: the dry-run %s that checks the approval did not succeed (exit %d)", dry_id, code)
  end
  local diffs = report.differences(approved, build_report(args, prepared, events, dry_id), tolerance)
  if #diffs > 0 then
    io.stderr:write(string.format("wfengine: refusing to run: dry-run %s no longer matches the approved "
      .. "report %s (%d difference%s):\n", dry_id, args.approved, #diffs, #diffs == 1 and "" or "s"))
    for _, line in ipairs(diffs) do io.stderr:write("  - ", core.redact(line), "\n") end
    return EXIT.USAGE
  end
  return (start_run(args, prepared, options, store, "run", { file = core.realpath(args.approved) or args.approved,
    report_run = approved.run_id, dry_run = dry_id, tolerance = tolerance }))
end

function commands.run(args)
  local prepared, err = prepare(args)
  if not prepared then return fail("%s", err) end
  local wf = prepared.wf
  local options, option_err = run_options(args, wf)
  if not options then return fail("%s", option_err) end
  local mode = mode_of(args)
  if args.format and args.format ~= "markdown" and args.format ~= "json" then
    return fail("--format of a change report takes markdown or json, not '%s'", args.format)
  end
  if args.format and not args.report then return fail("--format goes with --report FILE (or plan)") end
  local asking = needs_confirmation(wf, options)
  if asking and mode == "run" and not args.yes and not args.confirm_from_state and not core.isatty(0) then
    return fail("step '%s' asks to confirm (%q) and there is no terminal: run with -y to answer yes",
      asking.id, asking.confirm)
  end
  local store, state_err = args.store, nil
  if not store then store, state_err = state.open(args.state) end
  if not store then return fail("%s", state_err) end
  if args.approved then return approved_run(args, prepared, options, store) end
  local code, events, run_id = start_run(args, prepared, options, store, mode)
  if mode == "simulate" and code == EXIT.SUCCEEDED and not args.quiet and not args.json then
    local lines = estimate_lines(wf, store)
    -- only when the state has history: a first simulation says nothing more
    if lines and #lines > 1 then print(table.concat(lines, "\n")) end
  end
  if args.report then
    local ok, write_err = require("wfengine.report").write(args.report, args.format,
      build_report(args, prepared, events, run_id))
    if not ok then return fail("%s", write_err) end
  end
  return code
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

-- A secret that had a value when the run started must have one again (its
-- value was never journaled): nil, message naming it, when one is missing.
-- Journals from before run_started listed them: a "***" in its params.
local function missing_secret(rec, wf, values)
  local had = rec.first.secrets
  if type(had) ~= "table" then
    had = {}
    for name, shown in pairs(rec.params or {}) do
      if shown == "***" then had[#had + 1] = name end
    end
    table.sort(had)
  end
  for _, name in ipairs(had) do
    local spec = wf.params[name]
    if spec and spec.secret and values[name] == nil then
      return string.format("secret parameter '%s' had a value when the run started and has none "
        .. "now (give it again: -p %s=...%s%s)", name, name,
        spec.env and (" or $" .. spec.env) or "", " or params: in the config")
    end
  end
end

local continue_held

-- resume and rollback: the run's journal is replayed into its record and the
-- same runner goes on from there.
local function continue_run(args, rollback)
  local store, state_err = args.store, nil
  if not store then store, state_err = state.open(args.state) end
  if not store then return fail("%s", state_err) end
  local id_ok, id_err = journal.check_run_id(args.run_id)
  if not id_ok then return fail("%s", id_err) end
  -- One process at a time continues a run: its lock first, then its journal.
  if not args.claimed then
    local run_lock, run_lock_err = store:run_lock(args.run_id, false)
    if not run_lock then return fail("%s", run_lock_err) end
    -- refused before it ran (a missing secret, an edited workflow): the
    -- hold goes at once, not when a PostgreSQL lease runs out
    local code = continue_held(store, args, rollback)
    store:finished(args.run_id, code)
    return code
  end
  return continue_held(store, args, rollback)
end

continue_held = function(store, args, rollback)
  local history = require "wfengine.history"
  local rec, events = history.load(store, args.run_id, true)
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
  local wf, err = dsl.load(args.workflow_option or rec.file)
  if not wf then return fail("%s", err) end
  local changes, refusal = workflow_changes(rec, wf)
  if not changes then return fail("cannot %s run %s: %s", verb, args.run_id, refusal) end
  if args.workflow_option and not args.claimed and store.kind == "pg" then
    local stored, snap_err = require("wfengine.pool").resnapshot(store, args.run_id, wf, args.workflow_option)
    if not stored then return fail("cannot %s run %s: %s", verb, args.run_id, snap_err) end
  end
  -- The config file of the run, read again (its secrets were never journaled).
  local config, config_err = params.load_config(args.config or rec.first.config)
  if not config then return fail("%s", config_err) end
  local given = {}
  for name, value in pairs(rec.params or {}) do
    local spec = wf.params[name]
    if spec and not spec.secret then given[#given + 1] = name .. "=" .. tostring(value) end
  end
  for _, item in ipairs(args.params) do given[#given + 1] = item end
  local values, shown, param_err = params.resolve(wf, given, config, args.config or rec.first.config)
  if not values then return fail("cannot %s run %s: %s", verb, args.run_id, param_err) end
  local missing = missing_secret(rec, wf, values)
  if missing then return fail("cannot %s run %s: %s", verb, args.run_id, missing) end
  local original = rec.first and rec.first.options or {}
  local options, option_err = run_options({ workflow = rec.file, fail_at = args.fail_at,
    only = original.only, skip = original.skip, from = original.from }, wf)
  if not options then return fail("%s", option_err) end
  options.yes = args.yes
  options.confirm_from_state = args.confirm_from_state
  options.on_failure = args.on_failure or original.on_failure
  return drive({ wf = wf, mode = rec.mode, params = values, shown = shown, config = config,
    options = options, store = store, run_id = args.run_id, args = args, events = events,
    started = { run_id = args.run_id, workflow = wf.name, hash = wf.hash, rollback = rollback,
      changes = json.array(changes), pid = core.getpid() } }, true)
end

function commands.resume(args)
  return continue_run(args, false)
end

function commands.rollback(args)
  return continue_run(args, true)
end

local STATUSES = { running = true, crashed = true, succeeded = true, failed = true,
  compensated = true, paused = true, interrupted = true, queued = true }

function commands.runs(args)
  local store, state_err = state.open(args.state)
  if not store then return fail("%s", state_err) end
  local history = require "wfengine.history"
  local filter = { status = args.status, workflow = args.workflow_option }
  if filter.status and not STATUSES[filter.status] then
    return fail("--status %s: not a run status (running, crashed, queued, succeeded, failed, "
      .. "compensated, paused, interrupted)", filter.status)
  end
  if args.since then
    filter.since = history.parse_time(args.since) or history.parse_time(args.since .. "T00:00:00Z")
    if not filter.since then
      return fail("--since %s: give a date (2026-11-26) or a UTC time (2026-11-26T13:40:50Z)", args.since)
    end
  end
  return history.runs(store, args.json, filter)
end

function commands.show(args)
  local store, state_err = state.open(args.state)
  if not store then return fail("%s", state_err) end
  local id_ok, id_err = journal.check_run_id(args.run_id)
  if not id_ok then return fail("%s", id_err) end
  if args.html then return require("wfengine.console_page").show(store, args.run_id, fail) end
  return require("wfengine.history").show(store, args.run_id, args.json)
end

function commands.serve(args)
  return require("wfengine.console").serve(args, fail)
end

-- Asks on the terminal; -y answers yes; without either the answer is no.
local function confirmed(args, question)
  if args.yes then return true end
  io.stderr:write(question, " [y/N] ")
  io.stderr:flush()
  local answer = io.stdin:read("l")
  return answer ~= nil and answer:match("^%s*[yY]") ~= nil
end

function commands.unlock(args)
  local store, state_err = state.open(args.state)
  if not store then return fail("%s", state_err) end
  if not args.yes and not core.isatty(0) then
    return fail("unlock %s asks to confirm and there is no terminal: run with -y to answer yes", args.key)
  end
  local released, err = store:unlock(args.key, function(question)
    return confirmed(args, question)
  end)
  if not released then return fail("%s", err) end
  print(released)
  return EXIT.SUCCEEDED
end

-- One run this process claimed (epoch), from its snapshot: started as
-- `run` would, or taken over as `resume` would. A run that cannot go on
-- here (a secret missing on this worker) is set aside (paused, with why),
-- never lost.
local function work_claimed(store, args, run_id, epoch)
  local row = store:pooled(run_id)
  if not row then return fail("no run %s in %s", run_id, store.where) end
  local pool = require "wfengine.pool"
  local workflow, config = pool.materialize(row, epoch, args.config)
  if not workflow then
    store:set_aside(run_id, epoch, tostring(config))
    return fail("%s", config)
  end
  store:adopt(run_id, epoch)
  local request = json.decode(row.request or "{}")
  local events = store:events(run_id) or {}
  local common = { store = store, claimed = true, state = args.state, run_id = run_id,
    config = config, yes = request.yes, confirm_from_state = not request.yes, quiet = args.quiet,
    verbose = args.verbose, json = args.json }
  local code
  if #events > 0 then
    common.workflow_option, common.params, common.fail_at = workflow, {}, {}
    code = continue_run(common, false)
  else
    common.workflow, common.params, common.fail_at = workflow, request.params or {}, request.fail_at or {}
    common.only, common.skip, common.from = request.only, request.skip, request.from
    common.on_failure = request.on_failure
    common.dry_run, common.simulate = request.mode == "dry-run", request.mode == "simulate"
    code = commands.run(common)
  end
  if code == EXIT.USAGE and store.epochs[run_id] then
    store:set_aside(run_id, epoch, string.format("refused on worker %s: %s", store.owner,
      tostring(last_failure)))
  end
  return code
end

-- How many runs one worker child runs, one after the other: the process,
-- its start-up and its connection serve up to this many (each run loads
-- its workflow afresh, in its own environment: dsl.load).
local RUNS_PER_CHILD = 50

-- This process's parent's pid (/proc), or nil.
local function parent_pid()
  local f = io.open("/proc/self/stat")
  if not f then return nil end
  local stat = f:read("a")
  f:close()
  return stat:match("%) %S+ (%d+)")
end

-- `wfengine worker --run ID --epoch N`: the run a worker claimed; then, one
-- at a time, further runs this process claims itself (as the worker, under
-- its name and lease), while there are some, it was not interrupted and
-- its worker lives (a worker stopped alone is not outlived by more runs).
function commands.work_one(args)
  local store, err = state.open(args.state)
  if not store then return fail("%s", err) end
  store.owner = args.name or store.owner
  store.lease = tonumber(args.lease or "30")
  -- the snapshots written for these runs (code, config with secrets) go
  -- when this process is done with them, also when it fails
  local pool = require "wfengine.pool"
  local _ <close> = setmetatable({}, { __close = pool.cleanup })
  local parent = parent_pid()
  local code = work_claimed(store, args, args.run_id, tonumber(args.epoch))
  for _ = 2, RUNS_PER_CHILD do
    if core.interrupted() or code == EXIT.INTERRUPTED or parent_pid() ~= parent then break end
    local ok, got = pcall(store.claim, store, store.owner, store.lease)
    if not ok or not got then break end
    code = work_claimed(store, args, got.run_id, got.epoch)
  end
  return code
end

-- `wfengine state init` and `wfengine state import DIR`.
function commands.state(args)
  local where, err = state.location(args.state)
  if not where then return fail("%s", err) end
  if not state.is_url(where) then
    return fail("state %s needs --state postgresql://... (a directory needs no set-up)", args.action)
  end
  local state_pg = require "wfengine.state_pg"
  if args.action == "init" then
    local line, init_err = state_pg.init(where)
    if not line then return fail("%s", init_err) end
    print(line)
    return EXIT.SUCCEEDED
  end
  local store, open_err = state.open(where)
  if not store then return fail("%s", open_err) end
  local imported, import_err = require("wfengine.pool").import(store, args.path)
  if not imported then return fail("%s", import_err) end
  print(imported)
  return EXIT.SUCCEEDED
end

function commands.submit(args)
  return require("wfengine.pool").submit(args, { prepare = prepare, run_options = run_options,
    mode_of = mode_of, fail = fail })
end

function commands.worker(args)
  if args.run_id then return commands.work_one(args) end
  return require("wfengine.pool").worker(args, { fail = fail })
end

function commands.new(args)
  local err, path = require("wfengine.starter").write(args.workflow)
  if err then return fail("%s", err) end
  if not args.quiet then print("wrote " .. path .. ": try `wfengine check " .. path .. "`") end
  return EXIT.SUCCEEDED
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
    return EXIT.COMPENSATION_FAILED
  end
  return code
end
