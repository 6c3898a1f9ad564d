-- plan.lua: `wfengine plan` in text, markdown (the seed's table), json and
-- dot (Graphviz).
local json = require "wf.json"
local params = require "wfengine.params"

local plan = {}

local function flags(s)
  local out = {}
  if s.confirm then out[#out + 1] = "confirm: asked when reached" end
  if s.irreversible then out[#out + 1] = "irreversible" end
  if s.compensate then out[#out + 1] = s.undo_partial and "undo, also partial" or "undo" end
  if s.when then out[#out + 1] = "conditional" end
  return out
end

-- The steps in order, each group's own line (its title and doc) before
-- its members: fn(step) or fn(nil, group).
local function each_line(wf, fn)
  for _, unit in ipairs(wf.units) do
    if unit.kind == "group" then
      fn(nil, unit)
      for _, s in ipairs(unit.steps) do fn(s) end
    else
      fn(unit)
    end
  end
end

local function range(group)
  return group.steps[1].index, group.steps[#group.steps].index
end

function plan.text(wf)
  local lines = { wf.name .. (wf.description and (": " .. wf.description) or ""), "" }
  local width = #tostring(#wf.steps)
  each_line(wf, function(s, group)
    if group then
      local first, last = range(group)
      lines[#lines + 1] = string.format("%s  parallel %s (%d-%d): %s%s", string.rep(" ", width),
        group.id, first, last, group.title, group.doc and (" -- " .. group.doc) or "")
      return
    end
    local f = flags(s)
    lines[#lines + 1] = string.format("%" .. width .. "d. %-28s %s%s%s", s.index, s.id, s.title,
      s.group and ("  [parallel " .. s.group .. "]") or "",
      #f > 0 and ("  (" .. table.concat(f, ", ") .. ")") or "")
  end)
  local described = params.describe(wf)
  if #described > 0 then
    lines[#lines + 1] = ""
    lines[#lines + 1] = "parameters:"
    table.move(described, 1, #described, #lines + 1, lines)
  end
  return table.concat(lines, "\n") .. "\n"
end

local function cell(text)
  return (tostring(text or ""):gsub("|", "\\|"):gsub("\n+", " "))
end

function plan.markdown(wf)
  local lines = { "# " .. cell(wf.name), "" }
  if wf.description then lines[#lines + 1] = cell(wf.description); lines[#lines + 1] = "" end
  lines[#lines + 1] = "Task number | Task | Description |"
  lines[#lines + 1] = "---|---|---|"
  each_line(wf, function(s, group)
    if group then
      local first, last = range(group)
      lines[#lines + 1] = string.format("%02d-%02d | %s (in parallel) | %s |", first, last,
        cell(group.title), cell(group.doc))
    else
      lines[#lines + 1] = string.format("%02d | %s | %s |", s.index, cell(s.title), cell(s.doc))
    end
  end)
  local described = params.describe(wf)
  if #described > 0 then
    lines[#lines + 1] = ""
    lines[#lines + 1] = "Parameters:"
    lines[#lines + 1] = ""
    for _, line in ipairs(described) do lines[#lines + 1] = "-" .. cell(line:sub(2)) end
  end
  return table.concat(lines, "\n") .. "\n"
end

function plan.json(wf)
  local steps = {}
  for _, s in ipairs(wf.steps) do
    steps[#steps + 1] = { index = s.index, id = s.id, title = s.title, group = s.group or json.null,
      doc = s.doc, confirm = s.confirm, irreversible = s.irreversible or false,
      compensate = s.compensate ~= nil, undo_partial = s.undo_partial or false }
  end
  local parameters = {}
  for _, name in ipairs(params.sorted(wf)) do
    local spec = wf.params[name]
    parameters[#parameters + 1] = { name = name, doc = spec.doc, required = spec.required or false,
      secret = spec.secret or false, env = spec.env,
      default = not spec.secret and spec.default or nil }
  end
  return json.encode({ name = wf.name, description = wf.description, steps = json.array(steps),
    params = json.array(parameters) }) .. "\n"
end

local function dot_label(text)
  return '"' .. tostring(text):gsub('[\\"]', "\\%0") .. '"'
end

function plan.dot(wf)
  local lines = { "digraph " .. dot_label(wf.name) .. " {", "  rankdir=TB;", "  node [shape=box];" }
  local previous = {}
  for _, unit in ipairs(wf.units) do
    local members = unit.kind == "group" and unit.steps or { unit }
    if unit.kind == "group" then
      lines[#lines + 1] = "  subgraph " .. dot_label("cluster_" .. unit.id) .. " { label="
        .. dot_label(unit.title) .. ";"
    end
    for _, s in ipairs(members) do
      lines[#lines + 1] = string.format("  %s [label=%s%s];", dot_label(s.id),
        dot_label(string.format("%d. %s", s.index, s.title)), s.irreversible and ", style=bold" or "")
    end
    if unit.kind == "group" then lines[#lines + 1] = "  }" end
    for _, from in ipairs(previous) do
      for _, s in ipairs(members) do
        lines[#lines + 1] = string.format("  %s -> %s;", dot_label(from), dot_label(s.id))
      end
    end
    previous = {}
    for _, s in ipairs(members) do previous[#previous + 1] = s.id end
  end
  lines[#lines + 1] = "}"
  return table.concat(lines, "\n") .. "\n"
end

return plan
