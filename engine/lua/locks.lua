-- locks.lua: one run per lock key. A key is a file <state>/locks/<key>.lock
-- locked (files.lock) by the process running the run, plus a JSON note naming
-- the holder run. The note outlives the process: the key stays with a run
-- that stopped unfinished (paused, interrupted, owing compensation, or
-- crashed after a step began) until it is resumed to the end, rolled back,
-- or released by hand (`wfengine unlock KEY`). Whether the holder is done
-- with the key is read from its journal, not from the note.
local core = require "wfengine.core"
local files = require "wfengine.files"
local json = require "wf.json"
local journal = require "wfengine.journal"

local locks = {}

local held = {}

local function file_name(key)
  return (key:gsub("[^%w%-_.]", function(c) return string.format("%%%02X", c:byte()) end))
end

local function base_of(store, key)
  return store.dir .. "/locks/" .. file_name(key)
end

-- The note, nil when there is none, or false and a message when it cannot
-- be read (a symbolic link is refused, not followed).
local function read_note(path)
  local text, err, why = files.read_file(path)
  if not text then
    if why == "absent" then return nil end
    return false, err
  end
  local ok, note = pcall(json.decode, text)
  if ok and type(note) == "table" then return note end
  return false, path .. ": not a lock note"
end

local function write_note(path, fields)
  return files.write_file(path, json.encode(fields))
end

-- Whether a crashed run may have changed anything: a step or an undo began.
local function did_something(rec)
  for _, s in pairs(rec.steps) do
    if s.attempts > 0 or s.compensation then return true end
  end
  return false
end

-- Why the run named by a note still owns its key (a status to show), or
-- nil when it is done with it: it finished, owes nothing, was a dry-run,
-- never journaled, or crashed before any step began.
function locks.still_held_by(store, note)
  local run_id = note.run_id
  if not journal.check_run_id(run_id) then return "unknown run" end
  local history = require "wfengine.history"
  local rec, problem = history.load(store, run_id)
  if not rec then
    if not store:live(run_id) and (problem:find("^no run ") or problem:find("never started")) then
      return nil
    end
    return "unreadable journal"
  end
  if rec.mode == "dry-run" and rec.status ~= "running" then return nil end
  local status = rec.status
  if status == "succeeded" or status == "compensated" then return nil end
  if status == "failed" then
    return #require("wfengine.record").owed(rec) > 0 and "owes compensation" or nil
  end
  if status == "crashed" and not did_something(rec) then return nil end
  return status
end

local function refusal(key, run_id, status, pid)
  if status == "running" then
    return string.format("lock '%s' is held by run %s (running%s)", key, tostring(run_id),
      math.type(pid) == "integer" and (", pid " .. pid) or "")
  end
  return string.format("lock '%s' is held by run %s (%s: resume or roll it back, or `wfengine unlock %s`)",
    key, tostring(run_id), status, key)
end

locks.refusal = refusal

-- Returns true, or nil and a one-line message naming the holder.
function locks.acquire(store, key, run_id)
  local dir = store.dir .. "/locks"
  local ok, err = files.mkdir(dir)
  if not ok then return nil, "cannot create " .. dir .. ": " .. tostring(err) end
  local base = base_of(store, key)
  local fd, problem = files.lock(base .. ".lock")
  if not fd then
    if problem ~= "busy" then return nil, "cannot lock " .. problem end
    local note = read_note(base .. ".json") or {}
    return nil, refusal(key, note.run_id or "?", "running", note.pid)
  end
  local note, note_err = read_note(base .. ".json")
  local status = note and note.run_id ~= run_id and locks.still_held_by(store, note)
  local written, write_err
  if note == false then
    write_err = note_err
  elseif status then
    files.unlock(fd)
    return nil, refusal(key, note.run_id, status)
  else
    written, write_err = write_note(base .. ".json",
      { run_id = run_id, pid = core.getpid(), key = key, status = "running" })
  end
  if not written then
    files.unlock(fd)
    return nil, "cannot take lock '" .. key .. "': " .. tostring(write_err)
  end
  held[key] = { fd = fd, base = base }
  return true
end

-- What a run's exit code does to its lock key (both backends): nil when the
-- run ended done (succeeded or compensated) and gives the key back, else the
-- status the kept key shows.
function locks.kept_status(code)
  local EXIT = core.EXIT
  if code == EXIT.SUCCEEDED or code == EXIT.COMPENSATED then return nil end
  return code == EXIT.PAUSED and "paused" or code == EXIT.INTERRUPTED and "interrupted"
    or "owes compensation"
end

-- A run that ended done gives its key back; any other end keeps it, with a
-- note saying why. The lock itself goes with the process either way.
function locks.release_if_done(_, key, run_id, code)
  local lock = key and held[key]
  if not lock then return end
  local status = locks.kept_status(code)
  if not status then
    os.remove(lock.base .. ".json")
  else
    write_note(lock.base .. ".json", { run_id = run_id, key = key, status = status })
  end
  files.unlock(lock.fd)
  held[key] = nil
end

-- The run whose note holds key, or nil.
function locks.holder(store, key)
  local note = read_note(base_of(store, key) .. ".json")
  return note and note.run_id or nil
end

-- `wfengine unlock KEY`: releases a key whose holder is not running, after
-- confirm(question) says yes. Journals nothing in the run. Returns the exit
-- code.
function locks.unlock(store, key, confirm)
  local base = base_of(store, key)
  local note, note_err = read_note(base .. ".json")
  if note == false then return nil, note_err end
  local fd, problem = files.lock(base .. ".lock")
  if not fd and problem == "busy" then
    return nil, refusal(key, note and note.run_id or "?", "running") .. ": stop it first"
  end
  if not fd and not note then return nil, string.format("lock '%s' is not held: nothing to release", key) end
  if not fd then return nil, "cannot lock " .. problem end
  if not note then
    files.unlock(fd)
    return nil, string.format("lock '%s' is not held: nothing to release", key)
  end
  local status = locks.still_held_by(store, note) or "done with it"
  local what = string.format("lock '%s' held by run %s (%s)", key, tostring(note.run_id), status)
  if not confirm("release " .. what .. "? Its run's steps are not undone by this.") then
    files.unlock(fd)
    return nil, "not released: " .. what
  end
  os.remove(base .. ".json")
  files.unlock(fd)
  return "released " .. what
end

return locks
