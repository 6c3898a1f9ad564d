-- state.lua: where runs live. `--state DIR` (or $WFENGINE_STATE, else
-- ./.wfengine) is the file backend (state_file.lua: one machine);
-- `--state postgresql://...` (or postgres://) is PostgreSQL (state_pg.lua: a
-- team). Both give the one interface the runner, runs, show, resume,
-- rollback and unlock use (docs/architecture.md#the-state-interface):
--   store:run_lock(run_id, create, durable)  one process per run (file: run.lock; PG: the lease)
--   store:live(run_id)                       a process holds it now
--   store:waiting(run_id)                    nobody does, but a worker will take it (PG: a
--                                            pooled run queued, or claimable again)
--   store:writer(run_id, durable)            -> writer; writer:append(event) -> line | nil, "fenced"
--   store:events(run_id)                     -> events, warning | nil, message
--   store:list{status=, workflow=, since=}   -> run ids, newest first (a hint: history re-checks)
--   store:lock_key(key, run_id) / release_key(key, run_id, code) / unlock(key, confirm) / holder(key)
--   store:answer(run_id, step, yes) / store:answer_of(run_id, step)   a confirm answered from outside
--   store:run_path(run_id)                   where a run's events are, for messages
local state = {}

function state.is_url(value)
  return type(value) == "string" and (value:find("^postgresql://") or value:find("^postgres://")) ~= nil
end

-- The --state value: the option, else $WFENGINE_STATE, else ./.wfengine; or
-- nil and why not (an empty one would put runs at the filesystem root).
function state.location(option)
  if option == "" then return nil, "--state needs a directory or a postgresql:// URL, not an empty string" end
  local env = os.getenv("WFENGINE_STATE")
  if option == nil and env == "" then
    return nil, "WFENGINE_STATE is set but empty: name a directory or a postgresql:// URL, or unset it"
  end
  return option or env or "./.wfengine"
end

-- $WFENGINE_STATE_TIMINGS=FILE (tests/bench/state.sh): every event
-- append's duration, in milliseconds, one a line, added to FILE.
local function timed(store, path)
  local core = require "wfengine.core"
  local writer = store.writer
  function store.writer(self, ...)
    local w, err = writer(self, ...)
    if not w then return w, err end
    local append = w.append
    w.append = function(this, event)
      local t0 = core.now()
      local line, fenced = append(this, event)
      local f = io.open(path, "a")
      if f then f:write(string.format("%.3f\n", (core.now() - t0) * 1000)) f:close() end
      return line, fenced
    end
    return w, err
  end
  return store
end

-- Opens the store the option names. Returns it or nil, message.
function state.open(option)
  local where, err = state.location(option)
  if not where then return nil, err end
  local store, open_err
  if state.is_url(where) then
    store, open_err = require("wfengine.state_pg").open(where)
  else
    store, open_err = require("wfengine.state_file").open(where)
  end
  local timings = os.getenv("WFENGINE_STATE_TIMINGS")
  if store and timings and timings ~= "" then timed(store, timings) end
  return store, open_err
end

return state
