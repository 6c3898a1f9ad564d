-- journal.lua: runs on disk. Each run is <state>/runs/<RUN_ID>/events.jsonl,
-- one JSON event per line, each fsync'd before the engine acts on it
-- (journal:append in state_file.c). Reading ignores a torn last line with a
-- warning and refuses a garbled line in the middle, naming it; opening for
-- append first cuts a torn last line off (keeping it in events.jsonl.torn),
-- so the next event never lands on the fragment. The process running a run
-- holds <RUN_ID>/run.lock (files.lock): a run is live while it is held.
-- State files are 0600 in 0700 directories and never symbolic links.
local core = require "wfengine.core"
local files = require "wfengine.files"
local json = require "wf.json"

local journal = {}

function journal.run_dir(state, run_id)
  return state .. "/runs/" .. run_id
end

-- Run ids name directories under <state>/runs: letters, digits, '.', '_'
-- and '-', not starting with a dot, so no id reaches outside it.
function journal.check_run_id(run_id)
  if type(run_id) == "string" and #run_id <= 128 and run_id:match("^[%w_-][%w._-]*$") then
    return true
  end
  return nil, string.format("'%s' is not a run id (run ids look like 20261126T134050.993Z-b964)",
    tostring(run_id))
end

-- Takes the run's own lock, held by the process that runs, resumes or
-- rolls back the run until it exits. create: make the run's directory
-- (a new run). Returns the fd, or nil and a message.
function journal.lock_run(state, run_id, create, durable)
  local dir = journal.run_dir(state, run_id)
  if create then
    local ok, err = files.mkdir(dir, durable ~= false)
    if not ok then return nil, err end
  end
  local fd, problem, why = files.lock(dir .. "/run.lock")
  if fd then return fd end
  if why == "absent" then return nil, "no run " .. run_id .. " under " .. state .. "/runs" end
  if problem == "busy" then
    return nil, string.format("run %s is running in another process right now: wait for it or stop it",
      run_id)
  end
  return nil, "cannot lock run " .. run_id .. ": " .. tostring(problem)
end

-- Whether a process holds the run's lock (the run is going on now).
function journal.run_live(state, run_id)
  return files.lock_probe(journal.run_dir(state, run_id) .. "/run.lock") == "held"
end

function journal.new_run_id()
  local now = core.time()
  math.randomseed(math.floor(now * 1000000) ~ core.getpid())
  -- Sorts by time as text; the random part tells apart runs of the same millisecond.
  return os.date("!%Y%m%dT%H%M%S", math.floor(now))
    .. string.format(".%03dZ-%04x", math.floor((now % 1) * 1000), math.random(0, 0xffff))
end

function journal.timestamp(seconds)
  local whole = math.floor(seconds)
  return os.date("!%Y-%m-%dT%H:%M:%S", whole) .. string.format(".%03dZ", math.floor((seconds - whole) * 1000))
end

-- ---- bytes that are not UTF-8 ----
-- JSON holds UTF-8 only, but a step may return any bytes (a bytea value). A
-- string that is not UTF-8 is journaled as {"$base64": "<its bytes in
-- base64>"}, a table key as "$base64:<base64>", and read back as the bytes
-- (docs/workflow-language.md#results-that-are-not-utf-8).
local BYTES_KEY, KEY_PREFIX = "$base64", "$base64:"
local base64, unbase64 = core.base64, core.unbase64

local function storable_key(key, keep)
  if type(key) ~= "string" then return key end
  if not keep then key = core.redact(key) end
  if not utf8.len(key) then return KEY_PREFIX .. base64(key) end
  return key
end

-- A copy of value fit for JSON: secrets redacted from every string (unless
-- keep: a value read back from a journal, already redacted), bytes that are
-- not UTF-8 in base64 form.
local function storable(value, depth, keep)
  local t = type(value)
  if t == "string" then
    if not keep then value = core.redact(value) end
    if utf8.len(value) then return value end
    return { [BYTES_KEY] = base64(value) }
  end
  if t ~= "table" or value == json.null or depth > 64 then return value end
  local copy = {}
  for k, v in pairs(value) do copy[storable_key(k, keep)] = storable(v, depth + 1, keep) end
  return setmetatable(copy, getmetatable(value))
end

-- The reverse of storable's base64 forms, for a value read from a journal.
local function restored(value, depth)
  if type(value) ~= "table" or depth > 64 then return value end
  local only_key, count = next(value), 0
  for _ in pairs(value) do count = count + 1 end
  if count == 1 and only_key == BYTES_KEY and type(value[BYTES_KEY]) == "string" then
    local bytes = unbase64(value[BYTES_KEY])
    if bytes then return bytes end
  end
  local copy = {}
  for k, v in pairs(value) do
    if type(k) == "string" and k:sub(1, #KEY_PREFIX) == KEY_PREFIX then
      k = unbase64(k:sub(#KEY_PREFIX + 1)) or k
    end
    copy[k] = restored(v, depth + 1)
  end
  return setmetatable(copy, getmetatable(value))
end

journal.storable = function(value) return storable(value, 0) end
-- What show prints of values read back from a journal: the bytes in their
-- journaled form, nothing redacted again (a step id equal to a secret stays).
journal.printable = function(value) return storable(value, 0, true) end

-- The test journal.read applies to each line.
local function is_event(line)
  local ok, event = pcall(json.decode, line)
  return ok and type(event) == "table" and type(event.type) == "string"
end

-- What the end of a journal's text looks like: "whole", "unterminated" (a
-- last event without its newline) or "torn" and the length to keep (up to
-- the end of the last complete line).
local function tail_of(text)
  if text == "" then return "whole" end
  local terminated = text:sub(-1) == "\n"
  local body = terminated and text:sub(1, -2) or text
  local cut = body:match("^.*()\n") or 0
  if is_event(body:sub(cut + 1)) then return terminated and "whole" or "unterminated" end
  return "torn", cut
end

-- Before the first append: a torn last line is moved to events.jsonl.torn
-- and cut off the journal, both durably. Returns nil or a warning, or
-- false and a message.
local function repair_tail(path)
  local text, err, why = files.read_file(path)
  if not text then
    if why == "absent" then return nil end
    return false, err
  end
  local tail, keep = tail_of(text)
  if tail == "whole" then return nil end
  if tail == "unterminated" then
    local ok, write_err = files.write_file(path, "\n", true)
    if not ok then return false, write_err end
    return nil
  end
  local fragment = text:sub(keep + 1)
  local saved, save_err = files.write_file(path .. ".torn", fragment .. "\n", true)
  if not saved then return false, save_err end
  local cut, cut_err = files.truncate(path, keep)
  if not cut then return false, cut_err end
  return string.format("%s: cut off a torn last line (%d bytes, kept in %s.torn)", path, #fragment, path)
end

-- The journal's own fields: what happened, when, to which step, and the
-- run's identity and plan. Resume, show and runs read them back, so
-- redaction never touches them (a secret equal to a step id, an event type
-- or a year would make the run unreadable). Every other field holds values
-- a workflow produced (params, result, state, message, error) and is redacted.
local OWN_FIELDS = {
  seq = true, time = true, type = true, step = true, attempt = true, index = true,
  run_id = true, workflow = true, file = true, hash = true, mode = true, pid = true,
  steps = true, config = true, options = true, rollback = true, changes = true,
  elapsed = true, delay = true, will_retry = true, irreversible = true, level = true,
  reason = true, compensation_failed = true, owed = true, secrets = true, forced = true,
  epoch = true, worker = true,
}

-- Parameter names belong to the workflow like step ids; their values are redacted.
local function redacted_params(params)
  if type(params) ~= "table" then return storable(params, 0) end
  local copy = {}
  for name, value in pairs(params) do copy[name] = storable(value, 1) end
  return setmetatable(copy, getmetatable(params))
end

local function storable_event(event)
  local copy = {}
  for field, value in pairs(event) do
    if OWN_FIELDS[field] then copy[field] = value
    elseif field == "params" then copy[field] = redacted_params(value)
    else copy[field] = storable(value, 0) end
  end
  return copy
end

-- Opens a journal for appending. Returns the writer and a warning (a torn
-- tail was cut off), or nil, message. durable = false (a simulation) skips
-- every fsync.
function journal.open(state, run_id, durable)
  local dir = journal.run_dir(state, run_id)
  local ok, err = files.mkdir(dir, durable ~= false)
  if not ok then return nil, err end
  local path = dir .. "/events.jsonl"
  local warning, repair_err = repair_tail(path)
  if warning == false then return nil, repair_err end
  local file, open_err = files.journal_open(path, durable ~= false)
  if not file then return nil, open_err end
  return { file = file, dir = dir, seq = 0, nosync = durable == false }, warning
end

-- Events after which the engine acts (runs a step or a compensation, or
-- exits): they are fsync'd, and with them every event written before. The
-- others (a step's result, a failure, a log line) are written at once and
-- made durable by the next of these, before anything acts on them.
local SYNCED = {
  run_started = true, run_resumed = true, step_started = true, compensation_started = true,
  run_succeeded = true, run_failed = true, run_compensated = true, run_paused = true,
  run_interrupted = true,
}

-- Whether the engine acts after this event (it must be durable first).
function journal.synced(kind)
  return SYNCED[kind] == true
end

-- The events that end a run: after one, a second Ctrl-C must not add
-- another (the journal is armed for it between run_started or run_resumed
-- and the ending; see write_last_words in state_file.c).
local ENDINGS = {
  run_succeeded = true, run_failed = true, run_compensated = true, run_paused = true,
  run_interrupted = true,
}

-- Encodes and writes one event; returns the encoded line. A simulation
-- changes nothing outside, so its journal is written but never synced.
function journal.append(writer, event)
  local line = json.encode(storable_event(event))
  if ENDINGS[event.type] then writer.file:arm(false) end
  writer.file:append(line, SYNCED[event.type] == true and not writer.nosync)
  if event.type == "run_started" or event.type == "run_resumed" then writer.file:arm(true) end
  return line
end

-- One event as its journal line, and back (nil when it is not an event):
-- the PostgreSQL backend stores the same text.
function journal.encode(event)
  return json.encode(storable(event, 0))
end

function journal.decode(line)
  local ok, event = pcall(json.decode, line)
  if not ok or type(event) ~= "table" or type(event.type) ~= "string" then return nil end
  if line:find(BYTES_KEY, 1, true) then event = restored(event, 0) end
  return event
end

-- Reads a run's events. Returns the list and a warning (torn tail), or nil
-- and a message.
function journal.read(state, run_id)
  local path = journal.run_dir(state, run_id) .. "/events.jsonl"
  local text, err, why = files.read_file(path)
  if not text then
    return nil, why == "absent" and ("no run " .. run_id .. " under " .. state .. "/runs") or err
  end
  local events, warning = {}, nil
  local number = 0
  -- One pass with find: a pattern anchored at the end would rescan a long
  -- last line once per character.
  local lines, at = {}, 1
  while at <= #text do
    local newline = text:find("\n", at, true)
    lines[#lines + 1] = text:sub(at, (newline or #text + 1) - 1)
    at = (newline or #text) + 1
  end
  for i, line in ipairs(lines) do
    number = number + 1
    local ok, event = pcall(json.decode, line)
    if not ok or type(event) ~= "table" or type(event.type) ~= "string" then
      if i == #lines then
        warning = string.format("%s:%d: ignoring a torn last line (the engine stopped while writing it)",
          path, number)
      else
        return nil, string.format("%s:%d: garbled journal line: %s", path, number,
          ok and "not an event" or tostring(event))
      end
    else
      -- only a line with the marker needs the walk
      if line:find(BYTES_KEY, 1, true) then event = restored(event, 0) end
      events[#events + 1] = event
    end
  end
  return events, warning
end

-- Run ids under state, newest first.
function journal.list(state)
  local ids = core.listdir(state .. "/runs") or {}
  table.sort(ids, function(a, b) return a > b end)
  return ids
end

return journal
