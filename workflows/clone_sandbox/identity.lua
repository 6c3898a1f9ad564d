-- identity.lua: the clone's SuperID and license steps: register_superid
-- and replace_test_environment (the target registered, the test environment
-- pointed at it), then change_serial_number to superid_normal (test serial
-- number, users and plans, the tenant state) (clone_sandbox.lua lists every
-- step, in order).
local wf = require "wf"
local json = require "wf.json"
local tenants = require "lib.tenants"
local superid = require "lib.superid"
local common = require "clone_sandbox.common"
local state = require("clone_sandbox.state_keys").state

local present = common.present
local target = common.target
local source = common.source
local with_target = common.with_target
local array = common.array
local for_update = common.for_update
local SQL_RETRY = common.SQL_RETRY

local M = {}

M.register_superid = wf.step "register_superid" {
  title = "Register customer in SuperID",
  doc = "Registers the target as a sandbox customer in SuperID, in the source's test "
    .. "environment. Undo: the previous registration, or unregister when there was none.",
  run = function(ctx)
    local answer = superid.client(ctx):register(target(ctx), {
      name = state(ctx).target_name or target(ctx), kind = "sandbox",
      environment = source(ctx) .. "-test" })
    return { previous = answer.previous or json.null, tenant_created = answer.tenant_created == true }
  end,
  compensate = function(ctx, result)
    local sid = superid.client(ctx, true)
    if present(result.previous) then
      sid:register(target(ctx), result.previous)
    else
      local gone = sid:unregister(target(ctx))
      if not result.tenant_created and present(gone.tenant) then sid:put_tenant(target(ctx), gone.tenant) end
    end
  end,
}

M.replace_test_environment = wf.step "replace_test_environment" {
  title = "Replace test environment in SuperID",
  doc = "Points the source's test environment at the target, with this clone's time. "
    .. "Undo: SuperID restores the replaced version (or deletes a new one).",
  run = function(ctx)
    local env = source(ctx) .. "-test"
    local answer = superid.client(ctx):replace_environment(env, { customer = source(ctx),
      kind = "test", tenant = target(ctx), source = source(ctx), cloned_at = state(ctx).clone_time })
    return { environment = env, previous = answer.previous or json.null }
  end,
  compensate = function(ctx, result)
    local sid = superid.client(ctx, true)
    if present(result.previous) then sid:restore_environment(result.environment)
    else sid:delete_environment(result.environment) end
  end,
}

M.change_serial_number = wf.step "change_serial_number" {
  title = "Change serial number to TEST NAME/ SERIALNUMBER",
  doc = "We need to change the serial number and owner company to match that of the "
    .. "test tenant. License information. Takes both from the target tenant's license "
    .. "on the control plane. Undo: the copied values back.",
  run = function(ctx)
    local lic = tenants.client(ctx):license(target(ctx))
    local serial, owner = lic.serial_number or "TEST", lic.owner_company or "TEST"
    state(ctx).test_license = { serial_number = serial, owner_company = owner }
    return with_target(ctx, function(conn)
      return conn:tx(function()
        local before = state(ctx).license_before
          or conn:query("SELECT id, serial_number, owner_company FROM license ORDER BY id" .. for_update(ctx))
        state(ctx).license_before = before
        conn:exec("UPDATE license SET serial_number = $1, owner_company = $2", serial, owner)
        return { serial_number = serial, owner_company = owner, previous = array(before) }
      end)
    end)
  end,
  compensate = function(ctx, result)
    with_target(ctx, function(conn)
      for _, r in ipairs(result.previous) do
        conn:exec("UPDATE license SET serial_number = $2, owner_company = $3 WHERE id = $1",
          r.id, r.serial_number, r.owner_company)
      end
    end)
  end,
  retry = SQL_RETRY,
}

M.superid_in_migration = wf.step "superid_in_migration" {
  title = "Set SuperId Tenant State to: In migration",
  doc = "Also notes who holds plans on the sandbox now, for step 22. Undo: the previous state.",
  run = function(ctx)
    local sid = superid.client(ctx)
    -- assign_user_plans withdraws these plans. Noted here, in a completed step's
    -- state, so that a re-run of assign_user_plans after a crash sends the very
    -- same request under its idempotency key.
    local holders = {}
    for user in pairs(sid:plans(target(ctx))) do holders[#holders + 1] = user end
    table.sort(holders)
    state(ctx).plan_holders = array(holders)
    local answer = sid:set_state(target(ctx), "In migration")
    return { previous = answer.previous or json.null }
  end,
  compensate = function(ctx, result)
    if present(result.previous) then superid.client(ctx, true):set_state(target(ctx), result.previous) end
  end,
}

M.assign_user_plans = wf.step "assign_user_plans" {
  title = "Assign user plans",
  doc = "Assign user plans to the users that should be allowed to log in to the "
    .. "production sandbox: the active associates linked to SuperID get sandbox-admin "
    .. "(admins) or sandbox-user; plans others hold on the sandbox are withdrawn. "
    .. "Undo: assign the previous plans.",
  run = function(ctx)
    local sid = superid.client(ctx)
    local rows = with_target(ctx, function(conn)
      return conn:query([[SELECT superid_user, role FROM associate
        WHERE is_active AND superid_user IS NOT NULL ORDER BY superid_user]])
    end)
    local assignments = json.object()
    -- From superid_in_migration's note, not a fresh read: after a crash the plans read
    -- now may already be this step's own, and the request must not change.
    local holders = state(ctx).plan_holders
    if holders then
      for _, user in ipairs(holders) do assignments[user] = json.null end
    else
      for user in pairs(sid:plans(target(ctx))) do assignments[user] = json.null end
    end
    for _, r in ipairs(rows) do
      assignments[r.superid_user] = array { r.role == "admin" and "sandbox-admin" or "sandbox-user" }
    end
    local answer = sid:assign_plans(target(ctx), assignments)
    return { assigned = assignments, previous = json.object(answer.previous or {}) }
  end,
  compensate = function(ctx, result)
    superid.client(ctx, true):assign_plans(target(ctx), json.object(result.previous))
  end,
}

M.sync_superid_users = wf.step "sync_superid_users" {
  title = "Sync customer SuperID users",
  doc = "SuperID makes the sandbox's users exactly those holding a plan on it. "
    .. "Undo: the previous user list.",
  run = function(ctx)
    local answer = superid.client(ctx):sync_users(target(ctx))
    return { previous = array(answer.previous), added = array(answer.added),
      removed = array(answer.removed) }
  end,
  compensate = function(ctx, result)
    superid.client(ctx, true):set_users(target(ctx), array(result.previous))
  end,
}

M.superid_normal = wf.step "superid_normal" {
  title = "Set SuperID tenant state to: Normal",
  doc = "Undo: the previous state (In migration).",
  run = function(ctx)
    local answer = superid.client(ctx):set_state(target(ctx), "Normal")
    return { previous = answer.previous or json.null }
  end,
  compensate = function(ctx, result)
    if present(result.previous) then superid.client(ctx, true):set_state(target(ctx), result.previous) end
  end,
}

return M
