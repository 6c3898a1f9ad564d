-- view.lua: what a person sees while a run goes: one line per step as it
-- finishes, retries and logs as they happen, and on a terminal a live line
-- for running steps with a progress bar and ETA. --json prints the journal
-- events instead, one per line, flushed as they happen. Secrets are
-- redacted from the values shown (errors, log lines; the journal's lines
-- are redacted already), never from step ids, run ids or times.
local core = require "wfengine.core"
local sched = require "wfengine.sched"

local View = {}
View.__index = View

local view = {}

-- opts: json, quiet, verbose, total (steps), steps (id -> step), run_id, mode.
function view.new(opts)
  local self = setmetatable(opts, View)
  self.tty = core.isatty(1)
  self.color = self.tty and not os.getenv("NO_COLOR") and (os.getenv("TERM") or "") ~= "dumb"
  self.running = {}   -- step id -> { started, done, total, unit, since }
  self.live_shown = false
  self.wall_started = core.time()
  return self
end

local COLORS = { green = "32", red = "31", yellow = "33", dim = "2", bold = "1", cyan = "36" }

function View:paint(color, text)
  if not self.color then return text end
  return "\27[" .. COLORS[color] .. "m" .. text .. "\27[0m"
end

function View:clear_live()
  if self.live_shown then
    io.stdout:write("\r\27[K")
    self.live_shown = false
  end
end

function View:say(text)
  if self.json then return end
  self:clear_live()
  if self.prompt then io.stdout:write(self.tty and "\r\27[K" or "\n") end
  io.stdout:write(text, "\n")
  if self.prompt then io.stdout:write(self.prompt.text) end
  self:draw_live()
  io.stdout:flush()
end

function View:complain(text)
  self:clear_live()
  if self.prompt then -- a question left unanswered (the run was interrupted)
    self.prompt.out:write("\n")
    self.prompt.out:flush()
    self.prompt = nil
  end
  io.stderr:write(text, "\n")
  io.stderr:flush()
end

local function duration(seconds)
  seconds = tonumber(seconds) or 0
  if seconds < 60 then return string.format("%.1fs", seconds) end
  if seconds < 3600 then return string.format("%dm%02ds", seconds // 60, math.floor(seconds % 60)) end
  return string.format("%dh%02dm", seconds // 3600, math.floor(seconds % 3600 / 60))
end
view.duration = duration

local function amount(n, unit)
  if unit == "bytes" or unit == "B" then
    local units = { "B", "kB", "MB", "GB", "TB" }
    local i = 1
    while n >= 1000 and i < #units do n, i = n / 1000, i + 1 end
    return string.format(i == 1 and "%d %s" or "%.1f %s", n, units[i])
  end
  if math.type(n) == "float" and n ~= math.floor(n) then n = string.format("%.1f", n) end
  return tostring(n) .. (unit and unit ~= "" and (" " .. unit) or "")
end

function View:label(id)
  local s = self.steps[id]
  if not s then return id end
  local width = #tostring(self.total)
  return string.format("[%" .. width .. "d/%d] %s", s.index, self.total, s.title)
end

function View:draw_live()
  if not self.tty or self.json or self.quiet or self.prompt then return end
  local id, info
  for k, v in pairs(self.running) do
    if not info or v.started < info.started then id, info = k, v end
  end
  if not info then return end
  local now = sched.now()
  local parts = { self:paint("cyan", "▸ ") .. self:label(id), duration(now - info.started) }
  if info.total and info.total > 0 then
    local fraction = math.min(1, math.max(0, info.done / info.total))
    local width = 20
    local filled = math.floor(fraction * width + 0.5)
    parts[#parts + 1] = string.format("%3d%% ▕%s%s▏ %s/%s", math.floor(fraction * 100),
      string.rep("█", filled), string.rep(" ", width - filled), amount(info.done, info.unit),
      amount(info.total, info.unit))
    if fraction > 0.01 and info.since then
      local elapsed = now - info.since
      parts[#parts + 1] = "ETA " .. duration(elapsed / fraction - elapsed)
    end
  elseif info.done and info.done > 0 then
    parts[#parts + 1] = amount(info.done, info.unit)
  end
  local others = -1
  for _ in pairs(self.running) do others = others + 1 end
  if others > 0 then parts[#parts + 1] = string.format("(+%d running)", others) end
  io.stdout:write("\r\27[K", table.concat(parts, "  "))
  io.stdout:flush()
  self.live_shown = true
end

function View:progress(id, done, total, unit)
  local info = self.running[id]
  if not info then return end
  info.since = info.since or sched.now()
  info.done, info.total, info.unit = done, total, unit
  if self.verbose and not self.tty and not self.json then
    self:say(string.format("    %s: %s%s", id, amount(done, unit),
      total > 0 and (" of " .. amount(total, unit)) or ""))
  end
end

-- Redraws the live line while a run goes, on a terminal only.
function View:start_ticker(mode)
  if not self.tty or self.json or self.quiet or mode == "simulate" then return end
  sched.spawn(function()
    while true do
      sched.sleep(0.2)
      self:clear_live()
      self:draw_live()
    end
  end)
end

-- Asks on the terminal and waits for the answer on the loop: other tasks
-- go on meanwhile (their lines print above the question, which is asked
-- again below them), and SIGINT interrupts the run as anywhere else.
function View:confirm(s)
  while self.prompt do sched.sleep(0.05) end -- one question at a time
  self:clear_live()
  -- On stderr with --json, so that stdout stays pure JSON.
  local out = self.json and io.stderr or io.stdout
  self.prompt = { out = out, text = self:paint("yellow", "? ") .. s.confirm .. " [y/N] " }
  out:write(self.prompt.text)
  out:flush()
  local ok, err = pcall(core.wait_readable, 0)
  self.prompt = nil
  if not ok then
    out:write("\n")
    error(err, 0)
  end
  local answer = io.stdin:read("l")
  return answer ~= nil and answer:match("^%s*[yY]") ~= nil
end

local function error_text(err)
  if type(err) ~= "table" then return core.redact(tostring(err)) end
  local text = (err.kind and (err.kind .. (err.code and (" " .. err.code) or "") .. ": ") or "")
    .. tostring(err.message)
  if err.where then text = text .. " (" .. err.where .. ")" end
  return core.redact(text)
end
view.error_text = error_text

local handlers = {}

function handlers.run_started(self, ev)
  if self.quiet then return end
  self:say(self:paint("bold", ev.workflow) .. string.format(": run %s%s, %d steps", ev.run_id,
    ev.mode ~= "run" and (" (" .. ev.mode .. ")") or "", self.total))
end

function handlers.run_resumed(self, ev)
  if self.quiet then return end
  self:say(self:paint("bold", ev.workflow or "") .. string.format(": %s run %s%s",
    ev.rollback and "rolling back" or "resuming", ev.run_id,
    ev.worker and string.format(" on worker %s (claim %s)", ev.worker, tostring(ev.epoch)) or ""))
  for _, line in ipairs(ev.changes or {}) do self:say("  changed: " .. line) end
end

function handlers.step_started(self, ev)
  self.running[ev.step] = { started = sched.now() }
  if self.verbose then
    self:say(self:paint("dim", string.format("  … %s (attempt %d)", self:label(ev.step), ev.attempt)))
  end
end

function handlers.step_succeeded(self, ev)
  self.running[ev.step] = nil
  self.succeeded = (self.succeeded or 0) + 1
  if self.quiet then return end
  local attempts = ev.attempt > 1 and string.format(" (%d attempts)", ev.attempt) or ""
  self:say(string.format("  %s %s  %s%s", self:paint("green", "✓"), self:label(ev.step),
    self:paint("dim", duration(ev.elapsed)), attempts))
end

function handlers.step_failed(self, ev)
  self.running[ev.step] = nil
  if ev.will_retry then
    if not self.quiet then
      self:say(string.format("  %s %s  attempt %d failed: %s; retrying in %s", self:paint("yellow", "!"),
        self:label(ev.step), ev.attempt, error_text(ev.error), duration(ev.delay)))
    end
    return
  end
  local line = string.format("  %s %s  %s%s: %s", self:paint("red", "✗"), self:label(ev.step),
    self:paint("dim", duration(ev.elapsed)),
    ev.attempt > 1 and string.format(" (%d attempts)", ev.attempt) or "", error_text(ev.error))
  if self.quiet then self:complain(line) else self:say(line) end
end

function handlers.step_skipped(self, ev)
  if self.quiet then return end
  self:say(string.format("  %s %s  skipped (%s)", self:paint("dim", "-"), self:label(ev.step), ev.reason))
end

function handlers.compensation_started(self, ev)
  self.running[ev.step] = { started = sched.now() }
  if not self.compensating and not self.quiet then
    self:say(self:paint("yellow", "  undoing completed steps, last first:"))
  end
  self.compensating = true
end

function handlers.compensation_succeeded(self, ev)
  self.running[ev.step] = nil
  if self.quiet then return end
  self:say(string.format("  %s %s  undone %s", self:paint("yellow", "↶"), self:label(ev.step),
    self:paint("dim", duration(ev.elapsed))))
end

function handlers.compensation_failed(self, ev)
  self.running[ev.step] = nil
  local line = string.format("  %s %s  undo attempt %d failed: %s%s", self:paint("red", "✗"),
    self:label(ev.step), ev.attempt, error_text(ev.error),
    ev.will_retry and ("; retrying in " .. duration(ev.delay)) or "")
  if self.quiet and not ev.will_retry then self:complain(line) elseif not self.quiet then self:say(line) end
end

function handlers.confirm_asked(self, ev)
  self:say(self:paint("yellow", "? ") .. tostring(ev.question) .. "  (waiting for the answer in the web console)")
end

function handlers.log(self, ev)
  if self.quiet and ev.level ~= "warn" then return end
  local prefix = ev.level == "warn" and self:paint("yellow", "warning: ")
    or ev.level == "would" and self:paint("cyan", "would ") or ""
  local where = ev.step and (ev.step .. ": ") or ""
  self:say("      " .. where .. prefix .. core.redact(tostring(ev.message)))
end

-- "26 ms", "1.2s"
local function real_time(seconds)
  if seconds < 1 then return string.format("%d ms", math.floor(seconds * 1000 + 0.5)) end
  return duration(seconds)
end

function handlers.run_succeeded(self, ev)
  if self.quiet then return end
  if self.mode == "simulate" then
    -- the clock was virtual: ev.elapsed is the waits simulated, not time spent
    self:say(self:paint("green", "succeeded") .. string.format(": %d steps, %s of waits simulated in %s",
      self.succeeded or 0, duration(ev.elapsed), real_time(core.time() - (self.wall_started or core.time()))))
    return
  end
  self:say(self:paint("green", "succeeded") .. string.format(" in %s", duration(ev.elapsed)))
end

-- A rollback of a run that never failed (crashed, interrupted) has no
-- failed step to name.
function handlers.run_compensated(self, ev)
  if ev.step then
    self:complain(string.format("error: step '%s' failed: %s", ev.step, error_text(ev.error)))
  end
  self:complain("every completed step was compensated (exit 1)")
end

function handlers.run_failed(self, ev)
  if ev.compensation_failed then
    local failed = ev.step and string.format("step '%s' failed, then ", ev.step) or ""
    self:complain(string.format("error: %scompensating '%s' failed: %s", failed,
      ev.compensation_failed, error_text(ev.compensation_error)))
    self:complain(string.format("still owed (not undone): %s; see: wfengine show %s",
      table.concat(ev.owed or {}, ", "), self.run_id or ""))
  else
    self:complain("error: " .. error_text(ev.error))
  end
end

-- A dry-run changed nothing and is never resumed: there is nothing to go
-- on with or to undo.
local DRY_RUN_NEXT = "a dry-run changed nothing and is not resumed or rolled back: "
  .. "fix the cause and dry-run again"

function handlers.run_paused(self, ev)
  self:complain(string.format("paused: step '%s' failed: %s", ev.step or "?", error_text(ev.error)))
  if self.mode == "dry-run" then
    self:complain(string.format("(%s) %s", ev.reason or "paused", DRY_RUN_NEXT))
    return
  end
  self:complain(string.format("(%s) continue with: wfengine resume %s   or undo with: wfengine rollback %s",
    ev.reason or "paused", self.run_id or "", self.run_id or ""))
end

function handlers.run_interrupted(self)
  if self.mode == "dry-run" then
    self:complain("interrupted: " .. DRY_RUN_NEXT)
    return
  end
  self:complain(string.format("interrupted: continue with: wfengine resume %s", self.run_id or ""))
end

function View:event(ev, line)
  if self.json then
    io.stdout:write(line, "\n")
    io.stdout:flush()
    return
  end
  local handler = handlers[ev.type]
  if handler then handler(self, ev) end
end

function View:finish()
  self:clear_live()
  io.stdout:flush()
end

return view
