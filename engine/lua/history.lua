-- history.lua: `wfengine runs` and `wfengine show`, read from the journals.
local EXIT = require("wfengine.core").EXIT
local json = require "wf.json"
local journal = require "wfengine.journal"
local record = require "wfengine.record"
local view = require "wfengine.view"

local history = {}

local TERMINAL = { succeeded = true, failed = true, compensated = true, paused = true,
  interrupted = true }

-- The record of a run plus what the journal cannot say by itself: whether
-- a run without a final event is still going (a process holds its run lock)
-- or died (crashed). self_held: this process holds the run lock itself.
function history.load(store, run_id, self_held)
  local events, problem = store:events(run_id)
  if not events then return nil, problem end
  if #events == 0 then
    -- a submitted run no worker has started yet, or set aside before it started
    local row = store.pooled and store:pooled(run_id)
    if row then
      return nil, string.format("run %s (%s) is %s and has not started yet%s", run_id,
        tostring(row.workflow), tostring(row.status), row.note and (": " .. row.note) or ""), true
    end
    return nil, string.format("run %s never started (it stopped before its first event)", run_id)
  end
  if events[1].type ~= "run_started" then
    return nil, string.format("%s: the first event is %s, not run_started: not a wfengine journal",
      store:run_path(run_id), tostring(events[1].type))
  end
  local rec = record.replay(events)
  rec.warning = problem
  rec.first = events[1]
  if not TERMINAL[rec.status] and rec.status ~= "new" then
    rec.live = not self_held and store:live(run_id)
    if not rec.live then rec.status = "crashed" end
  end
  return rec, events
end

-- The lock key a stopped run still holds, or nil.
local function key_held(store, id, rec)
  if type(rec.lock) ~= "string" or rec.status == "succeeded" or rec.status == "compensated" then
    return nil
  end
  local locks = require "wfengine.locks"
  if store:holder(rec.lock) ~= id then return nil end
  return locks.still_held_by(store, { run_id = id }) and rec.lock or nil
end

local function parse_time(text)
  if type(text) ~= "string" then return nil end
  local y, mo, d, h, mi, s = text:match("^(%d+)-(%d+)-(%d+)T(%d+):(%d+):([%d.]+)Z$")
  if not y then return nil end
  local whole = os.time { year = y, month = mo, day = d, hour = h, min = mi, sec = 0, isdst = false }
  local offset = os.time(os.date("!*t", 0)) -- os.time reads local time: undo the zone
  return whole - offset + tonumber(s)
end
history.parse_time = parse_time

local function params_text(params)
  local names, parts = {}, {}
  for k in pairs(params or {}) do names[#names + 1] = k end
  table.sort(names)
  for _, k in ipairs(names) do parts[#parts + 1] = k .. "=" .. tostring(params[k]) end
  return table.concat(parts, " ")
end

-- Whether a run's record passes `runs --status/--workflow/--since`.
local function wanted(rec, filter)
  if filter.status and rec.status ~= filter.status then return false end
  if filter.workflow and rec.workflow ~= filter.workflow then return false end
  if filter.since then
    local started = parse_time(rec.started)
    if not started or started < filter.since then return false end
  end
  return true
end

-- filter: status, workflow, since (seconds since the epoch), each optional.
function history.runs(store, as_json, filter)
  filter = filter or {}
  local ids = store:list(filter)
  if #ids == 0 and not as_json then
    print("no runs " .. (store.kind == "file" and "under " .. store.dir .. "/runs" or "in " .. store.where))
    return EXIT.SUCCEEDED
  end
  for _, id in ipairs(ids) do
    local rec, problem = history.load(store, id)
    if rec and wanted(rec, filter) then
      local started, finished = parse_time(rec.started), parse_time(rec.finished or rec.last_time)
      local elapsed = started and finished and (finished - started) or 0
      local key = key_held(store, id, rec)
      if as_json then
        print(json.encode { run_id = id, workflow = rec.workflow, params = rec.params, mode = rec.mode,
          status = rec.status, started = rec.started, seconds = elapsed, holds_lock = key })
      else
        print(string.format("%-22s %-16s %-10s %-12s %s %8s  %s%s", id, tostring(rec.workflow),
          tostring(rec.mode), rec.status, tostring(rec.started), view.duration(elapsed),
          params_text(rec.params), key and ("  [holds lock " .. key .. "]") or ""))
      end
    elseif not rec and not as_json and not (filter.status or filter.workflow or filter.since) then
      print(string.format("%-26s (unreadable: %s)", id, tostring(problem)))
    end
  end
  return EXIT.SUCCEEDED
end

local function summary(value)
  if value == nil then return "" end
  local ok, text = pcall(json.encode, journal.storable(value))
  text = ok and text or tostring(value)
  if #text > 60 then text = text:sub(1, 57) .. "..." end
  return text
end

function history.show(store, run_id, as_json)
  local rec, events, queued = history.load(store, run_id)
  if queued and not as_json then
    print(events)
    return EXIT.SUCCEEDED
  end
  if not rec then
    io.stderr:write("wfengine: ", tostring(events), "\n")
    return EXIT.USAGE
  end
  if rec.warning then io.stderr:write("warning: ", rec.warning, "\n") end
  local owed = rec.status == "succeeded" and {} or record.owed(rec)
  local plan = rec.plan or {}
  local order = {}
  for _, s in ipairs(plan) do order[#order + 1] = s.id end
  if #order == 0 then order = rec.order end
  if as_json then
    local steps = {}
    for i, id in ipairs(order) do
      local s = rec.steps[id] or { status = "pending", attempts = 0 }
      steps[#steps + 1] = { index = i, id = id, status = s.status, attempts = s.attempts,
        seconds = s.elapsed, error = s.error, result = s.result, compensation = s.compensation,
        compensation_error = s.compensation_error, reason = s.reason }
    end
    -- bytes that are not UTF-8 are shown in their journaled form
    print(json.encode(journal.printable { run_id = run_id, workflow = rec.workflow, file = rec.file,
      mode = rec.mode, status = rec.status, params = rec.params, started = rec.started,
      finished = rec.finished, failed_step = rec.failed_step, error = rec.error,
      steps = json.array(steps), owed = json.array(owed), state = rec.state }))
    return EXIT.SUCCEEDED
  end
  print(string.format("run %s: %s (%s), %s", run_id, tostring(rec.workflow), tostring(rec.mode),
    rec.status))
  print(string.format("  file %s  started %s  params %s", tostring(rec.file), tostring(rec.started),
    params_text(rec.params)))
  for i, id in ipairs(order) do
    local s = rec.steps[id] or { status = "pending", attempts = 0 }
    local line = string.format("  %2d. %-28s %-10s %d attempt%s %7s", i, id, s.status, s.attempts,
      s.attempts == 1 and " " or "s", s.elapsed and view.duration(s.elapsed) or "")
    if s.compensation then line = line .. "  undo: " .. s.compensation end
    if s.reason then line = line .. "  (" .. s.reason .. ")" end
    if s.status == "succeeded" and s.result ~= nil then line = line .. "  -> " .. summary(s.result) end
    print(line)
    if s.error and s.status ~= "succeeded" then print("        error: " .. view.error_text(s.error)) end
    if s.compensation_error then print("        undo error: " .. view.error_text(s.compensation_error)) end
  end
  if rec.error then print("  failed at " .. tostring(rec.failed_step) .. ": " .. view.error_text(rec.error)) end
  if #owed > 0 then
    print("  compensation owed (not undone yet): " .. table.concat(owed, ", "))
  end
  local next_step = {
    paused = "resume or rollback", interrupted = "resume or rollback", crashed = "resume or rollback",
    failed = #owed > 0 and "fix the cause, then: wfengine rollback " .. run_id or nil,
  }
  if rec.mode == "dry-run" and rec.status ~= "succeeded" then
    print("  next: a dry-run is not resumed or rolled back: fix the cause and dry-run again")
  elseif next_step[rec.status] then
    print("  next: " .. next_step[rec.status])
  end
  local key = key_held(store, run_id, rec)
  if key then print("  holds lock " .. key .. " until then (or: wfengine unlock " .. key .. ")") end
  return EXIT.SUCCEEDED
end

return history
