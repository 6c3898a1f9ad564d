-- locks.lua: one run per lock key at a time. A lock is a file under
-- <state>/locks/ held with flock(2) for the life of the process, plus a
-- small JSON note naming the holder run, so a second run can say who holds
-- it. A holder that died leaves only the note: flock is free again, and the
-- lock is reclaimed automatically.
local core = require "wfengine.core"
local json = require "wf.json"

local locks = {}

local held = {}

local function file_name(key)
  return (key:gsub("[^%w%-_.]", function(c) return string.format("%%%02X", c:byte()) end))
end

local function read_note(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local text = f:read("a")
  f:close()
  local ok, note = pcall(json.decode, text)
  return ok and type(note) == "table" and note or nil
end

-- Returns true, or nil and a one-line message naming the holder.
function locks.acquire(state, key, run_id)
  local dir = state .. "/locks"
  local ok, err = core.mkdir(dir)
  if not ok then return nil, "cannot create " .. dir .. ": " .. tostring(err) end
  local base = dir .. "/" .. file_name(key)
  local fd, problem = core.lock(base .. ".lock")
  if not fd then
    if problem ~= "busy" then return nil, "cannot lock " .. base .. ".lock: " .. problem end
    local note = read_note(base .. ".json") or {}
    return nil, string.format("lock '%s' is held by run %s (%s, pid %s)", key,
      tostring(note.run_id or "?"), tostring(note.status or "running"), tostring(note.pid or "?"))
  end
  local note = read_note(base .. ".json")
  if note and note.status ~= "running" and note.run_id ~= run_id then
    core.unlock(fd)
    return nil, string.format("lock '%s' is held by run %s (%s: resume or roll it back)", key,
      tostring(note.run_id), tostring(note.status))
  end
  local f = io.open(base .. ".json", "wb")
  if f then
    f:write(json.encode { run_id = run_id, pid = core.getpid(), key = key, status = "running" })
    f:close()
  end
  held[key] = { fd = fd, base = base }
  return true
end

-- Keeps the note of a paused run (it still owns the key); removes it
-- otherwise. The flock goes with the process either way.
function locks.release_if_done(_, key, run_id, code)
  local lock = key and held[key]
  if not lock then return end
  if code == 5 or code == 4 or code == 3 then
    local f = io.open(lock.base .. ".json", "wb")
    if f then
      f:write(json.encode { run_id = run_id, key = key,
        status = code == 5 and "paused" or code == 4 and "interrupted" or "owes compensation" })
      f:close()
    end
  else
    os.remove(lock.base .. ".json")
  end
  core.unlock(lock.fd)
  held[key] = nil
end

return locks
