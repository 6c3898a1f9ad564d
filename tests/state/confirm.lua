-- confirm.lua: a step that asks to confirm; the action leaves a mark.
return workflow {
  name = "confirm",
  params = { marks = { required = true } },
  steps = {
    step "ask" {
      confirm = "really?",
      run = function(ctx)
        local f = assert(io.open(ctx.params.marks, "a"))
        f:write("acted\n")
        f:close()
      end,
    },
  },
}
