-- state_keys.lua: the ctx.state keys the clone's steps share, in one place.
-- Each key is written by one step (its `writer`) and read by the steps in
-- `readers` (documentation: a helper such as common.target_db reads for
-- whichever step calls it). Steps reach ctx.state only through
-- state_keys.state(ctx), which refuses a key not declared here and a write
-- from any step but the key's writer; tests/lua/clone_layout.t checks that
-- no file of the clone touches ctx.state otherwise and that each key is
-- used by the steps named here.
local state_keys = {}

state_keys.KEYS = {
  target_db = { writer = "enter_maintenance",
    readers = { "every step on the target database (common.target_db)" },
    doc = "{cluster, name}: where the target's database lives, from the control plane" },
  source_db = { writer = "enter_maintenance", readers = { "copy_database" },
    doc = "{cluster, name}: where the source's database lives (common.source_db)" },
  target_mail_domain = { writer = "enter_maintenance", readers = { "provision_mail_service" },
    doc = "the target's mail domain: the test mailbox's address is test@<it>" },
  target_name = { writer = "enter_maintenance", readers = { "register_superid" },
    doc = "the target tenant's display name" },
  clone_time = { writer = "enter_maintenance", readers = { "prepare_database", "replace_test_environment" },
    doc = "when the clone started (UTC, ISO 8601); kept by a retry" },
  old_app_authorizations = { writer = "enter_maintenance", readers = { "create_partner_system_users" },
    doc = "the old sandbox's app authorizations with a system user, read before it is replaced" },
  maintenance_task = { writer = "enter_maintenance", readers = { "wait_customer_task" },
    doc = "the id of the task entering maintenance started, if any" },
  maintenance_task_would = { writer = "enter_maintenance", readers = { "wait_customer_task" },
    doc = "dry-run: true when entering maintenance would start a task" },
  old_database = { writer = "drop_database", readers = { "wait_iis_operations" },
    doc = "the name the old sandbox database was renamed to (<target>_old_<run id>)" },
  stream_rewrite = { writer = "copy_database", readers = { "rewrite_email_addresses" },
    doc = "{columns, values, changed}: what the copy stream rewrote, per column" },
  would_hold = { writer = "provision_mail_service", readers = { "wait_iis_operations" },
    doc = "dry-run: the Service folders that would be held (and then deleted)" },
  test_license = { writer = "change_serial_number", readers = { "update_company_license" },
    doc = "{serial_number, owner_company} of the test tenant's license" },
  license_before = { writer = "change_serial_number", readers = { "change_serial_number" },
    doc = "the license rows before the change, kept across attempts for the undo" },
  plan_holders = { writer = "superid_in_migration", readers = { "assign_user_plans" },
    doc = "who held plans on the sandbox: the same withdrawal after a crash" },
  would_authorize = { writer = "create_partner_system_users", readers = { "notify_apps" },
    doc = "dry-run: the app ids that would be re-authorized (and so notified)" },
  own_company_before = { writer = "update_company_license", readers = { "update_company_license" },
    doc = "the own company rows before the rename, kept across attempts for the undo" },
}

local function declared(key)
  local spec = state_keys.KEYS[key]
  if not spec then
    error(string.format("ctx.state.%s is not declared in workflows/clone_sandbox/state_keys.lua",
      tostring(key)), 3)
  end
  return spec
end

-- state_keys.state(ctx) -> ctx.state, for the declared keys only.
function state_keys.state(ctx)
  return setmetatable({}, {
    __index = function(_, key)
      declared(key)
      return ctx.state[key]
    end,
    __newindex = function(_, key, value)
      local spec = declared(key)
      if ctx.step ~= spec.writer then
        error(string.format("ctx.state.%s is written by step %s only, not %s (state_keys.lua)", key,
          spec.writer, tostring(ctx.step)), 2)
      end
      ctx.state[key] = value
    end,
  })
end

return state_keys
