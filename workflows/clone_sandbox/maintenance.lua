-- maintenance.lua: the clone's first steps, enter_maintenance to
-- remove_mail_routes: the safety check, the target in offline maintenance,
-- moved to the old clusters, its mail routes removed (clone_sandbox.lua
-- lists every step, in order).
local wf = require "wf"
local json = require "wf.json"
local tenants = require "lib.tenants"
local databases = require "lib.databases"
local common = require "clone_sandbox.common"
local state = require("clone_sandbox.state_keys").state

local present = common.present
local target = common.target
local source = common.source
local target_db = common.target_db
local poll_interval = common.poll_interval
local with_target = common.with_target
local with_admin = common.with_admin
local restore_mode = common.restore_mode
local wait_task = common.wait_task
local array = common.array

local M = {}

M.enter_maintenance = wf.step "enter_maintenance" {
  title = "Wait for customer tasks to complete and enter offline maintenance mode",
  doc = "First, read-only: refuses (not retryable) unless the target is a sandbox "
    .. "tenant of the source and the source a production tenant; notes where both "
    .. "databases live and the old sandbox's app authorizations (step 25). Then waits "
    .. "until the target has no running task and puts it in offline maintenance "
    .. "(a task starting in between answers 409: retried). Undo: the previous mode.",
  run = function(ctx)
    local cp = tenants.client(ctx)
    local t, s = cp:get(target(ctx)), cp:get(source(ctx))
    if ctx.mode ~= "simulate" then
      if t.kind ~= "sandbox" or t.source ~= source(ctx) then
        ctx:fail(string.format("tenant %s is %s (source %s), not a sandbox of %s: refusing to replace it",
          target(ctx), tostring(t.kind), tostring(t.source), source(ctx)), { retryable = false })
      end
      if s.kind ~= "production" then
        ctx:fail(string.format("tenant %s is %s, not a production tenant", source(ctx),
          tostring(s.kind)), { retryable = false })
      end
    end
    state(ctx).target_db = t.database or { cluster = "sandbox", name = target(ctx) }
    state(ctx).source_db = s.database or { cluster = "source", name = source(ctx) }
    state(ctx).target_mail_domain = t.mail_domain or (target(ctx) .. ".sandbox.invalid")
    state(ctx).target_name = t.name or target(ctx)
    state(ctx).clone_time = state(ctx).clone_time or os.date("!%Y-%m-%dT%H:%M:%SZ")
    state(ctx).old_app_authorizations = with_admin(ctx, target_db(ctx).cluster, function(admin)
      if not databases.exists(admin, target_db(ctx).name) then return array() end
      return array(with_target(ctx, function(conn)
        return conn:query([[SELECT app_id, client_id, app_name, system_user, scopes::text AS scopes
          FROM app_authorization WHERE system_user IS NOT NULL ORDER BY id]])
      end))
    end)
    ctx:wait_until(function()
      local tasks = cp:tasks(target(ctx))
      return (tasks.active or 0) == 0
    end, { timeout = 1800, interval = poll_interval(ctx), what = "the customer's tasks to finish" })
    local before = ctx.mode == "dry-run" and cp:mode(target(ctx)) or nil
    local ok, answer = pcall(cp.set_mode, cp, target(ctx), "offline_maintenance")
    if not ok then
      if type(answer) == "table" and answer.status == 409 then
        ctx:fail("a customer task started meanwhile: waiting again", { retryable = true })
      end
      error(answer, 0)
    end
    state(ctx).maintenance_task = present(answer.task) and answer.task.id or nil
    if ctx.mode == "dry-run" then
      -- the PUT was only reported: entering maintenance from another mode starts a task
      state(ctx).maintenance_task_would = before ~= "offline_maintenance" or nil
      return { previous = before or json.null, task = json.null }
    end
    return { previous = answer.previous or json.null,
      task = present(answer.task) and answer.task.id or json.null }
  end,
  compensate = function(ctx, result)
    if present(result.previous) and result.previous ~= "offline_maintenance" then
      restore_mode(ctx, result.previous, present(result.task) and result.task or nil)
    end
  end,
  retry = { attempts = 5, delay = 2, backoff = 1.5, max_delay = 30 },
  timeout = 1900,
}

M.wait_customer_task = wf.step "wait_customer_task" {
  title = "Wait for customer task to complete",
  doc = "Waits for the task that entering maintenance started (sessions drained). Reads only.",
  run = function(ctx)
    local task = state(ctx).maintenance_task
    if not task and state(ctx).maintenance_task_would then
      ctx:log("would wait for the maintenance task that step 1 would start")
      return { task = json.null, would_wait = true }
    end
    if not task then
      ctx:log("no maintenance task to wait for (the tenant was already in maintenance)")
      return { task = json.null }
    end
    wait_task(ctx, task, "the enter-maintenance task " .. task)
    return { task = task }
  end,
  timeout = 1900,
}

M.connect_old_clusters = wf.step "connect_old_clusters" {
  title = "Connecting customer to old clusters",
  doc = "Moves the target to the old-generation cluster of its region (eu-new-02 -> "
    .. "eu-old-02) while its database is replaced. Undo: back to the previous cluster.",
  run = function(ctx)
    local cp = tenants.client(ctx)
    local current = cp:cluster(target(ctx))
    local old
    for _, c in ipairs(cp:clusters()) do
      if c.generation == "old" and c.lab_cluster == current.lab_cluster
        and c.region == current.region then old = c.id end
    end
    if ctx.mode == "simulate" then old = old or "old-cluster" end
    if not old then
      ctx:fail("no old-generation cluster for " .. tostring(current.cluster), { retryable = false })
    end
    local answer = cp:set_cluster(target(ctx), old)
    return { previous = answer.previous or json.null, current = old }
  end,
  compensate = function(ctx, result)
    if present(result.previous) and result.previous ~= result.current then
      tenants.client(ctx, true):set_cluster(target(ctx), result.previous)
    end
  end,
}

M.remove_mail_routes = wf.step "remove_mail_routes" {
  title = "Remove mail routes",
  doc = "Deletes the target's mail routes (kept by the control plane for restore), so no "
    .. "mail reaches the sandbox while it is replaced. Undo: restore those routes.",
  run = function(ctx)
    local cp = tenants.client(ctx)
    -- dry-run: the DELETE is only reported; the routes it would delete are listed
    local listed = ctx.mode == "dry-run" and cp:mail_routes(target(ctx)) or nil
    local deleted = cp:delete_mail_routes(target(ctx))
    local ids = {}
    for i, r in ipairs(listed or deleted) do ids[i] = r.id end
    ctx:tally(#ids, "mail routes", "remove", "removed")
    return { ids = array(ids) }
  end,
  compensate = function(ctx, result)
    if #result.ids > 0 then tenants.client(ctx, true):restore_mail_routes(target(ctx), array(result.ids)) end
  end,
}

return M
