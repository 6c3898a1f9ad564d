-- many.lua: for tests/state/workers.t. Every action and compensation
-- attempt is recorded in the table attempts with how many of the run's
-- events were committed before it (so an action of a step that had
-- already completed shows). fail=1: step three fails, the run compensates.
local sql = require "wf.sql"

local function record(ctx, kind)
  local db = sql.connect(ctx.params.dsn)
  db:query([[INSERT INTO attempts (run_id, step, kind, events_before)
    SELECT $1, $2, $3, count(*) FROM wfengine.events WHERE run_id = $1]], ctx.run_id, ctx.step, kind)
  db:close()
end

local function act(ctx)
  record(ctx, "do")
  ctx:sleep(tonumber(ctx.params.pause))
  if ctx.step == "three" and ctx.params.fail == "1" then ctx:fail("three fails on purpose", { retryable = false }) end
  return ctx.step
end

local function undo(ctx)
  record(ctx, "undo")
  ctx:sleep(tonumber(ctx.params.pause))
end

return workflow {
  name = "many",
  on_failure = "compensate",
  -- the actions use the state's cluster too: a restart fails them, retried
  retry = { attempts = 20, delay = 0.2, backoff = 1, jitter = false },
  params = { dsn = { required = true }, pause = { default = "0.1" }, fail = { default = "0" } },
  steps = {
    step "one" { run = act, compensate = undo },
    step "two" { run = act, compensate = undo },
    step "three" { run = act, compensate = undo },
    step "four" { run = act, compensate = undo },
  },
}
