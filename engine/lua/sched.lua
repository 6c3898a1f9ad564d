-- sched.lua: the coroutine scheduler. Every step attempt, compensation and
-- parallel branch is a task (a coroutine). A task suspends on a binding's
-- wait (a light userdata yielded by wf_await in C), on a timer (sleep), or
-- on other tasks (join). The loop itself is C (wfengine.core.poll); timers
-- live here so that simulate mode can run them on a virtual clock.
local core = require "wfengine.core"

local sched = {}

local SLEEP, JOIN, HALT = {}, {}, {}

local ready = { first = 1, last = 0 }
local by_wait = {}                          -- wait (light userdata) -> task
local by_co = setmetatable({}, { __mode = "k" })
local waits_outstanding = 0
local timers, timer_seq = {}, 0             -- binary heap ordered by (at, seq)
local virtual = false

local function heap_less(a, b)
  return a.at < b.at or (a.at == b.at and a.seq < b.seq)
end

local function heap_push(entry)
  timers[#timers + 1] = entry
  local i = #timers
  while i > 1 do
    local parent = i // 2
    if not heap_less(timers[i], timers[parent]) then break end
    timers[i], timers[parent] = timers[parent], timers[i]
    i = parent
  end
end

local function heap_pop()
  local top = timers[1]
  local last = table.remove(timers)
  if #timers > 0 then
    timers[1] = last
    local i = 1
    while true do
      local smallest, left, right = i, 2 * i, 2 * i + 1
      if left <= #timers and heap_less(timers[left], timers[smallest]) then smallest = left end
      if right <= #timers and heap_less(timers[right], timers[smallest]) then smallest = right end
      if smallest == i then break end
      timers[i], timers[smallest] = timers[smallest], timers[i]
      i = smallest
    end
  end
  return top
end

local function next_timer()
  while timers[1] and timers[1].dead do heap_pop() end
  return timers[1]
end

local function make_ready(task, ...)
  ready.last = ready.last + 1
  ready[ready.last] = { task = task, args = table.pack(...) }
end

local function add_timer(task, seconds, kind)
  timer_seq = timer_seq + 1
  local entry = { at = core.now() + math.max(0, seconds), seq = timer_seq, task = task, kind = kind }
  task.timer = entry
  heap_push(entry)
end

local function stop_joining(task)
  if not task.joining then return end
  for _, other in ipairs(task.joining) do other.joiners[task] = nil end
  task.joining = nil
end

local function finish(task, ok, ...)
  task.status = "done"
  by_co[task.co] = nil -- a long run must not keep every finished coroutine
  task.ok = ok
  task.results = table.pack(...)
  if task.parent then task.parent.children[task] = nil end
  for joiner in pairs(task.joiners) do
    stop_joining(joiner)
    if joiner.timer then joiner.timer.dead = true; joiner.timer = nil end
    make_ready(joiner, task)
  end
  task.joiners = {}
end

function sched.current()
  return by_co[coroutine.running()]
end

-- Creates a task running fn(...); it starts at the next scheduling round.
function sched.spawn(fn, ...)
  local parent = sched.current()
  local task = {
    co = coroutine.create(fn), status = "ready", joiners = {}, children = {}, parent = parent,
  }
  by_co[task.co] = task
  core.mark_task(task.co)
  if parent then parent.children[task] = true end
  make_ready(task, ...)
  return task
end

-- Only a task can wait: in a coroutine the workflow made, the yield would go
-- to the workflow's own coroutine.resume, and nothing would ever resume it.
local function check_in_task(what)
  if not by_co[coroutine.running()] then
    error({ kind = "misuse", retryable = false, message = what .. " called from a coroutine"
      .. " the workflow made: call it from the step's own code (or a ctx:parallel branch),"
      .. " not inside coroutine.wrap or coroutine.create" }, 0)
  end
end

function sched.sleep(seconds)
  check_in_task("ctx:sleep")
  coroutine.yield(SLEEP, seconds)
end

-- Parks the calling task for good: only a cancel ends it (after an
-- interrupt, so that nothing more is decided or journaled).
function sched.halt()
  coroutine.yield(HALT)
end

-- Waits until one of tasks is done and returns it, or nil after timeout
-- seconds (no timeout when nil).
function sched.join_any(tasks, timeout)
  for _, task in ipairs(tasks) do
    if task.status == "done" then return task end
  end
  check_in_task("waiting for a task")
  return coroutine.yield(JOIN, tasks, timeout)
end

function sched.join(task, timeout)
  return sched.join_any({ task }, timeout)
end

-- Stops a task and everything it started: the binding it waits on is told
-- to cancel, its coroutine is closed (running its <close> variables), and
-- those joining it see it done with ok = false, err.kind = "cancelled".
function sched.cancel(task, err)
  if task.status == "done" then return end
  for child in pairs(task.children) do sched.cancel(child, err) end
  if task.wait then
    core.cancel(task.wait)
    by_wait[task.wait] = nil
    task.wait = nil
    waits_outstanding = waits_outstanding - 1
  end
  if task.timer then task.timer.dead = true; task.timer = nil end
  stop_joining(task)
  if coroutine.status(task.co) == "suspended" then coroutine.close(task.co) end
  finish(task, false, err or { kind = "cancelled", message = "cancelled" })
end

local function on_yield(task, what, a, b)
  if core.is_wait(what) then
    task.wait = what
    by_wait[what] = task
    waits_outstanding = waits_outstanding + 1
  elseif what == SLEEP then
    add_timer(task, tonumber(a) or 0, "sleep")
  elseif what == JOIN then
    task.joining = a
    for _, other in ipairs(a) do other.joiners[task] = true end
    if b then add_timer(task, b, "join") end
  elseif what == HALT then
    task.halted = true
  else
    -- A bare coroutine.yield() in workflow code: carry on next round.
    make_ready(task)
  end
end

local function resume(task, args)
  if task.status == "done" then return end
  task.status = "running"
  local result = table.pack(coroutine.resume(task.co, table.unpack(args, 1, args.n)))
  if coroutine.status(task.co) == "dead" then
    finish(task, table.unpack(result, 1, result.n))
  else
    task.status = "waiting"
    on_yield(task, result[2], result[3], result[4])
  end
end

local function fire_timers(now)
  while true do
    local entry = next_timer()
    if not entry or entry.at > now then return end
    heap_pop()
    local task = entry.task
    task.timer = nil
    if entry.kind == "join" then stop_joining(task) end
    make_ready(task) -- a join timeout resumes with nil
  end
end

local function run_ready()
  while ready.first <= ready.last do
    local item = ready[ready.first]
    ready[ready.first] = nil
    ready.first = ready.first + 1
    resume(item.task, item.args)
  end
end

local function deliver(woken)
  for _, wait in ipairs(woken) do
    local task = by_wait[wait]
    if task then
      by_wait[wait] = nil
      task.wait = nil
      waits_outstanding = waits_outstanding - 1
      make_ready(task)
    end
  end
end

-- Drives every task until main is done; returns "done", or "interrupted"
-- after SIGINT/SIGTERM (the caller cancels what is left).
function sched.run(main)
  while main.status ~= "done" do
    run_ready()
    if main.status == "done" then break end
    if core.interrupted() then return "interrupted" end
    local entry = next_timer()
    local timeout = -1
    if entry then timeout = math.max(0, entry.at - core.now()) end
    if virtual and waits_outstanding == 0 then timeout = 0 end
    if not entry and waits_outstanding == 0 then
      error("scheduler: no task can make progress (a step waits on nothing)")
    end
    local woken, interrupted = core.poll(timeout)
    deliver(woken)
    if interrupted then return "interrupted" end
    if virtual and #woken == 0 and entry and waits_outstanding == 0 then
      core.set_virtual_now(math.max(core.now(), entry.at))
    end
    fire_timers(core.now())
  end
  return "done"
end

-- Starts fn(...) as a task of its own: not a child of the caller, so a
-- cancelled step does not cut a state write in half.
function sched.spawn_free(fn, ...)
  local task = { co = coroutine.create(fn), status = "ready", joiners = {}, children = {} }
  by_co[task.co] = task
  core.mark_task(task.co)
  make_ready(task, ...)
  return task
end

-- Waits for task's end: from a task by joining it, from code that is not a
-- task (before or after a run) by turning the loop until it is done,
-- whatever the interrupts. Returns its results or raises its error.
function sched.finish(task)
  if sched.current() then
    sched.join(task)
  else
    while task.status ~= "done" do
      run_ready()
      if task.status == "done" then break end
      local entry = next_timer()
      local woken = core.poll(entry and math.max(0, entry.at - core.now()) or -1, true)
      deliver(woken)
      fire_timers(core.now())
    end
  end
  if not task.ok then error(task.results[1], 0) end
  return table.unpack(task.results, 1, task.results.n)
end

-- fn(...) as a free task, waited for.
function sched.await(fn, ...)
  return sched.finish(sched.spawn_free(fn, ...))
end

function sched.use_virtual_clock(on)
  virtual = on
end

function sched.now()
  return core.now()
end

-- Cancels every task still alive (after an interrupt).
function sched.cancel_all(err)
  for _, task in pairs(by_co) do
    if task.status ~= "done" and task.parent == nil then sched.cancel(task, err) end
  end
end

return sched
