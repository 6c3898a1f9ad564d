-- estimate.lua: how long each step of a workflow takes, from the earlier
-- real runs of it in the state (a directory or PostgreSQL): the median and
-- the worst of each step's succeeded attempts. Shared by `plan --estimate`
-- and the end of `--simulate`.
local history = require "wfengine.history"
local view = require "wfengine.view"

local estimate = {}

local function median(list)
  table.sort(list)
  local n = #list
  if n % 2 == 1 then return list[(n + 1) // 2] end
  return (list[n // 2] + list[n // 2 + 1]) / 2
end

--- estimate.collect(store, workflow_name) -> {step id = {median, worst, runs}},
--- runs (how many real runs were read). Dry-runs and simulations do not count.
function estimate.collect(store, name)
  local samples, runs = {}, 0
  for _, id in ipairs(store:list { workflow = name }) do
    local rec, events = history.load(store, id)
    if rec and rec.workflow == name and rec.mode == "run" then
      runs = runs + 1
      for _, e in ipairs(events) do
        if e.type == "step_succeeded" and tonumber(e.elapsed) then
          local list = samples[e.step] or {}
          list[#list + 1] = tonumber(e.elapsed)
          samples[e.step] = list
        end
      end
    end
  end
  local stats = {}
  for step, list in pairs(samples) do
    local worst = math.max(table.unpack(list))
    stats[step] = { median = median(list), worst = worst, runs = #list }
  end
  return stats, runs
end

-- Totals over the workflow's units: a parallel group takes as long as its
-- longest step. Steps without samples count 0 and are named in `missing`.
local function totals(wf, stats)
  local med, worst, missing = 0, 0, {}
  for _, unit in ipairs(wf.units) do
    local m, w = 0, 0
    for _, s in ipairs(unit.kind == "group" and unit.steps or { unit }) do
      local st = stats[s.id]
      if st then m, w = math.max(m, st.median), math.max(w, st.worst)
      else missing[#missing + 1] = s.id end
    end
    med, worst = med + m, worst + w
  end
  return med, worst, missing
end

--- estimate.lines(wf, stats, runs) -> lines of text: one per step, then the total.
function estimate.lines(wf, stats, runs)
  if runs == 0 then return { "no earlier real run of " .. wf.name .. " in this state: nothing to estimate from" } end
  local out = { string.format("estimated from %d earlier run%s (median / worst of each step):", runs,
    runs == 1 and "" or "s") }
  for _, s in ipairs(wf.steps) do
    local st = stats[s.id]
    out[#out + 1] = st and string.format("  %2d. %-32s %8s / %-8s (%d sample%s)", s.index, s.id,
      view.duration(st.median), view.duration(st.worst), st.runs, st.runs == 1 and "" or "s")
      or string.format("  %2d. %-32s no sample", s.index, s.id)
  end
  local med, worst, missing = totals(wf, stats)
  out[#out + 1] = string.format("total: about %s (worst %s)%s", view.duration(med), view.duration(worst),
    #missing > 0 and string.format(", without %d step%s never run", #missing, #missing == 1 and "" or "s") or "")
  return out
end

return estimate
