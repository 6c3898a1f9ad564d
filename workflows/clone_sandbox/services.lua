-- services.lua: the clone's service steps, clone_templates to
-- recycle_customer: templates, the mail service (the old Service folders
-- held, one test mailbox), the query login, the recycle (clone_sandbox.lua
-- lists every step, in order).
local wf = require "wf"
local json = require "wf.json"
local tenants = require "lib.tenants"
local databases = require "lib.databases"
local mailboxes = require "lib.mailboxes"
local common = require "clone_sandbox.common"
local state = require("clone_sandbox.state_keys").state

local present = common.present
local target = common.target
local target_db = common.target_db
local login_name = common.login_name
local login_password = common.login_password
local with_target = common.with_target
local with_admin = common.with_admin
local wait_task = common.wait_task
local array = common.array
local test_mailbox = common.test_mailbox
local mirror_container = common.mirror_container
local restore_container = common.restore_container
local SQL_RETRY = common.SQL_RETRY

local M = {}

-- provision_mail_service's work: hold the old folders, test created and
-- checked, the database's mailbox and route, the route on the control plane.
local function provision_mail_service(ctx, folders, had_test)
  local test = test_mailbox(ctx)
  local held = mailboxes.hold_all(ctx, folders, test)
  if not had_test then folders:create(test) end
  if ctx.mode == "run" then
    local left = folders:names()
    if #left ~= 1 or left[1] ~= test then
      ctx:fail("Service folders left on the mail server: " .. table.concat(left, ", "))
    end
    ctx:log("mailbox %s holds %d messages", folders:folder(test), folders:count(test))
  end
  local address = test .. "@" .. (state(ctx).target_mail_domain or "sandbox.invalid")
  with_target(ctx, function(conn)
    conn:tx(function()
      conn:exec("DELETE FROM mail_route")
      conn:exec("DELETE FROM mailbox")
      conn:exec([[WITH m AS (INSERT INTO mailbox (address, server, username, folder)
          VALUES ($1, $2, $3, $4) RETURNING id, address)
        INSERT INTO mail_route (address, mailbox_id, destination)
        SELECT address, id, 'mailbox:' || id FROM m]],
        address, folders.url, folders.user, folders:folder(test))
    end)
  end)
  local route = tenants.client(ctx):add_mail_route(target(ctx),
    { address = address, destination = "inbox:" .. test })
  ctx:tally(#held, "Service folders", "hold", "held", "under " .. folders.held)
  -- wait_iis_operations deletes what is held; in a dry-run nothing is, so it reads this
  if ctx.mode == "dry-run" then state(ctx).would_hold = array(held) end
  return { address = address, held_folders = array(held), held_in = folders.held,
    created_test = not had_test, route = route.id or json.null }
end

M.clone_templates = wf.step "clone_templates" {
  title = "Clone Azure templates from CUST on ARCHIVEServer",
  doc = "Copy templates from source to target: mirrors the source's template container "
    .. "into the target's. Undo: put the previous container back.",
  run = mirror_container("templates"),
  compensate = restore_container("templates"),
}

M.provision_mail_service = wf.step "provision_mail_service" {
  title = "Verify or provision mail service",
  doc = "All mailboxes used by Service are replaced with one single test email account for "
    .. "this domain: moves the target's Service folders but test, messages and all, to "
    .. "Held/<target>/<run id>/ on the mail server (outside Service/, nothing routes there), "
    .. "creates and verifies test, replaces the database's mailbox and mail_route rows and "
    .. "adds the test route on the control plane. Step 31 deletes the held folders once the "
    .. "clone succeeded. Undo: purge the route, move the held folders back with their "
    .. "messages, delete test if this step created it.",
  run = function(ctx)
    local folders = mailboxes.service(ctx, target(ctx))
    local had_test = mailboxes.has(folders, test_mailbox(ctx))
    local ok, result = pcall(provision_mail_service, ctx, folders, had_test)
    if not ok then
      mailboxes.undo_attempt(ctx, folders, test_mailbox(ctx), had_test)
      error(result, 0)
    end
    return result
  end,
  compensate = function(ctx, result)
    if result == nil then
      -- an attempt cut short (the engine killed or interrupted, then the
      -- run rolled back): what it held is read from the mail server
      mailboxes.release_all(ctx, mailboxes.service(ctx, target(ctx)))
      return
    end
    if present(result.route) then tenants.client(ctx, true):purge_mail_route(target(ctx), result.route) end
    mailboxes.restore(ctx, mailboxes.service(ctx, target(ctx)), test_mailbox(ctx), result.created_test,
      result.held_folders)
  end,
  undo_partial = true,
}

M.grant_query_login = wf.step "grant_query_login" {
  title = "Set database permissions for customer query",
  doc = "Ensures the read-only login <target>_query and lets it read every table of the "
    .. "new database. Undo: revoke, and drop the login if this step created it.",
  run = function(ctx)
    local role = login_name(ctx, "query")
    local created = with_admin(ctx, target_db(ctx).cluster, function(admin)
      return databases.ensure_login(admin, role, login_password(ctx))
    end)
    with_target(ctx, function(conn) databases.grant(conn, target_db(ctx).name, role, "read") end)
    return { role = role, created = created }
  end,
  compensate = function(ctx, result)
    with_admin(ctx, target_db(ctx).cluster, function(admin)
      if databases.exists(admin, target_db(ctx).name) then
        with_target(ctx, function(conn) databases.revoke(conn, target_db(ctx).name, result.role) end)
      end
      if result.created then databases.drop_login(admin, result.role) end
    end)
  end,
  retry = SQL_RETRY,
}

M.recycle_customer = wf.step "recycle_customer" {
  title = "Recycle customer",
  doc = "Recycle the target: starts a recycle task and waits until it is done. "
    .. "Undo: deletes the task record (a recycle itself needs no undo).",
  run = function(ctx)
    local task = tenants.client(ctx):recycle(target(ctx))
    if present(task) and task.id then
      wait_task(ctx, task.id, "the recycle task")
      return { task = task.id }
    end
    return { task = json.null }
  end,
  compensate = function(ctx, result)
    if present(result.task) then tenants.client(ctx, true):delete_task(target(ctx), result.task) end
  end,
  timeout = 1900,
}

return M
