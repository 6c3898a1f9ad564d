-- common.lua: what the clone's step groups share: the tenants and
-- databases of the run, connections, waits, the mode change's undo, the
-- storage mirror and the retry policies. (The ctx.state keys the steps
-- share are declared in state_keys.lua.)
local json = require "wf.json"
local service = require "lib.service"
local tenants = require "lib.tenants"
local iis = require "lib.iis"
local storage = require "lib.storage"
local databases = require "lib.databases"
local state = require("clone_sandbox.state_keys").state

local common = {}

local present = service.present
common.present = present

-- Retry policies.
common.HTTP_RETRY = { attempts = 5, delay = 1, backoff = 2, max_delay = 20 }
common.SQL_RETRY = { attempts = 3, delay = 2, backoff = 2 }
-- For the long SQL steps (copy, address rewrite): one more attempt, and only
-- after an SQL error whose SQLSTATE says retryable (a lost connection, a
-- deadlock); trying anything else again would spend hours to fail the same way.
common.SQL_RETRY_LONG = { attempts = 2, delay = 5, retry_on = function(err)
  return err.kind == "sql" and err.retryable == true
end }

function common.target(ctx) return ctx.params.target end
function common.source(ctx) return ctx.params.source end
local target, source = common.target, common.source

-- The target's database ({cluster, name}) as enter_maintenance found it.
function common.target_db(ctx)
  return state(ctx).target_db or { cluster = "sandbox", name = target(ctx) }
end

function common.source_db(ctx)
  return state(ctx).source_db or { cluster = "source", name = source(ctx) }
end

function common.sandbox_conf(ctx)
  return ctx.config.sandbox or {}
end

function common.poll_interval(ctx)
  return tonumber(common.sandbox_conf(ctx).maintenance_poll_seconds) or 1
end

function common.login_name(ctx, which)
  local logins = ctx.config.logins or {}
  return target(ctx) .. (logins[which .. "_suffix"] or ("_" .. which))
end

function common.login_password(ctx)
  local logins = ctx.config.logins or {}
  if not logins.password and ctx.mode == "simulate" then return "simulate-only-password" end
  if not logins.password then
    ctx:fail("config: logins.password is missing", { retryable = false })
  end
  return logins.password
end

-- with_target(ctx, fn): fn(conn) on the target's (new) database
function common.with_target(ctx, fn)
  local conn <close> = databases.connect(ctx, common.target_db(ctx))
  return fn(conn)
end

function common.with_admin(ctx, cluster, fn)
  local conn <close> = databases.admin(ctx, cluster)
  return fn(conn)
end

-- Undoes a mode change: back to `mode`, then deletes the records the
-- change made (a task, IIS operations), so the tenant is as it was.
function common.restore_mode(ctx, mode, created_task, force)
  local cp = tenants.client(ctx, true)
  local answer = cp:set_mode(target(ctx), mode, force)
  local ops = iis.client(ctx, true)
  for _, op in ipairs(answer.iis_operations or {}) do ops:delete(target(ctx), op.id) end
  if present(answer.task) then cp:delete_task(target(ctx), answer.task.id) end
  if created_task then cp:delete_task(target(ctx), created_task) end
end

function common.wait_task(ctx, task_id, what)
  local cp = tenants.client(ctx)
  return ctx:wait_until(function()
    local task = cp:task(target(ctx), task_id)
    ctx:progress(0, 1, "task")
    return task.state == "done" and task
  end, { timeout = 1800, interval = common.poll_interval(ctx), what = what })
end

function common.array(t) return json.array(t or {}) end

-- " FOR UPDATE", except in dry-run where reads run in read-only transactions.
function common.for_update(ctx)
  return ctx.mode == "dry-run" and "" or " FOR UPDATE"
end

function common.test_mailbox(ctx)
  return common.sandbox_conf(ctx).test_mailbox or "test"
end

-- clone_templates, clone_ejpackages_azure and clone_ejpackages_soarc mirror
-- one of the source's storage containers into the target's; their undo puts
-- the target's previous contents back.
function common.mirror_container(kind)
  return function(ctx)
    local answer = storage.container(ctx, kind, ctx.params.target):copy_from(ctx.params.source)
    return { copied = json.array(answer.copied or {}), deleted = json.array(answer.deleted or {}),
      previous = json.array(answer.previous or {}) }
  end
end

function common.restore_container(kind)
  return function(ctx, result)
    storage.container(ctx, kind, ctx.params.target, true):put_all(result.previous)
  end
end

return common
