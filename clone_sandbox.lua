-- clone_sandbox.lua: clones a production customer's database into its
-- "production sandbox" tenant, the 31 steps of the clone procedure
-- (the operations team's procedure) in its order and with its titles. Runbook:
-- docs/clone-sandbox.md; lab mapping of each step: tests/lab/STEPS.md.
--
--   wfengine clone_sandbox.lua -c tests/lab/lab.yaml -p source=cust1001 -p target=sbx2001
--
-- The steps at a glance (number, id, title; tests/lua/clone_layout.t keeps
-- this list and `wfengine plan clone_sandbox.lua` in agreement). They live
-- in workflows/clone_sandbox/: maintenance.lua (1-4), database.lua (5-13),
-- identity.lua (14-15, 20-24), services.lua (16-19), finish.lua (25-31);
-- common.lua holds what they share and state_keys.lua the ctx.state keys
-- they pass on to each other.
--
--    1  enter_maintenance            Wait for customer tasks to complete and enter offline maintenance mode
--    2  wait_customer_task           Wait for customer task to complete
--    3  connect_old_clusters         Connecting customer to old clusters
--    4  remove_mail_routes           Remove mail routes
--    5  drop_database                Drop database
--    6  create_database              Create customer database
--    7  create_sql_login             Create SQL login
--    8  copy_database                Copy customer database from XXX to ZZZ
--    9  prepare_database             Prepare cloned database for target customer
--   10  grant_app_login              Create SQL login
--   11  disable_scheduled_tasks      Disable scheduled tasks
--   12  fix_system_users             Fix system users
--   13  rewrite_email_addresses      Replacing all personal email domains with '@mailinator.com'
--   14  register_superid             Register customer in SuperID
--   15  replace_test_environment     Replace test environment in SuperID
--   16  clone_templates              Clone Azure templates from CUST on ARCHIVEServer
--   17  provision_mail_service       Verify or provision mail service
--   18  grant_query_login            Set database permissions for customer query
--   19  recycle_customer             Recycle customer
--   20  change_serial_number         Change serial number to TEST NAME/ SERIALNUMBER
--   21  superid_in_migration         Set SuperId Tenant State to: In migration
--   22  assign_user_plans            Assign user plans
--   23  sync_superid_users           Sync customer SuperID users
--   24  superid_normal               Set SuperID tenant state to: Normal
--   25  create_partner_system_users  Create partner system users from app authorizations in customer database
--   26  update_company_license       Update company info and license
--   27  clone_ejpackages_azure       Clone EjPackages in Azure from CustID
--   28  clone_ejpackages_soarc       Clone EjPackages in SoArc from CustID
--   29  notify_apps                  Notify apps about Changing State with BackupRestored
--   30  enter_running_mode           Enter running mode
--   31  wait_iis_operations          Wait for customers IIS ApplicationHost.config operations to complete
--
-- (27 and 28 run at once: the parallel group clone_ejpackages.)
--
-- Safety beyond the procedure: before enter_maintenance touches anything it
-- checks (read-only) that the target is a sandbox of the source and the
-- source a production tenant; drop_database renames the old sandbox database
-- aside instead of dropping it, and wait_iis_operations drops it only once
-- everything else is done (provision_mail_service likewise moves the old
-- Service mail folders aside to Held/, and wait_iis_operations deletes them);
-- every step that changes something has a compensate that puts back what its
-- result says it replaced. notify_apps (notify partner apps) cannot be
-- undone: it is irreversible, so a failure after it pauses for a person.
local wf = require "wf"
local common = require "clone_sandbox.common"
local maintenance = require "clone_sandbox.maintenance"
local database = require "clone_sandbox.database"
local identity = require "clone_sandbox.identity"
local services = require "clone_sandbox.services"
local finish = require "clone_sandbox.finish"

-- ---- parameters -------------------------------------------------------------

local TENANT_ID = "[a-z][a-z0-9_]*"

local function tenant_id_check(value)
  if #value > 30 then return "a tenant id is at most 30 characters" end
end

local function domain_check(value)
  if #value > 253 then return "too long for a mail domain" end
  if not value:find("%.") then return "a mail domain has at least two labels (e.g. mailinator.com)" end
  for label in (value .. "."):gmatch("([^.]*)%.") do
    if label == "" or #label > 63 or label:find("^%-") or label:find("%-$") then
      return "not a mail domain: " .. value
    end
  end
end

-- ---- the workflow -----------------------------------------------------------

return wf.workflow {
  name = "clone_sandbox",
  description = "Clone a customer's production database into its production sandbox tenant",
  params = {
    source = { required = true, pattern = TENANT_ID, check = tenant_id_check,
      doc = "the production tenant to clone (e.g. cust1001); only read" },
    target = { required = true, pattern = TENANT_ID, doc = "the sandbox tenant to replace (e.g. sbx2001)",
      check = function(value, params)
        if value == params.source then return "target and source are the same tenant" end
        return tenant_id_check(value)
      end },
    mail_domain = { default = "mailinator.com", pattern = "[%w][%w%.%-]*",
      env = "SANDBOX_MAIL_DOMAIN", check = domain_check,
      doc = "step 13: john.doe@company.com becomes john.doe_company.com@<mail_domain>" },
  },
  retry = common.HTTP_RETRY,
  timeout = 300,
  on_failure = "compensate",
  lock = function(ctx) return "sandbox:" .. ctx.params.target end,

  steps = {
    maintenance.enter_maintenance, -- 1
    maintenance.wait_customer_task, -- 2
    maintenance.connect_old_clusters, -- 3
    maintenance.remove_mail_routes, -- 4
    database.drop_database, -- 5
    database.create_database, -- 6
    database.create_sql_login, -- 7
    database.copy_database, -- 8
    database.prepare_database, -- 9
    database.grant_app_login, -- 10
    database.disable_scheduled_tasks, -- 11
    database.fix_system_users, -- 12
    database.rewrite_email_addresses, -- 13
    identity.register_superid, -- 14
    identity.replace_test_environment, -- 15
    services.clone_templates, -- 16
    services.provision_mail_service, -- 17
    services.grant_query_login, -- 18
    services.recycle_customer, -- 19
    identity.change_serial_number, -- 20
    identity.superid_in_migration, -- 21
    identity.assign_user_plans, -- 22
    identity.sync_superid_users, -- 23
    identity.superid_normal, -- 24
    finish.create_partner_system_users, -- 25
    finish.update_company_license, -- 26
    finish.clone_ejpackages, -- 27-28
    finish.notify_apps, -- 29
    finish.enter_running_mode, -- 30
    finish.wait_iis_operations, -- 31
  },
}
