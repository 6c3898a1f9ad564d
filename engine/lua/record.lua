-- record.lua: what a run's events say about it. The runner applies each
-- event as it journals it; resume, rollback, runs and show apply the events
-- read back. Both get the same record: the journal is the state.
local record = {}

function record.new()
  return { status = "new", steps = {}, order = {}, state = {}, events = 0 }
end

local function step_of(rec, id)
  local s = rec.steps[id]
  if not s then
    s = { id = id, status = "pending", attempts = 0 }
    rec.steps[id] = s
    rec.order[#rec.order + 1] = id
  end
  return s
end

local apply = {}

function apply.run_started(rec, ev)
  rec.run_id, rec.workflow, rec.file, rec.hash = ev.run_id, ev.workflow, ev.file, ev.hash
  rec.mode, rec.params, rec.lock, rec.started = ev.mode, ev.params, ev.lock, ev.time
  rec.plan = ev.steps
  rec.status = "running"
end

function apply.run_resumed(rec, ev)
  rec.status = ev.rollback and "compensating" or "running"
  rec.resumed = (rec.resumed or 0) + 1
end

function apply.step_started(rec, ev)
  local s = step_of(rec, ev.step)
  s.status, s.attempt, s.started = "running", ev.attempt, ev.time
  s.attempts = s.attempts + 1
end

function apply.step_failed(rec, ev)
  local s = step_of(rec, ev.step)
  s.status = ev.will_retry and "retrying" or "failed"
  s.error, s.elapsed = ev.error, ev.elapsed
end

function apply.step_succeeded(rec, ev)
  local s = step_of(rec, ev.step)
  s.status, s.result, s.elapsed, s.error = "succeeded", ev.result, ev.elapsed, nil
  s.irreversible = ev.irreversible
  if ev.state ~= nil then rec.state = ev.state end
end

function apply.step_skipped(rec, ev)
  local s = step_of(rec, ev.step)
  s.status, s.reason = "skipped", ev.reason
end

function apply.compensation_started(rec, ev)
  local s = step_of(rec, ev.step)
  s.compensation = "running"
  rec.status = "compensating"
  rec.unwinding = true -- once a run compensates, resuming it goes on compensating
end

function apply.compensation_succeeded(rec, ev)
  local s = step_of(rec, ev.step)
  s.compensation, s.compensation_error = "done", nil
end

function apply.compensation_failed(rec, ev)
  local s = step_of(rec, ev.step)
  s.compensation = ev.will_retry and "retrying" or "failed"
  s.compensation_error = ev.error
end

-- --confirm-from-state: the question waits for an answer in the state.
function apply.confirm_asked(rec, ev)
  local s = step_of(rec, ev.step)
  s.status, s.question = "asking", ev.question
end

function apply.confirm_answered(rec, ev)
  local s = step_of(rec, ev.step)
  s.status, s.answer = "pending", ev.answer
end

local function finished(status)
  return function(rec, ev)
    rec.status, rec.finished = status, ev.time or rec.last_time
    rec.failed_step, rec.error = ev.step or rec.failed_step, ev.error or rec.error
  end
end

function apply.run_succeeded(rec, ev)
  rec.status, rec.finished, rec.failed_step, rec.error = "succeeded", ev.time, nil, nil
end
apply.run_failed = finished("failed")
apply.run_compensated = finished("compensated")
apply.run_paused = finished("paused")
apply.run_interrupted = finished("interrupted")

-- Events about a step must name it; a hand-edited or foreign line that
-- does not is passed over rather than trusted.
local NEEDS_STEP = {
  step_started = true, step_failed = true, step_succeeded = true, step_skipped = true,
  compensation_started = true, compensation_succeeded = true, compensation_failed = true,
  confirm_asked = true, confirm_answered = true,
}

function record.apply(rec, ev)
  rec.events = rec.events + 1
  rec.last_time = ev.time or rec.last_time -- a forced run_interrupted has no time
  if NEEDS_STEP[ev.type] and type(ev.step) ~= "string" then return end
  if ev.attempt ~= nil and math.type(ev.attempt) ~= "integer" then ev.attempt = 1 end
  local f = apply[ev.type]
  if f then f(rec, ev) end
end

function record.replay(events)
  local rec = record.new()
  for _, ev in ipairs(events) do record.apply(rec, ev) end
  return rec
end

-- An attempt cut short: the process was killed or interrupted while the
-- step ran or waited to retry, so no step_succeeded or final step_failed
-- was journaled.
local CUT_SHORT = { running = true, retrying = true }

-- Whether step record s is owed its undo: it completed, or (the step says
-- undo_partial) an attempt of it was cut short; and the undo has not run to
-- the end. def is the step's definition, or the plan entry of run_started
-- when the workflow file is not at hand.
function record.undo_owed(s, def)
  if not def or not def.compensate or s.compensation == "done" then return false end
  return s.status == "succeeded" or (def.undo_partial == true and CUT_SHORT[s.status] == true)
end

-- Steps whose undo is owed (record.undo_owed), in plan order.
function record.owed(rec, wf)
  local owed, planned = {}, {}
  for _, s in ipairs(rec.plan or {}) do planned[s.id] = s end
  for _, id in ipairs(rec.order) do
    local def = wf and wf.by_id[id]
    if not wf then
      local p = planned[id]
      def = { compensate = not p or p.compensate ~= false, undo_partial = p and p.undo_partial }
    end
    if record.undo_owed(rec.steps[id], def) then owed[#owed + 1] = id end
  end
  return owed
end

return record
