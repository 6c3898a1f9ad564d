-- hostile.lua: a workflow whose parameters, logs, results and errors carry
-- markup, for tests/console/console.t: the console must show them as text.
local HOSTILE = [[<script>window.pwned = 1</script>"><img src=x onerror="window.pwned = 2">]]

return workflow {
  name = "hostile",
  description = "Markup everywhere: " .. HOSTILE,
  params = {
    note = { default = "<b>bold</b>", doc = "free text <i>with markup</i>" },
  },
  steps = {
    step "speak" {
      title = "Logs " .. HOSTILE,
      run = function(ctx)
        ctx:log("log line %s note=%s", HOSTILE, ctx.params.note)
        ctx:progress(50, 100, "bytes")
        return { said = HOSTILE }
      end,
    },
    step "trip" {
      title = "Fails with markup in its error",
      compensate = function(ctx) ctx:log("undo %s", HOSTILE) end,
      run = function(ctx)
        if ctx.params.note == "fail" then ctx:fail("error " .. HOSTILE, { retryable = false }) end
        return true
      end,
    },
  },
}
