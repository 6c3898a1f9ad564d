-- gate.lua: a workflow for tests/console/api.t: step "hold" waits until the
-- file params.gate exists, so that a test pauses the run at a known point.
local function exists(path)
  local f = io.open(path, "rb")
  if f then f:close() end
  return f ~= nil
end

return workflow {
  name = "gate",
  description = "Waits at step hold for a file the test creates",
  params = { gate = { required = true, doc = "the file step hold waits for" } },
  steps = {
    step "prepare" {
      title = "Prepare",
      run = function() return { prepared = true } end,
      compensate = function(ctx) ctx:log("prepare undone") end,
    },
    step "hold" {
      title = "Hold until the gate file exists",
      run = function(ctx)
        ctx:log("waiting for the gate file")
        return ctx:wait_until(function() return exists(ctx.params.gate) end,
          { timeout = 300, interval = 0.05, what = "the gate file" })
      end,
    },
    step "finish" { title = "Finish", run = function() return true end },
  },
}
