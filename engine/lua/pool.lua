-- pool.lua: runs shared through PostgreSQL (state_pg.lua). `submit` checks
-- a run locally and queues it with a snapshot of its code and of its config
-- without secrets; `worker` claims queued runs and runs whose owner's lease
-- expired, each in a child process (`wfengine worker --run ID --epoch N`,
-- started without a shell; main.lua's work_one: then up to 49 more runs it
-- claims itself, one at a time) that renews the lease and is fenced by the
-- epoch; `state import` copies file journals.
local core = require "wfengine.core"
local EXIT = core.EXIT
local files = require "wfengine.files"
local json = require "wf.json"
local sched = require "wfengine.sched"
local state = require "wfengine.state"
local journal = require "wfengine.journal"
local params = require "wfengine.params"

local pool = {}

local function pg_store(args, what)
  local store, err = state.open(args.state)
  if not store then return nil, err end
  if store.kind ~= "pg" then return nil, what .. " needs --state postgresql://... (runs shared by a team)" end
  return store
end

-- The workflow's code: the .lua files of its directory, every file it
-- loaded (a module required from a subdirectory included), and the project's
-- library (workflows/, with its subdirectories: lib/, clone_sandbox/, ...),
-- so that a worker finds every module the workflow may require. Returns
-- {main, files}, paths relative to "flow" and "workflows".
local MAX_DEPTH = 8

local function snapshot_code(wf, path)
  local dir = path:match("^(.*)/[^/]*$") or "."
  local real_dir = core.realpath(dir) or dir
  local code = { main = "flow/" .. path:match("[^/]*$"), files = {} }
  local function take_file(file, as)
    local text = files.read_file(file)
    if text then code.files[as] = text end
  end
  local function take(from, as, depth)
    for _, name in ipairs(core.listdir(from) or {}) do
      local full = from .. "/" .. name
      if name:match("%.lua$") then
        take_file(full, as .. "/" .. name)
      elseif depth > 0 and not name:match("^%.") and core.listdir(full) then
        take(full, as .. "/" .. name, depth - 1)
      end
    end
  end
  take(real_dir, "flow", 0)
  local library = require("wfengine.dsl").project_library(dir)
  if library and library ~= real_dir then take(library, "workflows", MAX_DEPTH) end
  for _, file in ipairs(wf.files or {}) do
    local real = core.realpath(file) or file
    local rel = real:sub(1, #real_dir + 1) == real_dir .. "/" and real:sub(#real_dir + 2)
    if rel then take_file(real, "flow/" .. rel) end
  end
  return code
end

-- The config without its secrets: keys naming credentials (params'
-- rule), the workflow's secret parameters, and any value holding a secret
-- (a DSN or URL with its password) are left out; the worker's own config
-- gives them back (pool.materialize).
local function without_secrets(value, secret_params, depth)
  if type(value) ~= "table" or depth > 32 then return value end
  local copy = {}
  for k, v in pairs(value) do
    local secret = secret_params[k] or params.names_credential(k)
      or (type(v) == "string" and core.redact(v) ~= v)
    if not secret then copy[k] = without_secrets(v, secret_params, depth + 1) end
  end
  return copy
end

function pool.submit(args, h)
  local store, err = pg_store(args, "submit")
  if not store then return h.fail("%s", err) end
  local prepared, prepare_err = h.prepare(args)
  if not prepared then return h.fail("%s", prepare_err) end
  local wf = prepared.wf
  local options, option_err = h.run_options(args, wf)
  if not options then return h.fail("%s", option_err) end
  local secret = {}
  for name, spec in pairs(wf.params) do if spec.secret then secret[name] = true end end
  local given = {}
  for _, item in ipairs(args.params) do
    if not secret[item:match("^([^=]*)")] then given[#given + 1] = item end
  end
  local config = without_secrets(prepared.config or {}, secret, 0)
  local code = snapshot_code(wf, args.workflow)
  local run_id = journal.new_run_id()
  local mode = h.mode_of(args)
  store:submit(run_id, wf.name, mode, json.encode { main = code.main, files = code.files, config = config },
    json.encode { params = json.array(given), fail_at = json.array(args.fail_at), only = args.only,
      skip = args.skip, from = args.from, on_failure = args.on_failure, yes = args.yes or nil,
      mode = mode, secrets = json.array(params.sorted(wf)) })
  print(run_id)
  io.stdout:flush()
  if not args.wait then return EXIT.SUCCEEDED end
  return pool.follow(store, run_id, args, #wf.steps, wf.by_id)
end

local POLL_FOLLOW = 2 -- seconds between looks at a followed run without NOTIFY
local EXIT_OF = { run_succeeded = EXIT.SUCCEEDED, run_compensated = EXIT.COMPENSATED,
  run_failed = EXIT.COMPENSATION_FAILED, run_paused = EXIT.PAUSED }

-- --wait: the run's events as they are committed, in the human view (or
-- --json), until it ends; its exit code.
-- `resume RUN --workflow FILE` of a queued run (PostgreSQL): the edited code
-- becomes the run's snapshot, so a worker that takes the run over later
-- runs what the resume ran (the stored config is kept). True, or nil and why.
function pool.resnapshot(store, run_id, wf, path)
  local row = store:pooled(run_id)
  if not row or not row.snapshot then return true end -- not a queued run: nothing stored
  local ok, old = pcall(json.decode, row.snapshot)
  if not ok or type(old) ~= "table" then return nil, "run " .. run_id .. ": its stored snapshot is unreadable" end
  local code = snapshot_code(wf, path)
  store:update_snapshot(run_id, json.encode { main = code.main, files = code.files, config = old.config })
  return true
end

function pool.follow(store, run_id, args, total, steps)
  local view = require "wfengine.view"
  local v = view.new { json = args.json, quiet = args.quiet, verbose = args.verbose, total = total,
    steps = steps, run_id = run_id, mode = "run" }
  local seen = 0
  local code
  sched.await(function()
    while not code do
      if core.interrupted() then code = EXIT.INTERRUPTED break end
      local events = store:events(run_id) or {}
      for i = seen + 1, #events do
        local event = events[i]
        v:event(event, journal.encode(event))
        code = EXIT_OF[event.type] or code
      end
      seen = #events
      if not code then
        local row = store:pooled(run_id)
        if row and row.status == "paused" and row.note then
          io.stderr:write("wfengine: run ", run_id, " set aside: ", row.note, "\n")
          code = EXIT.PAUSED
        else
          store:wait_event(run_id, POLL_FOLLOW)
        end
      end
    end
  end)
  v:finish()
  return code
end

-- The snapshot written out for this worker: the code, and the stored
-- config under this worker's own config (its secrets). Written once per
-- process for each snapshot (a child runs many runs of one workflow), in a
-- private directory of its own (files.private_dir: mode 0700, a name no
-- other user can have planted); pool.cleanup removes them all when the
-- process is done. Returns the workflow's path and the config's path.
local written, made = {}, {}

-- A snapshot's file name: relative, without ".." (it is written under
-- the directory, never beside it).
local function inside(rel)
  if type(rel) ~= "string" or rel:sub(1, 1) == "/" then return false end
  for part in rel:gmatch("[^/]+") do
    if part == ".." then return false end
  end
  return rel:find("/", 1, true) ~= nil
end

local function merged_config(snap, worker_config)
  local config = type(snap.config) == "table" and snap.config or {}
  if not worker_config then return config end
  local own, err = params.load_config(worker_config)
  if not own then return nil, err end
  local function merge(into, from, depth)
    for k, v in pairs(from) do
      if type(v) == "table" and type(into[k]) == "table" and depth < 32 then merge(into[k], v, depth + 1)
      elseif into[k] == nil then into[k] = v end
    end
  end
  merge(config, own, 0)
  return config
end

-- put(base, rel, text, list): writes base/rel, making its directories;
-- records each path made in `list` (pool.cleanup removes them in reverse).
local function put(base, rel, text, list)
  local path = base
  for part in rel:match("^(.*)/[^/]*$"):gmatch("[^/]+") do
    path = path .. "/" .. part
    if not list[path] then
      local ok, err = files.mkdir(path, false)
      if not ok then return nil, err end
      list[path] = true
      list[#list + 1] = path
    end
  end
  local saved, err = files.write_file(base .. "/" .. rel, text)
  if not saved then return nil, err end
  list[#list + 1] = base .. "/" .. rel
  return true
end

function pool.materialize(row, epoch, worker_config)
  local key = row.snapshot .. "\0" .. tostring(worker_config)
  if written[key] then return written[key][1], written[key][2] end
  local snap = json.decode(row.snapshot)
  local config, config_err = merged_config(snap, worker_config)
  if not config then return nil, config_err end
  local base, base_err = files.private_dir("wfengine-run")
  if not base then return nil, base_err end
  local list = { base }
  made[#made + 1] = list
  local function outside(name)
    return nil, string.format("run %s (epoch %s): the snapshot names a file outside its directory: %s",
      row.run_id, epoch, tostring(name))
  end
  if not inside(snap.main) then return outside(snap.main) end
  for rel, text in pairs(snap.files) do
    if not inside(rel) then return outside(rel) end
    local ok, err = put(base, rel, text, list)
    if not ok then return nil, err end
  end
  local config_path = base .. "/config.yaml"
  local ok, err = files.write_file(config_path, json.encode(config))
  if not ok then return nil, err end
  list[#list + 1] = config_path
  written[key] = { base .. "/" .. snap.main, config_path }
  return base .. "/" .. snap.main, config_path
end

-- Removes what pool.materialize wrote (the code, and the config with the
-- worker's secrets): called when a worker's child is done with its runs.
function pool.cleanup()
  for _, list in ipairs(made) do
    for i = #list, 1, -1 do os.remove(list[i]) end
  end
  made, written = {}, {}
end

local POLL = 5 -- seconds between looks when no NOTIFY comes

-- `wfengine worker`: claims runs and runs each in a child process until
-- SIGTERM; then it stops claiming, its children interrupt their runs
-- (journaled, lease given back) and it waits for them; a second SIGTERM
-- leaves at once.
function pool.worker(args, h)
  local store, err = pg_store(args, "worker")
  if not store then return h.fail("%s", err) end
  local name = args.name or store.owner
  local concurrency = tonumber(args.concurrency or "1")
  local lease = tonumber(args.lease or "30")
  local exe = core.realpath("/proc/self/exe")
  local busy = 0
  local function child(run_id, epoch)
    local parts = { exe, "worker", "--run", run_id, "--epoch", epoch, "--name", name, "--lease", lease,
      "--state", store.url }
    if args.config then parts[#parts + 1] = "-c"; parts[#parts + 1] = core.realpath(args.config) or args.config end
    parts[#parts + 1] = args.verbose and "-v" or "-q"
    for i, part in ipairs(parts) do parts[i] = tostring(part) end
    return parts
  end
  io.stderr:write(string.format("wfengine worker %s: %d at a time, lease %ds, state %s\n", name,
    concurrency, lease, store.where))
  -- Claims while there is room; called when news comes (a NOTIFY, a lease
  -- running out) and when a child ends. One filler at a time.
  local filling, again = false, false
  local fill
  local function start(got)
    busy = busy + 1
    sched.spawn(function()
      core.execute(child(got.run_id, got.epoch)) -- no shell: the argv itself
      busy = busy - 1
      fill()
    end)
  end
  fill = function()
    if filling then again = true return end
    filling = true
    repeat
      again = false
      while busy < concurrency do
        local ok, got = pcall(store.claim, store, name, lease)
        if not ok then
          io.stderr:write("wfengine worker ", name, ": cannot claim: ", tostring(got), "\n")
          break
        end
        if not got then break end
        start(got)
      end
    until not again
    filling = false
  end
  local main = sched.spawn(function()
    while true do
      fill()
      -- woken by NOTIFY (a run queued or given back); a lease running out
      -- is waited for; a slow look in case a notification was missed
      local wait = POLL
      if busy < concurrency then
        local ok, expiry = pcall(store.next_expiry, store)
        if ok and expiry then wait = math.min(wait, math.max(expiry, 0) + 0.05) end
      end
      store:wait_event(nil, wait)
    end
  end)
  sched.run(main)
  -- interrupted: the children got the signal too; wait until they let go
  sched.cancel_all({ kind = "interrupted", message = "interrupted" })
  sched.await(function()
    local deadline = core.now() + lease + 1
    while store:held_by(name) > 0 and core.now() < deadline do sched.sleep(0.1) end
  end)
  io.stderr:write("wfengine worker ", name, ": stopped\n")
  return EXIT.SUCCEEDED
end

-- `wfengine state import DIR`: the file journals under DIR, copied (runs
-- stay resumable, from here). Runs already in the state are left alone.
function pool.import(store, dir)
  local history = require "wfengine.history"
  local source = require("wfengine.state_file").open(dir)
  local count, skipped = 0, 0
  for _, run_id in ipairs(source:list()) do
    local rec = history.load(source, run_id)
    local events = source:events(run_id)
    if rec and events and not store:pooled(run_id) then
      local status = rec.status == "crashed" and "running" or rec.status
      store:query([[INSERT INTO wfengine.runs (run_id, workflow, mode, status, started)
        VALUES ($1, $2, $3, $4, coalesce(to_timestamp($5), now()))]], run_id, rec.workflow, rec.mode, status,
        history.parse_time(rec.started))
      for i, event in ipairs(events) do
        store:query("INSERT INTO wfengine.events (run_id, seq, event) VALUES ($1, $2, $3)", run_id,
          i, journal.encode(event))
      end
      if type(rec.lock) == "string" and require("wfengine.locks").holder(source, rec.lock) == run_id then
        store:query([[INSERT INTO wfengine.locks (key, run_id, status) VALUES ($1, $2, $3)
          ON CONFLICT DO NOTHING]], rec.lock, run_id, rec.status)
      end
      count = count + 1
    else
      skipped = skipped + 1
    end
  end
  return string.format("imported %d runs from %s into %s (%d left: unreadable or already there)", count,
    dir, store.where, skipped)
end

return pool
