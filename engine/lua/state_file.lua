-- state_file.lua: the file backend of the state interface (state.lua): a
-- run is <dir>/runs/<RUN_ID>/events.jsonl (journal.lua), its process holds
-- <RUN_ID>/run.lock, lock keys are <dir>/locks/ (locks.lua), a confirm
-- answered from outside is <RUN_ID>/answers/<step> ("yes" or "no").
local files = require "wfengine.files"
local journal = require "wfengine.journal"
local locks = require "wfengine.locks"

local Store = {}
Store.__index = Store

local store_file = {}

function store_file.open(dir)
  return setmetatable({ kind = "file", dir = dir, where = dir }, Store)
end

function Store:run_path(run_id)
  return journal.run_dir(self.dir, run_id) .. "/events.jsonl"
end

function Store:run_lock(run_id, create, durable)
  return journal.lock_run(self.dir, run_id, create, durable)
end

function Store:live(run_id)
  return journal.run_live(self.dir, run_id)
end

-- No workers here: a run nobody holds goes on only when someone resumes it.
function Store:waiting()
  return false
end

local Writer = {}
Writer.__index = Writer

function Writer:append(event)
  return journal.append(self.journal, event)
end

function Store:writer(run_id, durable)
  local writer, warning = journal.open(self.dir, run_id, durable)
  if not writer then return nil, warning end
  return setmetatable({ journal = writer }, Writer), warning
end

function Store:events(run_id)
  return journal.read(self.dir, run_id)
end

-- Every run id (the filters are applied by history on each run's record).
function Store:list()
  return journal.list(self.dir)
end

function Store:lock_key(key, run_id)
  return locks.acquire(self, key, run_id)
end

function Store:release_key(key, run_id, code)
  return locks.release_if_done(self, key, run_id, code)
end

function Store:unlock(key, confirm)
  return locks.unlock(self, key, confirm)
end

function Store:holder(key)
  return locks.holder(self, key)
end

local function answer_path(dir, run_id, step)
  return journal.run_dir(dir, run_id) .. "/answers/" .. step:gsub("[^%w%-_.]", "_")
end

-- A confirm answered from outside the run's process (a console): kept until
-- the run reads it.
function Store:answer(run_id, step, yes)
  local ok, err = journal.check_run_id(run_id)
  if not ok then return nil, err end
  local made, mkdir_err = files.mkdir(journal.run_dir(self.dir, run_id) .. "/answers")
  if not made then return nil, mkdir_err end
  return files.write_file(answer_path(self.dir, run_id, step), yes and "yes" or "no")
end

-- true, false, or nil when nobody answered.
function Store:answer_of(run_id, step)
  local text = files.read_file(answer_path(self.dir, run_id, step))
  if not text then return nil end
  return text == "yes"
end

-- A long step's progress, for a console's progress bar (not a journal
-- event: resume does not need it): <run dir>/progress.json; nil when none.
function Store:progress(run_id, progress)
  local json = require "wf.json"
  return files.write_file(journal.run_dir(self.dir, run_id) .. "/progress.json", json.encode(progress))
end

function Store:progress_of(run_id)
  return files.read_file(journal.run_dir(self.dir, run_id) .. "/progress.json")
end

-- After the run's last event: nothing more to do for files (the run lock
-- goes with the process).
function Store:finished() end

function Store:close() end

return store_file
