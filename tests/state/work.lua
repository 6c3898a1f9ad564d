-- work.lua: a workflow for the pool tests: each step records its action
-- attempt in the table attempts, then sleeps.
local sql = require "wf.sql"

local function act(name)
  return function(ctx)
    local db = sql.connect(ctx.params.dsn)
    db:query("INSERT INTO attempts (run_id, step) VALUES ($1, $2)", ctx.run_id, name)
    db:close()
    ctx:sleep(tonumber(ctx.params.pause))
    return { done = name }
  end
end

return workflow {
  name = "work",
  params = { dsn = { required = true }, pause = { default = "0.3" }, target = { default = "t" } },
  lock = function(ctx) return "target:" .. ctx.params.target end,
  steps = {
    step "one" { run = act("one") },
    step "two" { run = act("two") },
    step "three" { run = act("three") },
  },
}
