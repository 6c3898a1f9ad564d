-- runner.lua: runs a workflow as a state machine over journal events.
-- Every change of state is an event that is journaled (fsync'd) first and
-- then applied to the run's record (record.lua); the decisions read only the
-- record. A fresh run starts from an empty record; resume and rollback
-- start from the record replayed from the journal: the same code.
local core = require "wfengine.core"
local EXIT = core.EXIT
local json = require "wf.json"
local sched = require "wfengine.sched"
local errors = require "wfengine.errors"
local journal = require "wfengine.journal"
local record = require "wfengine.record"
local params = require "wfengine.params"

local runner = {}

local Run = {}
Run.__index = Run

-- The retry defaults, here only: Run:policy passes core.backoff every field.
local DEFAULT_RETRY = { attempts = 1, delay = 1, backoff = 2, max_delay = 60, jitter = true }

-- opts: wf, mode, params, shown_params, config, options (command-line
-- switches), writer (journal), view, run_id, events (to resume from).
function runner.new(opts)
  local run = setmetatable(opts, Run)
  run.record = record.replay(opts.events or {})
  run.seq = #(opts.events or {})
  run.clock0, run.wall0 = core.now(), core.time()
  run.ro_params = params.readonly(opts.params, "ctx.params")
  run.ro_config = params.readonly(opts.config or {}, "ctx.config")
  return run
end

function Run:time()
  return journal.timestamp(self.wall0 + (core.now() - self.clock0))
end

function Run:emit(kind, event)
  event = event or {}
  self.seq = self.seq + 1
  event.seq, event.time, event.type = self.seq, self:time(), kind
  local line, fenced = self.writer:append(event)
  if not line then self:fenced(fenced) end
  record.apply(self.record, event)
  if self.collect then self.collect[#self.collect + 1] = event end
  self.view:event(event, line)
  return event
end

-- Another process took the run over (its lease had expired): this one
-- appends nothing more and starts no further action; it leaves at once.
function Run:fenced(why)
  io.stderr:write(string.format("wfengine: run %s: %s: this process drops the run\n", self.run_id,
    tostring(why)))
  io.stderr:flush()
  os.exit(EXIT.INTERRUPTED, false)
end

function Run:policy(s)
  local policy = {}
  for k, v in pairs(DEFAULT_RETRY) do policy[k] = v end
  for _, source in ipairs { self.wf.retry or {}, s.retry or {} } do
    for k, v in pairs(source) do policy[k] = v end
  end
  return policy
end

function Run:timeout(s)
  return s.timeout or self.wf.timeout
end

-- A step that never yields (a busy loop) never lets a timer fire nor the
-- loop see a signal: a count hook on its coroutine checks the deadline and
-- the interrupt instead.
-- The interrupt is raised again at every count, so that a pcall in the
-- step cannot swallow it for good. A coroutine inherits the count but not
-- the Lua function (debug.sethook keeps it per thread): the tasks of
-- ctx:parallel install it again.
local function watch(deadline, timeout)
  debug.sethook(function()
    if core.interrupted() then
      error(errors.new { kind = "interrupted", retryable = true, message = "interrupted" })
    end
    if deadline and core.now() > deadline then
      debug.sethook()
      error(errors.new { kind = "timeout", retryable = true,
        message = string.format("timed out after %gs (the step never waited)", timeout) })
    end
  end, "", 100000)
end

-- ---- ctx ----

local Ctx = {}
Ctx.__index = Ctx

local function format(fmt, ...)
  if select("#", ...) == 0 then return tostring(fmt) end
  return string.format(fmt, ...)
end

function Ctx:log(fmt, ...)
  self._run:log(self, "info", format(fmt, ...))
end

function Ctx:warn(fmt, ...)
  self._run:log(self, "warn", format(fmt, ...))
end

-- "1234567" -> "1,234,567"
local function grouped(n)
  local text = tostring(n)
  local sign, digits = text:match("^(%-?)(%d+)$")
  if not digits then return text end
  return sign .. digits:reverse():gsub("(%d%d%d)", "%1,"):reverse():gsub("^,", "")
end

-- ctx:tally(n, what, verb, done[, detail]): says what the step changes, as
-- a count: "343 scheduled tasks disabled" in a run, "would disable 343
-- scheduled tasks" in a dry-run or simulate (done: the past participle). Journaled as a log line with
-- a `tally` {n, what, verb}: the change report's counts and totals, and what
-- an approval compares (docs/workflow-language.md).
function Ctx:tally(n, what, verb, done, detail)
  n = math.tointeger(tonumber(n)) or 0
  local noun = n == 1 and what:gsub("s$", "") or what
  local message = self.mode == "run" and (grouped(n) .. " " .. noun .. " " .. done)
    or ("would " .. verb .. " " .. grouped(n) .. " " .. noun)
  if detail then message = message .. " " .. detail end
  self._run:emit("log", { step = self.step, attempt = self.attempt, level = "info",
    message = core.redact(message), tally = { n = n, what = what, verb = verb, done = done } })
end

function Ctx:progress(done, total, unit)
  self._run:progress(self.step, tonumber(done) or 0, tonumber(total) or 0, unit)
end

function Ctx:sleep(seconds)
  sched.sleep(tonumber(seconds) or 0)
end

function Ctx:fail(message, opts)
  opts = opts or {}
  local err = { message = message, kind = opts.kind or "step", code = opts.code,
    retryable = opts.retryable ~= false, retry_after = opts.retry_after }
  error(errors.new(err), 2)
end

-- Polls fn until it returns a true value, which it returns. In simulate a
-- step without its own `simulate` has every poll satisfied at once.
function Ctx:wait_until(fn, opts)
  opts = opts or {}
  local timeout, interval = opts.timeout or 300, opts.interval or 1
  local what = opts.what or "a condition"
  if self.mode == "simulate" and not self._simulating then return true end
  local deadline = sched.now() + timeout
  while true do
    local value = fn(self)
    if value then return value end
    if sched.now() + interval > deadline then
      error(errors.new { kind = "timeout", retryable = true,
        message = string.format("timed out after %gs waiting for %s", timeout, what) }, 2)
    end
    sched.sleep(interval)
  end
end

-- Runs the functions concurrently, each as fn(ctx) in its own task under
-- this attempt (its timeout and cancellation cover them), and returns their
-- results in order. The first to fail cancels the others and its error is
-- raised. opts.limit caps how many run at once.
function Ctx:parallel(fns, opts)
  local limit = opts and opts.limit or #fns
  local results, running, next_index, failure = {}, {}, 1, nil
  local index_of = {}
  local function start()
    while next_index <= #fns and #running < limit do
      local fn, i = fns[next_index], next_index
      local task = sched.spawn(function()
        watch(self._deadline, self._timeout)
        return xpcall(fn, errors.handler, self)
      end)
      task.ctx = self
      running[#running + 1], index_of[task] = task, i
      next_index = next_index + 1
    end
  end
  start()
  while #running > 0 do
    local task = sched.join_any(running)
    for k, t in ipairs(running) do
      if t == task then table.remove(running, k) break end
    end
    if task.ok and task.results[1] then
      results[index_of[task]] = task.results[2]
      start()
    else
      failure = errors.normalize(task.ok and task.results[2] or task.results[1])
      for _, other in ipairs(running) do sched.cancel(other) end
      running = {}
    end
  end
  if failure then error(failure, 0) end
  return results
end

-- The data fields of ctx (Run:ctx below); with the public methods of Ctx,
-- everything a step may use: runner.ctx_fields() (what `check` accepts).
local CTX_DATA = { "run_id", "step", "attempt", "mode", "params", "config", "state" }

function runner.ctx_fields()
  local fields = {}
  for _, name in ipairs(CTX_DATA) do fields[name] = true end
  for name in pairs(Ctx) do
    if name:sub(1, 1) ~= "_" then fields[name] = true end
  end
  return fields
end

function Run:ctx(s, attempt, simulating)
  return setmetatable({
    run_id = self.run_id, step = s.id, attempt = attempt, mode = self.mode,
    params = self.ro_params, config = self.ro_config, state = self.record.state,
    _run = self, _simulating = simulating,
  }, Ctx)
end

function Run:log(ctx, level, message)
  self:emit("log", { step = ctx and ctx.step, attempt = ctx and ctx.attempt, level = level,
    message = core.redact(message) })
end

-- A step's progress goes to the view; in a run the console started
-- (--confirm-from-state), also to <run dir>/progress.json, at most twice a
-- second, for the console's progress bar (not a journal event: it is not
-- needed to resume, and would swell the journal).
local PROGRESS_EVERY = 0.5

function Run:progress(step, done, total, unit)
  self.view:progress(step, done, total, unit)
  if not self.options.confirm_from_state then return end
  local now = core.time()
  if self._progress_at and now - self._progress_at < PROGRESS_EVERY and done < total then return end
  self._progress_at = now
  self.store:progress(self.run_id, { step = step, done = done, total = total, unit = unit, time = now })
end

-- The hooks C bindings reach through wf.h (wf_log, wf_progress, wf_current_step).
function Run:install_hooks()
  local run = self
  require("wfengine.dsl").on_print = function(text)
    local task = sched.current()
    if task and task.ctx then run:log(task.ctx, "info", text)
    else io.stderr:write(core.redact(text), "\n") end
  end
  core.set_hooks {
    log = function(level, message)
      local task = sched.current()
      run:log(task and task.ctx, level, message)
    end,
    progress = function(done, total, unit)
      local task = sched.current()
      if task and task.ctx then run:progress(task.ctx.step, done, total, unit) end
    end,
    current = function()
      local task = sched.current()
      if task and task.ctx then return run.run_id, task.ctx.step, task.ctx.attempt end
    end,
  }
end

-- ---- one attempt of a function, in its own task, with a timeout ----

local function attempt_body(fn, ctx, deadline, timeout, ...)
  ctx._deadline, ctx._timeout = deadline, timeout
  watch(deadline, timeout)
  return xpcall(fn, errors.handler, ctx, ...)
end

-- Returns true, result or false, err.
function Run:attempt(fn, ctx, timeout, ...)
  local deadline = timeout and self.mode ~= "simulate" and core.now() + timeout + 0.05 or nil
  local task = sched.spawn(attempt_body, fn, ctx, deadline, timeout, ...)
  task.ctx = ctx
  local done = sched.join(task, timeout)
  -- Interrupted: the attempt's outcome is not journaled; the run stops
  -- here and ends run_interrupted (Run:drive).
  if core.interrupted() then sched.halt() end
  if not done then
    local err = errors.new { kind = "timeout", retryable = true,
      message = string.format("timed out after %gs", timeout) }
    sched.cancel(task, err)
    return false, err
  end
  if not task.ok then return false, errors.normalize(task.results[1]) end
  if task.results[1] then return true, task.results[2] end
  return false, errors.normalize(task.results[2])
end

local function encodable(value, what)
  if value == nil then return true end
  local ok, err = pcall(json.encode, journal.storable(value))
  if ok then return true end
  return false, errors.new { kind = "lua", retryable = false,
    message = what .. " is not JSON-serialisable: " .. tostring(err) }
end

function Run:retry_decision(policy, attempt, err)
  if attempt >= policy.attempts or err.kind == "cancelled" then return false end
  local retry = err.retryable ~= false
  if policy.retry_on then
    local ok, answer = pcall(policy.retry_on, err)
    retry = ok and answer and true or false
  end
  if not retry then return false end
  local delay = tonumber(err.retry_after) or core.backoff(policy, attempt, math.random())
  return true, delay
end

-- ---- steps ----

-- Why --only, --skip or --from leave step s out, or nil.
function runner.selection_skip(o, s)
  if o.only and not (o.only[s.id] or (s.group and o.only[s.group])) then return "not in --only" end
  if o.skip and (o.skip[s.id] or (s.group and o.skip[s.group])) then return "--skip" end
  if o.from_index and s.index < o.from_index then return "before --from " .. o.from end
  return nil
end

function Run:skip_reason(s)
  return runner.selection_skip(self.options, s)
end

-- --fail-at names a step or a parallel group (then every step of it).
function Run:injected(s, attempt)
  local fail_at = self.options.fail_at or {}
  for _, id in ipairs { s.id, s.group } do
    local rule = fail_at[id]
    if rule == true or (type(rule) == "table" and rule[attempt]) then
      return errors.new { kind = "injected", retryable = true,
        message = "failure injected by --fail-at " .. id }
    end
  end
end

-- Asked when the step is reached (a step `when` skips never asks). Returns
-- true, or false and the error that fails the step before it touches
-- anything: answered no, or no terminal to ask on and no -y.
function Run:confirmed(s)
  if not s.confirm or self.mode ~= "run" or self.options.yes then return true end
  if self.options.confirm_from_state and self.store then return self:confirmed_from_state(s) end
  if not core.isatty(0) then
    return false, errors.new { kind = "declined", retryable = false,
      message = string.format("asks to confirm (%q) and there is no terminal: not run, nothing "
        .. "touched; answer yes with -y", s.confirm) }
  end
  if self.view:confirm(s) then return true end
  return false, errors.new { kind = "declined", retryable = false, message = "not confirmed: " .. s.confirm }
end

-- --confirm-from-state (a run a console or a worker drives): the question
-- is journaled (confirm_asked) and the answer read from the state
-- (store:answer_of; a console writes it with store:answer). Waits on the
-- loop (woken by NOTIFY on PostgreSQL, a look every ANSWER_POLL seconds),
-- so Ctrl-C still interrupts.
local ANSWER_POLL = 0.2

function Run:confirmed_from_state(s)
  local store = self.store
  local answer = store:answer_of(self.run_id, s.id)
  if answer == nil then
    self:emit("confirm_asked", { step = s.id, question = s.confirm })
    while answer == nil do
      if store.wait_event then store:wait_event(self.run_id, 2) else sched.sleep(ANSWER_POLL) end
      answer = store:answer_of(self.run_id, s.id)
    end
  end
  self:emit("confirm_answered", { step = s.id, answer = answer and "yes" or "no" })
  if answer then return true end
  return false, errors.new { kind = "declined", retryable = false, message = "not confirmed: " .. s.confirm }
end

function Run:run_step(s)
  local rec = self.record.steps[s.id]
  if rec and (rec.status == "succeeded" or rec.status == "skipped") then return true end
  local reason = self:skip_reason(s)
  if not reason and s.when then
    local ok, wanted = self:attempt(s.when, self:ctx(s, 1), self:timeout(s))
    if not ok then
      self:emit("step_started", { step = s.id, attempt = 1, index = s.index })
      wanted.message = "when: " .. wanted.message
      self:emit("step_failed", { step = s.id, attempt = 1, error = errors.record(wanted),
        will_retry = false })
      return false, { step = s.id, error = wanted }
    end
    if not wanted then reason = "when" end
  end
  if reason then
    self:emit("step_skipped", { step = s.id, reason = reason, index = s.index })
    return true
  end
  local confirmed, err = self:confirmed(s)
  if not confirmed then
    self:emit("step_started", { step = s.id, attempt = 1, index = s.index })
    self:emit("step_failed", { step = s.id, attempt = 1, error = errors.record(err), will_retry = false })
    return false, { step = s.id, error = err }
  end
  local policy = self:policy(s)
  local simulating = self.mode == "simulate" and s.simulate ~= nil
  local fn = simulating and s.simulate or s.run
  for attempt = 1, policy.attempts do
    self:emit("step_started", { step = s.id, attempt = attempt, index = s.index })
    local started = sched.now()
    local ctx = self:ctx(s, attempt, simulating)
    local ok, result = false, self:injected(s, attempt)
    if not result then ok, result = self:attempt(fn, ctx, self:timeout(s)) end
    if ok then
      local fine, problem = encodable(result, "the result of step '" .. s.id .. "'")
      if fine then fine, problem = encodable(self.record.state, "ctx.state") end
      if fine then
        self:emit("step_succeeded", { step = s.id, attempt = attempt, result = result,
          state = self.record.state, elapsed = sched.now() - started, irreversible = s.irreversible })
        return true
      end
      result = problem
    end
    local failure = errors.normalize(result)
    local will_retry, delay = self:retry_decision(policy, attempt, failure)
    self:emit("step_failed", { step = s.id, attempt = attempt, error = errors.record(failure),
      will_retry = will_retry, delay = delay, elapsed = sched.now() - started })
    if not will_retry then return false, { step = s.id, error = failure } end
    sched.sleep(delay)
  end
end

-- Steps of a group still marked running after their task was cancelled.
function Run:settle_cancelled(group, cause)
  for _, s in ipairs(group.steps) do
    local rec = self.record.steps[s.id]
    if rec and rec.status == "running" then
      self:emit("step_failed", { step = s.id, attempt = rec.attempt, will_retry = false,
        error = { kind = "cancelled", retryable = false,
          message = "step '" .. cause.step .. "' of the same parallel group failed" } })
    end
  end
end

-- Runs the steps of a group concurrently; the first to fail for good
-- cancels the others.
function Run:run_group(group)
  local pending, step_of = {}, {}
  for _, s in ipairs(group.steps) do
    local task = sched.spawn(function() return self:run_step(s) end)
    pending[#pending + 1], step_of[task] = task, s
  end
  local failure
  while #pending > 0 do
    local task = sched.join_any(pending)
    for i, t in ipairs(pending) do
      if t == task then table.remove(pending, i) break end
    end
    local ok, f = task.ok and task.results[1], task.results[2]
    if not task.ok then f = { step = step_of[task].id, error = errors.normalize(task.results[1]) } end
    if not ok and not failure then
      failure = f
      local cancelled = errors.new { kind = "cancelled", retryable = false, message = "cancelled" }
      for _, other in ipairs(pending) do sched.cancel(other, cancelled) end
      pending = {}
      self:settle_cancelled(group, failure)
    end
  end
  return failure == nil, failure
end

function Run:run_unit(unit)
  if unit.kind == "group" then return self:run_group(unit) end
  return self:run_step(unit)
end

-- ---- compensation ----

function Run:compensate_step(s)
  local rec = self.record.steps[s.id]
  if not rec or not record.undo_owed(rec, s) then return true end
  local policy = self:policy(s)
  for attempt = 1, policy.attempts do
    self:emit("compensation_started", { step = s.id, attempt = attempt, index = s.index })
    local started = sched.now()
    local ctx = self:ctx(s, attempt, false)
    local ok, err = self:attempt(s.compensate, ctx, self:timeout(s), rec.result)
    if ok then
      self:emit("compensation_succeeded", { step = s.id, attempt = attempt,
        elapsed = sched.now() - started })
      return true
    end
    err = errors.normalize(err)
    local will_retry, delay = self:retry_decision(policy, attempt, err)
    self:emit("compensation_failed", { step = s.id, attempt = attempt, error = errors.record(err),
      will_retry = will_retry, delay = delay, elapsed = sched.now() - started })
    if not will_retry then return false, err end
    sched.sleep(delay)
  end
end

function Run:compensate_unit(unit)
  if unit.kind == "step" then
    local ok, err = self:compensate_step(unit)
    return ok, unit.id, err
  end
  local tasks = {}
  for i = #unit.steps, 1, -1 do
    local s = unit.steps[i]
    tasks[#tasks + 1] = sched.spawn(function() return s.id, self:compensate_step(s) end)
  end
  local failed, failed_err
  for _, task in ipairs(tasks) do
    sched.join(task)
    local id, ok, err = task.results[1], task.results[2], task.results[3]
    if not task.ok then ok, err = false, errors.normalize(task.results[1]) end
    if not ok and not failed then failed, failed_err = id, err end
  end
  return failed == nil, failed, failed_err
end

-- Compensates every completed step in reverse; the first compensation that
-- fails for good stops the unwinding.
function Run:unwind(failure)
  for i = #self.wf.units, 1, -1 do
    local ok, step_id, err = self:compensate_unit(self.wf.units[i])
    if not ok then
      self:emit("run_failed", { step = failure and failure.step,
        error = failure and errors.record(failure.error), compensation_failed = step_id,
        compensation_error = errors.record(err), owed = record.owed(self.record, self.wf) })
      return EXIT.COMPENSATION_FAILED
    end
  end
  self:emit("run_compensated", { step = failure and failure.step,
    error = failure and errors.record(failure.error) })
  return EXIT.COMPENSATED
end

function Run:past_irreversible()
  for _, s in ipairs(self.wf.steps) do
    local rec = self.record.steps[s.id]
    if s.irreversible and rec and rec.status == "succeeded" then return s.id end
  end
end

function Run:on_failure(failure)
  local policy = self.options.on_failure or self.wf.on_failure
  local irreversible = self:past_irreversible()
  if policy == "pause" or irreversible then
    self:emit("run_paused", { step = failure.step, error = errors.record(failure.error),
      reason = irreversible and ("past irreversible step '" .. irreversible .. "'") or "policy pause" })
    return EXIT.PAUSED
  end
  return self:unwind(failure)
end

function Run:forward()
  for _, unit in ipairs(self.wf.units) do
    local ok, failure = self:run_unit(unit)
    if not ok then return self:on_failure(failure) end
  end
  self:emit("run_succeeded", { elapsed = core.now() - self.clock0 })
  return EXIT.SUCCEEDED
end

-- Runs the main task to its end; returns the exit code.
function Run:drive(body)
  self:install_hooks()
  local main = sched.spawn(body, self)
  local outcome = sched.run(main)
  if outcome == "interrupted" then
    sched.cancel_all(errors.new { kind = "interrupted", retryable = true, message = "interrupted" })
    self:emit("run_interrupted", {})
    return EXIT.INTERRUPTED
  end
  if not main.ok then
    local err = errors.normalize(main.results[1])
    self:emit("run_failed", { error = errors.record(err) })
    return EXIT.COMPENSATION_FAILED
  end
  return main.results[1]
end

function runner.start(run, started_event)
  run:emit("run_started", started_event)
  return run:drive(Run.forward)
end

-- Continues a run read back from its journal: forward from the first step
-- not completed, or on with the unwinding when it was compensating or when
-- asked to roll back.
function runner.resume(run, resumed_event)
  local rec = run.record
  local failure = rec.failed_step and { step = rec.failed_step, error = rec.error }
  local unwinding = resumed_event.rollback or rec.unwinding
  run:emit("run_resumed", resumed_event)
  if unwinding then
    return run:drive(function(r) return r:unwind(failure) end)
  end
  return run:drive(Run.forward)
end

return runner
