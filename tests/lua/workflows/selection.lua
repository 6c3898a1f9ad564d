-- selection.lua: five steps and a parallel group, for --from/--only/--skip,
-- --fail-at and `when`. Every step logs its id; `maybe` runs only when the
-- parameter go is "yes".
return workflow {
  name = "selection",
  params = { go = { default = "no" } },
  steps = {
    step "a" { run = function(ctx) ctx:log("a") return ctx.attempt end },
    parallel "grp" {
      step "g1" { run = function(ctx) ctx:log("g1") return 1 end },
      step "g2" { run = function(ctx) ctx:log("g2") return 2 end },
    },
    step "maybe" {
      when = function(ctx) return ctx.params.go == "yes" end,
      run = function(ctx) ctx:log("maybe") return true end,
    },
    step "c" {
      retry = { attempts = 3, delay = 0 },
      run = function(ctx) ctx:log("c") return ctx.attempt end,
      simulate = function(ctx) ctx:log("c simulated") return ctx.attempt end,
    },
    step "d" { run = function(ctx) ctx:log("d") return 4 end },
  },
}
