-- console_state.lua: everything `wfengine serve` (console.lua) knows of runs
-- goes through here: list runs, read and follow a run's events, start,
-- resume, roll back or interrupt a run, answer a confirm question, all
-- through the state interface (state.lua): a directory or PostgreSQL.
--
-- Runs the console starts are real runs: `wfengine run FILE --json
-- --confirm-from-state ...`, detached into their own session (setsid), so
-- they outlive the server. A confirm step of such a run journals
-- confirm_asked and waits for the answer this module gives the state
-- (store:answer).
local core = require "wfengine.core"
local files = require "wfengine.files"
local json = require "wf.json"
local journal = require "wfengine.journal"
local history = require "wfengine.history"
local state = require "wfengine.state"
local record = require "wfengine.record"
local sched = require "wfengine.sched"

local cs = {}
local State = {}
State.__index = State

-- opts: state (directory), config (the -c file runs get), exe (wfengine).
-- The console's own files (the output of the runs it started) go under the
-- state directory, or ./.wfengine-console with a PostgreSQL state.
function cs.open(opts)
  local store, err = state.open(opts.state)
  if not store then return nil, err end
  local dir = store.kind == "file" and store.dir or "./.wfengine-console"
  local ok, mkdir_err = files.mkdir(dir .. "/console", true)
  if not ok then return nil, mkdir_err end
  return setmetatable({ store = store, where = store.where, dir = dir, config = opts.config,
    exe = opts.exe }, State)
end

local TERMINAL = { succeeded = true, failed = true, compensated = true, paused = true,
  interrupted = true, crashed = true }
cs.TERMINAL = TERMINAL

local function summary(id, rec)
  local started = history.parse_time(rec.started)
  local finished = history.parse_time(rec.finished or rec.last_time)
  return { run_id = id, workflow = rec.workflow, mode = rec.mode, status = rec.status,
    started = rec.started, finished = rec.finished, params = rec.params,
    seconds = started and finished and (finished - started) or 0, live = rec.live or false }
end

-- Runs, newest first; filter: status, workflow, since (RFC 3339 prefix).
function State:list_runs(filter)
  local out = {}
  for _, id in ipairs(self.store:list(filter)) do
    local rec = history.load(self.store, id)
    if rec and (not filter.status or filter.status == "" or rec.status == filter.status)
        and (not filter.workflow or filter.workflow == "" or rec.workflow == filter.workflow)
        and (not filter.since or filter.since == "" or tostring(rec.started) >= filter.since) then
      out[#out + 1] = summary(id, rec)
    end
  end
  return out
end

-- One run: its record as `show --json` gives it, and its events; or nil, message.
function State:run(id)
  local ok, err = journal.check_run_id(id)
  if not ok then return nil, err end
  local rec, events = history.load(self.store, id)
  if not rec then return nil, events end
  local order, titles = {}, {}
  for _, s in ipairs(rec.plan or {}) do order[#order + 1] = s.id; titles[s.id] = s.title end
  if #order == 0 then order = rec.order end
  local steps = {}
  for i, sid in ipairs(order) do
    local s = rec.steps[sid] or { status = "pending", attempts = 0 }
    steps[#steps + 1] = { index = i, id = sid, title = titles[sid], status = s.status, attempts = s.attempts,
      seconds = s.elapsed, error = s.error, compensation = s.compensation, question = s.question }
  end
  local out = summary(id, rec)
  out.file, out.steps, out.error, out.failed_step = rec.file, json.array(steps), rec.error, rec.failed_step
  out.owed = json.array(rec.status == "succeeded" and {} or record.owed(rec))
  return journal.printable(out), events
end

-- A cursor over a run's events: cursor:poll() returns the events journaled
-- since the last poll and the run's progress when it changed (State:watch
-- shares one among every stream of a run). With a
-- directory state it reads only what was appended to events.jsonl since the
-- last poll; otherwise it asks the store for the events past the last seq.
function State:follow(id)
  local ok, err = journal.check_run_id(id)
  if not ok then return nil, err end
  local store = self.store
  local cursor = { offset = 0, partial = "", seq = 0, id = id }
  local function appended(c)
    c.file = c.file or io.open(store:run_path(id), "rb")
    if not c.file then return {} end
    c.file:seek("set", c.offset) -- clears a sticky end of file
    local data = c.file:read("a") or ""
    c.offset = c.offset + #data
    data = c.partial .. data
    local events, last = {}, 1
    for line, next_at in data:gmatch("([^\n]*)\n()") do
      local decoded, ev = pcall(json.decode, line)
      if decoded and type(ev) == "table" then events[#events + 1] = ev end
      last = next_at
    end
    c.partial = data:sub(last)
    return events
  end
  local function newer(c)
    local events, out = store:events(id) or {}, {}
    for _, ev in ipairs(events) do
      if math.type(ev.seq) == "integer" and ev.seq > c.seq then out[#out + 1] = ev end
    end
    if #out > 0 then c.seq = out[#out].seq end
    return out
  end
  function cursor.poll(c)
    local events = store.kind == "file" and appended(c) or newer(c)
    local progress = store:progress_of(id)
    local changed = progress and progress ~= c.progress and progress or nil
    c.progress = progress or c.progress
    return events, changed
  end
  function cursor.close(c)
    if c.file then c.file:close(); c.file = nil end
  end
  return cursor
end

-- ---- one follower per run -----------------------------------------------------

-- The events after which a run's journal grows no more while nobody holds
-- the run (a resume starts a new follower).
local LAST = { run_succeeded = true, run_failed = true, run_compensated = true, run_paused = true,
  run_interrupted = true }
local FOLLOW_EVERY = 0.05 -- seconds between looks at a followed journal
local CRASH_CHECK = 20    -- looks between two checks of the run lock while the run goes on

-- A pulse: a parked task whose end wakes whoever joins it.
local function pulse()
  return sched.spawn_free(sched.halt)
end

-- Whether the run is over: nobody holds it, and no worker is to take it
-- (a run queued on a PostgreSQL state, not claimed yet, is not over).
-- Asked at each quiet look once the last event ends the run, else every
-- CRASH_CHECK looks (a crash).
local function over(self, id, f, looks)
  if not LAST[f.last_type] and looks % CRASH_CHECK ~= 0 then return false end
  return not self.store:live(id) and not self.store:waiting(id)
end

local function take(f, events)
  local added = false
  for _, ev in ipairs(events) do
    if math.type(ev.seq) == "integer" and ev.seq > f.seq then
      f.events[#f.events + 1] = ev
      f.seq, f.last_type, added = ev.seq, ev.type, true
    end
  end
  return added
end

local function wake(f)
  local old = f.news
  f.news = pulse()
  sched.cancel(old)
end

-- One look of the follower: true when there was news.
local function look(self, id, f, cursor, looks)
  local events, progress = cursor:poll()
  local news = take(f, events)
  if progress then f.progress, f.progress_n, news = progress, f.progress_n + 1, true end
  if not news and over(self, id, f, looks) then
    take(f, (cursor:poll())) -- what was appended before the lock went
    f.over, news = true, true
  end
  return news
end

-- The follower's task: one cursor, one look every FOLLOW_EVERY, for every
-- stream of the run; ends when the run is over or nobody watches. A look
-- that fails (the state away) is tried again at the next.
local function follow_loop(self, id, f, cursor)
  local looks = 0
  while f.watchers > 0 and not f.over do
    sched.sleep(FOLLOW_EVERY)
    looks = looks + 1
    local ok, news = pcall(look, self, id, f, cursor, looks)
    if not ok and not f.failing then -- once per spell of failures
      io.stderr:write("wfengine serve: following run ", id, ": ", core.redact(tostring(news)), "\n")
    elseif ok and news then
      wake(f)
    end
    f.failing = not ok
  end
  if self.followers[id] == f then self.followers[id] = nil end
  cursor:close()
  sched.cancel(f.news)
end

-- Watches run id: its follower, shared with every other stream of the run
-- (f.events: the events so far; f.progress, counted by f.progress_n;
-- f.over once the run is over). f:wait(seconds) waits for news; unwatch
-- when done. Or nil, message.
function State:watch(id)
  self.followers = self.followers or {}
  local f = self.followers[id]
  if not f then
    local cursor, err = self:follow(id)
    if not cursor then return nil, err end
    local events, progress = cursor:poll()
    if #events == 0 then
      local known, problem = self.store:events(id)
      if not known then cursor:close(); return nil, problem end
    end
    f = self.followers[id] -- another stream may have started one meanwhile
    if f then
      cursor:close()
    else
      f = { events = {}, seq = 0, progress = progress, progress_n = progress and 1 or 0, watchers = 0,
        news = pulse() }
      take(f, events)
      self.followers[id] = f
      sched.spawn_free(follow_loop, self, id, f, cursor)
    end
  end
  f.watchers = f.watchers + 1
  return f
end

function State.unwatch(_, f)
  f.watchers = f.watchers - 1
end

-- Waits up to seconds for news of the follower f.
function State.wait(_, f, seconds)
  if f.news.status ~= "done" then sched.join(f.news, seconds) end
end

-- ---- starting runs ----------------------------------------------------------

local function quote(text)
  return "'" .. tostring(text):gsub("'", "'\\''") .. "'"
end

local function random_hex(bytes)
  local f = io.open("/dev/urandom", "rb")
  local raw = f and f:read(bytes) or tostring(core.time())
  if f then f:close() end
  return (raw:gsub(".", function(c) return string.format("%02x", c:byte()) end))
end
cs.random_hex = random_hex

-- Starts `wfengine ARGS` in its own session, stdout and stderr into a new
-- launch directory; env: NAME -> value for the child only (secrets: read
-- from a 0600 file by the shell, never on a command line). Returns the
-- launch directory or nil, message.
function State:launch(args, env)
  local dir = self.dir .. "/console/launch/" .. os.date("!%Y%m%dT%H%M%S") .. "-" .. random_hex(4)
  local ok, err = files.mkdir(dir, true)
  if not ok then return nil, err end
  local words = { quote(self.exe) }
  for _, a in ipairs(args) do words[#words + 1] = quote(a) end
  local prefix = {}
  for name, value in pairs(env or {}) do
    local file = dir .. "/env." .. name
    files.write_file(file, value)
    prefix[#prefix + 1] = string.format("%s=\"$(cat %s)\"; rm -f %s; export %s; ", name, quote(file),
      quote(file), name)
  end
  local command = table.concat(prefix) .. "exec setsid -f " .. table.concat(words, " ")
    .. " >" .. quote(dir .. "/out.jsonl") .. " 2>" .. quote(dir .. "/err.txt") .. " </dev/null"
  local status = core.execute(command)
  if not status then return nil, "cannot start wfengine (setsid)" end
  return dir
end

-- Waits (on the loop) for the first line of a launched run's --json output:
-- its run id; or the one-line refusal it printed on stderr.
local function wait_started(dir)
  for _ = 1, 400 do -- 20 s
    local out = files.read_file(dir .. "/out.jsonl") or ""
    local line = out:match("^([^\n]*)\n")
    if line then
      local ok, ev = pcall(json.decode, line)
      if ok and type(ev) == "table" and ev.run_id then return ev.run_id end
      if line:match("^[%w][%w._-]*$") then return line end -- submit prints the queued run's id
    end
    local err = files.read_file(dir .. "/err.txt") or ""
    local first = err:match("wfengine: ([^\n]*)")
    if first then return nil, first end
    sched.sleep(0.05)
  end
  return nil, "the run did not start within 20 s (see " .. dir .. ")"
end

-- spec: file (workflow), params (name -> value, given), secrets (env name ->
-- value), mode ("simulate", "dry-run", "run"), fail_at (list, for tests and
-- drills). Returns the run id, or nil and the refusal.
-- With a directory state the run starts here, detached; with PostgreSQL it
-- is submitted to the workers (a worker answers its confirm questions from
-- the state, and takes its secrets from its own config, never from here).
function State:start(spec)
  local pooled = self.store.kind == "pg"
  local args = { pooled and "submit" or "run", spec.file, "--state", self.where }
  if not pooled then args[#args + 1] = "--json"; args[#args + 1] = "--confirm-from-state" end
  if self.config then args[#args + 1] = "-c"; args[#args + 1] = self.config end
  if spec.mode == "simulate" then args[#args + 1] = "--simulate"
  elseif spec.mode == "dry-run" then args[#args + 1] = "--dry-run" end
  local names = {}
  for name in pairs(spec.params) do names[#names + 1] = name end
  table.sort(names)
  for _, name in ipairs(names) do
    args[#args + 1] = "-p"
    args[#args + 1] = name .. "=" .. tostring(spec.params[name])
  end
  for _, step in ipairs(spec.fail_at or {}) do
    args[#args + 1] = "--fail-at"
    args[#args + 1] = step
  end
  local dir, err = self:launch(args, spec.secrets)
  if not dir then return nil, err end
  return wait_started(dir)
end

-- Waits until the run's journal grows past `size` bytes (the resumed run
-- journaled run_resumed) or the launch printed a refusal.
local function wait_continued(self, id, dir, count)
  for _ = 1, 400 do
    if #(self.store:events(id) or {}) > count then return true end
    local err = files.read_file(dir .. "/err.txt") or ""
    local first = err:match("wfengine: ([^\n]*)")
    if first then return nil, first end
    sched.sleep(0.05)
  end
  return nil, "the run did not continue within 20 s (see " .. dir .. ")"
end

-- resume or rollback (verb) in a detached process; true or nil, refusal.
function State:continue(id, verb, secrets)
  local ok, err = journal.check_run_id(id)
  if not ok then return nil, err end
  local rec, problem = history.load(self.store, id)
  if not rec then return nil, problem end
  if rec.live then return nil, "run " .. id .. " is running right now" end
  local before = #(self.store:events(id) or {})
  local args = { verb, id, "--state", self.where, "--json", "--confirm-from-state" }
  local dir, launch_err = self:launch(args, secrets)
  if not dir then return nil, launch_err end
  return wait_continued(self, id, dir, before)
end

-- Interrupts a live run (SIGINT: it stops, journals run_interrupted and can
-- be resumed or rolled back). true or nil, message.
function State:interrupt(id)
  local ok, err = journal.check_run_id(id)
  if not ok then return nil, err end
  local rec, events = history.load(self.store, id)
  if not rec then return nil, events end
  if not rec.live then return nil, "run " .. id .. " is not running" end
  -- a process id means something on this machine only; a run on a
  -- PostgreSQL state may be running on a worker anywhere
  if self.store.kind ~= "file" then
    return nil, "run " .. id .. " runs on a worker: stop it there (SIGINT to the worker interrupts its runs)"
  end
  local pid
  for _, ev in ipairs(events) do
    if (ev.type == "run_started" or ev.type == "run_resumed") and math.type(ev.pid) == "integer" then
      pid = ev.pid
    end
  end
  if not pid then return nil, "run " .. id .. " journaled no process id" end
  return core.interrupt(pid)
end

-- Answers the confirm question step asks in run id: "yes" or "no".
function State:answer(id, step, answer)
  local ok, err = journal.check_run_id(id)
  if not ok then return nil, err end
  if answer ~= "yes" and answer ~= "no" then return nil, "answer must be yes or no" end
  local rec, problem = history.load(self.store, id)
  if not rec then return nil, problem end
  local s = type(step) == "string" and rec.steps[step]
  if not s or s.status ~= "asking" then
    return nil, string.format("run %s has no question waiting at step '%s'", id, tostring(step))
  end
  return self.store:answer(id, step, answer == "yes")
end

-- ---- estimates --------------------------------------------------------------

-- Each step's median and worst duration over the succeeded attempts of
-- earlier real runs of the workflow (name), as `plan --estimate` gives them.
function State:estimates(name)
  return (require("wfengine.estimate").collect(self.store, name))
end

return cs
