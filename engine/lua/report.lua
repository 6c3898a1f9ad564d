-- report.lua: the change report of a dry-run (`run --dry-run --report FILE`,
-- docs/operations.md "Change reports and approvals") and the check of an
-- approved report against a fresh dry-run (`run --approved FILE`).
-- Built from the dry-run's journal events, which hold no secret (every
-- log line is redacted when journaled); the text is redacted once more.
local core = require "wfengine.core"
local json = require "wf.json"

local report = {}

report.VERSION = 1

-- The "Undo: ..." sentence(s) of a step's doc: what its compensate does.
local function undo_text(s)
  local undo = s.doc and s.doc:match("Undo: (.*)$")
  if s.irreversible then return "none: irreversible (a later failure pauses for a person)" end
  if undo then return undo end
  if s.compensate then return "its compensate undoes it (not described in its doc)" end
  return "none needed"
end

local HTTP_METHOD = { POST = true, PUT = true, PATCH = true, DELETE = true }

-- A "would" line: sql, http, mail or other.
local function kind_of(line)
  if line:find("^execute: ") then return "sql" end
  local method = line:match("^(%u+) ")
  if method and HTTP_METHOD[method] then return "http" end
  if line:find("mailbox") or line:find("^send ") then return "mail" end
  return "other"
end

local function new_step(s)
  return { index = s.index, id = s.id, title = s.title, group = s.group or json.null,
    status = "not reached", irreversible = s.irreversible == true, tallies = {}, sql = {},
    http = {}, mail = {}, other = {}, notes = {}, compensation = undo_text(s) }
end

local STATUS = { step_succeeded = "would run", step_skipped = "skipped", step_failed = "failed" }

local function apply(steps, e)
  local st = e.step and steps[e.step]
  if not st then return end
  if STATUS[e.type] and not (e.type == "step_failed" and e.will_retry) then
    st.status = STATUS[e.type]
    if e.type == "step_skipped" then st.skip_reason = e.reason end
    if e.type == "step_failed" and e.error then st.error = e.error.message end
  elseif e.type == "log" and e.tally then
    st.tallies[#st.tallies + 1] = { n = e.tally.n, what = e.tally.what, verb = e.tally.verb,
      done = e.tally.done or e.tally.verb, text = e.message }
  elseif e.type == "log" and e.level == "would" then
    local list = st[kind_of(e.message)]
    list[#list + 1] = e.message
  elseif e.type == "log" and (e.level == "info" or e.level == "warn") then
    st.notes[#st.notes + 1] = (e.level == "warn" and "warning: " or "") .. e.message
  end
end

-- "1,234" for 1234
local function grouped(n)
  local digits = tostring(n)
  if not digits:match("^%d+$") then return digits end
  return (digits:reverse():gsub("(%d%d%d)", "%1,"):reverse():gsub("^,", ""))
end

-- Totals over every step, in the order first met: {n, what, verb, done, irreversible}.
local function totals(list)
  local out, by = {}, {}
  for _, st in ipairs(list) do
    for _, t in ipairs(st.tallies) do
      local key = t.verb .. "\0" .. t.what
      local total = by[key]
      if not total then
        total = { n = 0, what = t.what, verb = t.verb, done = t.done, irreversible = false }
        by[key] = total
        out[#out + 1] = total
      end
      total.n = total.n + t.n
      total.irreversible = total.irreversible or st.irreversible
    end
  end
  return out
end

local function summary(list)
  local parts = {}
  for _, t in ipairs(list) do
    if t.n > 0 then
      local noun = t.n == 1 and t.what:gsub("s$", "") or t.what
      parts[#parts + 1] = grouped(t.n) .. " " .. noun .. " " .. t.done
        .. (t.irreversible and " (irreversible)" or "")
    end
  end
  return #parts > 0 and table.concat(parts, ", ") or "nothing"
end

local function arrays(st)
  for _, k in ipairs { "tallies", "sql", "http", "mail", "other", "notes" } do
    st[k] = json.array(st[k])
  end
  return st
end

--- report.build(wf, events, info) -> the report table (JSON shape:
--- docs/change-report.schema.json). info: run_id, file, params (shown).
function report.build(wf, events, info)
  local steps, list = {}, {}
  for _, s in ipairs(wf.steps) do
    steps[s.id] = new_step(s)
    list[#list + 1] = steps[s.id]
  end
  local outcome = "unknown"
  for _, e in ipairs(events) do
    apply(steps, e)
    if e.type == "run_succeeded" then outcome = "succeeded"
    elseif e.type == "run_failed" or e.type == "run_compensated" then outcome = "failed"
    elseif e.type == "run_paused" then outcome = "paused"
    elseif e.type == "run_interrupted" then outcome = "interrupted" end
  end
  local sums = totals(list)
  for _, st in ipairs(list) do arrays(st) end
  return { report = "wfengine change report", version = report.VERSION, workflow = wf.name,
    file = info.file, hash = wf.hash, run_id = info.run_id, mode = "dry-run", outcome = outcome,
    created = os.date("!%Y-%m-%dT%H:%M:%SZ"), params = json.object(info.params or {}),
    summary = summary(sums), totals = json.array(sums), steps = json.array(list) }
end

-- ---- markdown ----------------------------------------------------------------

local function cell(text)
  return (tostring(text):gsub("|", "\\|"):gsub("\n", " "))
end

local function fenced(out, title, lines)
  if #lines == 0 then return end
  out[#out + 1] = string.format("%s (%d):\n", title, #lines)
  out[#out + 1] = "```text"
  for _, line in ipairs(lines) do out[#out + 1] = (line:gsub("```", "` ` `")) end
  out[#out + 1] = "```\n"
end

local function step_changes(st)
  local parts = {}
  for _, t in ipairs(st.tallies) do parts[#parts + 1] = t.text end
  local calls = #st.http + #st.sql + #st.mail + #st.other
  if #parts == 0 and calls > 0 then parts[1] = string.format("%d change%s", calls, calls == 1 and "" or "s") end
  return #parts > 0 and table.concat(parts, "; ") or "reads only"
end

local function markdown_step(out, st)
  out[#out + 1] = string.format("### %d. %s: %s%s\n", st.index, st.id, cell(st.title),
    st.irreversible and " (irreversible)" or "")
  out[#out + 1] = string.format("Status: %s%s.\n", st.status,
    st.skip_reason and (" (" .. st.skip_reason .. ")") or st.error and (": " .. st.error) or "")
  for _, t in ipairs(st.tallies) do out[#out + 1] = "- " .. t.text end
  for _, note in ipairs(st.notes) do out[#out + 1] = "- note: " .. note end
  if #st.tallies + #st.notes > 0 then out[#out + 1] = "" end
  fenced(out, "HTTP calls", st.http)
  fenced(out, "SQL statements", st.sql)
  fenced(out, "Mail server changes", st.mail)
  fenced(out, "Other changes", st.other)
  out[#out + 1] = "Compensation: " .. st.compensation .. "\n"
end

-- The JSON inside an HTML comment: '>' only occurs in JSON strings, where
-- \u003e means the same, so the comment cannot end early.
local function embedded(r)
  return "<!-- wfengine-report-json\n" .. json.encode(r):gsub(">", "\\u003e") .. "\n-->\n"
end

--- report.markdown(r) -> text: totals, a table of the steps, then each
--- step's changes; the JSON report rides along in an HTML comment, so an
--- approved markdown file is read back exactly (report.read).
function report.markdown(r)
  local out = { string.format("# Change report: %s\n", r.workflow),
    string.format("Dry-run `%s` of `%s` (code hash `%s`), %s; outcome: %s.\n", r.run_id, r.file,
      r.hash, r.created, r.outcome),
    "## Totals\n", "**Would change:** " .. r.summary .. "\n" }
  if #r.totals > 0 then
    out[#out + 1] = "| count | what | change | irreversible |"
    out[#out + 1] = "|---:|---|---|---|"
    for _, t in ipairs(r.totals) do
      out[#out + 1] = string.format("| %s | %s | %s | %s |", grouped(t.n), cell(t.what), cell(t.done),
        t.irreversible and "yes" or "")
    end
    out[#out + 1] = ""
  end
  local names = {}
  for k in pairs(r.params) do names[#names + 1] = k end
  table.sort(names)
  if #names > 0 then
    out[#out + 1] = "## Parameters\n"
    out[#out + 1] = "| parameter | value |"
    out[#out + 1] = "|---|---|"
    for _, k in ipairs(names) do out[#out + 1] = string.format("| %s | `%s` |", cell(k), cell(r.params[k])) end
    out[#out + 1] = ""
  end
  out[#out + 1] = "## Steps\n"
  out[#out + 1] = "| # | step | status | would change | irreversible | compensation |"
  out[#out + 1] = "|---:|---|---|---|---|---|"
  for _, st in ipairs(r.steps) do
    out[#out + 1] = string.format("| %d | %s | %s | %s | %s | %s |", st.index, cell(st.id), st.status,
      cell(step_changes(st)), st.irreversible and "yes" or "", cell(st.compensation))
  end
  out[#out + 1] = ""
  for _, st in ipairs(r.steps) do markdown_step(out, st) end
  out[#out + 1] = embedded(r)
  return table.concat(out, "\n")
end

--- report.write(path, format, r) -> true or nil, message
function report.write(path, format, r)
  local text = format == "json" and (json.encode(r) .. "\n") or report.markdown(r)
  -- a SCRAM verifier (CREATE ROLE ... PASSWORD) is derived from a password: not shown either
  text = core.redact(text):gsub("SCRAM%-SHA%-256%$[^'\"%s]*", "SCRAM-SHA-256$***")
  local f, err = io.open(path, "w")
  if not f then return nil, "cannot write the report: " .. tostring(err) end
  local ok, werr = f:write(text)
  f:close()
  if not ok then return nil, "cannot write the report " .. path .. ": " .. tostring(werr) end
  return true
end

--- report.read(path) -> the report table (from a JSON report or the
--- comment of a markdown one), or nil, message.
function report.read(path)
  local f, err = io.open(path, "r")
  if not f then return nil, "--approved: " .. tostring(err) end
  local text = f:read("a")
  f:close()
  local body = text:match("^%s*{") and text or text:match("<!%-%- wfengine%-report%-json\n(.-)\n%-%->")
  if not body then return nil, "--approved " .. path .. ": not a wfengine change report (no report JSON in it)" end
  local ok, r = pcall(json.decode, body)
  if not ok or type(r) ~= "table" or r.report ~= "wfengine change report" then
    return nil, "--approved " .. path .. ": not a wfengine change report"
  end
  return r
end

-- ---- approval ----------------------------------------------------------------

-- A line with the run's id (and its mailbox form) replaced, to compare two runs.
local function normal(line, run_id)
  if not run_id then return line end
  local key = run_id:lower():gsub("[^a-z0-9]", "_")
  local function plain(s) return (s:gsub("%p", "%%%0")) end
  return (line:gsub(plain(run_id), "<run>"):gsub(plain(key), "<run>"))
end

local function within(old, new, tolerance)
  return math.abs(new - old) <= math.floor(old * tolerance / 100 + 1e-9)
end

local function compare_tallies(diffs, id, a, b, tolerance)
  local old = {}
  for _, t in ipairs(a) do old[t.verb .. " " .. t.what] = (old[t.verb .. " " .. t.what] or 0) + t.n end
  local new = {}
  for _, t in ipairs(b) do new[t.verb .. " " .. t.what] = (new[t.verb .. " " .. t.what] or 0) + t.n end
  local keys = {}
  for k in pairs(old) do keys[#keys + 1] = k end
  for k in pairs(new) do if old[k] == nil then keys[#keys + 1] = k end end
  table.sort(keys)
  for _, k in ipairs(keys) do
    local o, n = old[k], new[k]
    if o == nil or n == nil or not within(o, n, tolerance) then
      diffs[#diffs + 1] = string.format("step %s: would %s: approved %s, now %s%s", id, k,
        o and grouped(o) or "none", n and grouped(n) or "none",
        (o and n and tolerance > 0) and string.format(" (beyond %g%%)", tolerance) or "")
    end
  end
end

local function compare_lines(diffs, st, a, b)
  for _, kind in ipairs { "http", "sql", "mail", "other" } do
    local x, y = {}, {}
    for i, line in ipairs(st.old[kind] or {}) do x[i] = normal(line, a.run_id) end
    for i, line in ipairs(st.new[kind] or {}) do y[i] = normal(line, b.run_id) end
    if table.concat(x, "\n") ~= table.concat(y, "\n") then
      diffs[#diffs + 1] = string.format("irreversible step %s: its %s changes differ (approved %d, now %d)",
        st.id, kind, #x, #y)
    end
  end
end

--- report.differences(approved, fresh, tolerance) -> list of lines (empty:
--- the fresh dry-run still matches). Same code hash and parameters, same
--- steps with the same status, every count within tolerance percent (of
--- the approved count), irreversible steps with the same changes exactly.
function report.differences(a, b, tolerance)
  local diffs = {}
  if a.hash ~= b.hash then
    diffs[#diffs + 1] = string.format("workflow code hash: approved %s, now %s", tostring(a.hash), tostring(b.hash))
  end
  local names = {}
  for k in pairs(a.params or {}) do names[k] = true end
  for k in pairs(b.params or {}) do names[k] = true end
  local sorted = {}
  for k in pairs(names) do sorted[#sorted + 1] = k end
  table.sort(sorted)
  for _, k in ipairs(sorted) do
    if tostring(a.params[k]) ~= tostring(b.params[k]) then
      diffs[#diffs + 1] = string.format("parameter %s: approved %s, now %s", k, tostring(a.params[k]),
        tostring(b.params[k]))
    end
  end
  if b.outcome ~= "succeeded" then diffs[#diffs + 1] = "the fresh dry-run did not succeed: " .. tostring(b.outcome) end
  local old = {}
  for _, st in ipairs(a.steps or {}) do old[st.id] = st end
  for _, st in ipairs(b.steps or {}) do
    local o = old[st.id]
    if not o then
      diffs[#diffs + 1] = "step " .. st.id .. ": not in the approved report"
    else
      old[st.id] = nil
      if o.status ~= st.status then
        diffs[#diffs + 1] = string.format("step %s: approved %s, now %s", st.id, o.status, st.status)
      end
      if o.irreversible ~= st.irreversible then
        diffs[#diffs + 1] = string.format("step %s: irreversible %s, now %s", st.id, tostring(o.irreversible),
          tostring(st.irreversible))
      end
      local irreversible = o.irreversible or st.irreversible
      compare_tallies(diffs, st.id, o.tallies or {}, st.tallies or {}, irreversible and 0 or tolerance)
      if irreversible then compare_lines(diffs, { id = st.id, old = o, new = st }, a, b) end
    end
  end
  for _, st in ipairs(a.steps or {}) do
    if old[st.id] then diffs[#diffs + 1] = "step " .. st.id .. ": in the approved report, no longer in the workflow" end
  end
  return diffs
end

return report
