-- three_steps.lua: the simplest run: three steps in order, each logs.
return workflow {
  name = "three_steps",
  steps = {
    step "first" { run = function(ctx) ctx:log("first ran") return { n = 1 } end },
    step "second" { run = function(ctx) ctx:log("second ran") return { n = 2 } end },
    step "third" { run = function(ctx) ctx:log("third ran") return { n = 3 } end },
  },
}
