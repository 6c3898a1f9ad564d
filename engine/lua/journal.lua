-- journal.lua: runs on disk. Each run is <state>/runs/<RUN_ID>/events.jsonl,
-- one JSON event per line, each fsync'd before the engine acts on it
-- (journal:append in loop.c). Reading ignores a torn last line with a
-- warning and refuses a garbled line in the middle, naming it.
local core = require "wfengine.core"
local json = require "wf.json"

local journal = {}

function journal.state_dir(option)
  return option or os.getenv("WFENGINE_STATE") or "./.wfengine"
end

function journal.run_dir(state, run_id)
  return state .. "/runs/" .. run_id
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

-- Secrets out of every string of a value, keys too, before it is encoded
-- (a result may well be keyed by a secret: { [password] = true }).
local function redacted(value, depth)
  local t = type(value)
  if t == "string" then return core.redact(value) end
  if t ~= "table" or value == json.null or depth > 64 then return value end
  local copy = {}
  for k, v in pairs(value) do copy[redacted(k, depth + 1)] = redacted(v, depth + 1) end
  return setmetatable(copy, getmetatable(value))
end

journal.redacted = function(value) return redacted(value, 0) end

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
  reason = true, compensation_failed = true, owed = true,
}

-- Parameter names belong to the workflow like step ids; their values are redacted.
local function redacted_params(params)
  if type(params) ~= "table" then return redacted(params, 0) end
  local copy = {}
  for name, value in pairs(params) do copy[name] = redacted(value, 1) end
  return setmetatable(copy, getmetatable(params))
end

local function redacted_event(event)
  local copy = {}
  for field, value in pairs(event) do
    if OWN_FIELDS[field] then copy[field] = value
    elseif field == "params" then copy[field] = redacted_params(value)
    else copy[field] = redacted(value, 0) end
  end
  return copy
end

-- Opens a journal for appending. Returns the writer or nil, message.
-- durable = false (a simulation) skips every fsync.
function journal.open(state, run_id, durable)
  local dir = journal.run_dir(state, run_id)
  local ok, err = core.mkdir(dir, durable ~= false)
  if not ok then return nil, err end
  local file, open_err = core.journal_open(dir .. "/events.jsonl", durable ~= false)
  if not file then return nil, open_err end
  return { file = file, dir = dir, seq = 0, nosync = durable == false }
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

-- Encodes and writes one event; returns the encoded line. A simulation
-- changes nothing outside, so its journal is written but never synced.
function journal.append(writer, event)
  local line = json.encode(redacted_event(event))
  writer.file:append(line, SYNCED[event.type] == true and not writer.nosync)
  return line
end

-- Reads a run's events. Returns the list and a warning (torn tail), or nil
-- and a message.
function journal.read(state, run_id)
  local path = journal.run_dir(state, run_id) .. "/events.jsonl"
  local file = io.open(path, "rb")
  if not file then return nil, "no run " .. run_id .. " under " .. state .. "/runs" end
  local text = file:read("a")
  file:close()
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
