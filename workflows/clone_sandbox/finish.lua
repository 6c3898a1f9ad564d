-- finish.lua: the clone's last steps, create_partner_system_users to
-- wait_iis_operations: partner system users, company and license,
-- EjPackages, the partner apps notified (irreversible), running mode, and
-- the wait for IIS after which what the clone put aside goes
-- (clone_sandbox.lua lists every step, in order).
local wf = require "wf"
local json = require "wf.json"
local tenants = require "lib.tenants"
local iis = require "lib.iis"
local apps = require "lib.apps"
local databases = require "lib.databases"
local mailboxes = require "lib.mailboxes"
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
local array = common.array
local for_update = common.for_update
local mirror_container = common.mirror_container
local restore_container = common.restore_container
local SQL_RETRY = common.SQL_RETRY

local M = {}

-- notify_apps in a dry-run: the app ids read, and those create_partner_system_users would add.
local function with_would_authorized(ctx, rows)
  local seen, all = {}, {}
  for _, r in ipairs(rows) do seen[r.app_id] = true all[#all + 1] = r end
  for _, id in ipairs(state(ctx).would_authorize or {}) do
    if not seen[id] then seen[id] = true all[#all + 1] = { app_id = id } end
  end
  table.sort(all, function(a, b) return a.app_id < b.app_id end)
  return all
end

-- wait_iis_operations: the clone is done, so the old sandbox's Service
-- folders that provision_mail_service held go. Listing the holding area
-- makes it idempotent. Returns the names deleted.
local function discard_held_folders(ctx)
  local folders = mailboxes.service(ctx, target(ctx))
  -- a dry-run held nothing: it deletes (reports) what provision_mail_service would hold
  local held = ctx.mode == "dry-run" and { table.unpack(state(ctx).would_hold or {}) } or folders:held_names()
  local gone = mailboxes.discard(folders, held)
  if #gone > 0 then
    ctx:tally(#gone, "held Service folders", "delete", "deleted", "(the old sandbox's, under " .. folders.held .. ")")
  end
  return gone
end

M.create_partner_system_users = wf.step "create_partner_system_users" {
  title = "Create partner system users from app authorizations in customer database",
  doc = "If this replaces an existing sandbox with a new copy from source, any apps "
    .. "authorized on the sandbox that uses a system user must be re-created in the "
    .. "target database: the old sandbox's authorizations missing from the copy are "
    .. "added, and every authorization with a system user gets its partner system user. "
    .. "Undo: delete what was inserted.",
  run = function(ctx)
    local known = apps.client(ctx):all()
    return with_target(ctx, function(conn)
      return conn:tx(function()
        local have = {}
        for _, r in ipairs(conn:query("SELECT DISTINCT app_id FROM app_authorization")) do
          have[r.app_id] = true
        end
        local authorizations, users, new_users, new_apps = {}, {}, {}, {}
        for _, a in ipairs(state(ctx).old_app_authorizations or {}) do
          local app = known[a.app_id]
          if not have[a.app_id] and (ctx.mode == "simulate" or (app and app.uses_system_user)) then
            local rows = databases.change(ctx, conn, function() return { { id = json.null } } end,
              [[INSERT INTO app_authorization
              (app_id, client_id, app_name, system_user, scopes) VALUES ($1, $2, $3, $4, $5::text[])
              RETURNING id]], a.app_id, a.client_id, a.app_name, a.system_user, a.scopes or "{}")
            if rows[1] then authorizations[#authorizations + 1] = rows[1].id end
            have[a.app_id] = true
            new_users[#new_users + 1] = a.system_user
            new_apps[#new_apps + 1] = a.app_id
          end
        end
        -- notify_apps notifies the apps authorized then: in a dry-run these are not there
        if ctx.mode == "dry-run" then state(ctx).would_authorize = array(new_apps) end
        local rows = databases.change(ctx, conn, function(c)
          return c:query([[SELECT DISTINCT name FROM (SELECT system_user AS name FROM app_authorization
              UNION SELECT unnest($1::text[])) n
            WHERE name IS NOT NULL AND NOT EXISTS (SELECT 1 FROM system_user s WHERE s.name = n.name)
            ORDER BY name]], databases.array(new_users))
        end, [[INSERT INTO system_user (name, kind, app_client_id)
          SELECT DISTINCT ON (system_user) system_user, 'partner', client_id FROM app_authorization
          WHERE system_user IS NOT NULL ORDER BY system_user, id
          ON CONFLICT (name) DO NOTHING RETURNING name]])
        for i, r in ipairs(rows) do users[i] = r.name end
        ctx:tally(#authorizations, "app authorizations", "re-create", "re-created")
        ctx:tally(#users, "partner system users", "create", "created")
        return { authorizations = array(authorizations), system_users = array(users) }
      end)
    end)
  end,
  compensate = function(ctx, result)
    with_target(ctx, function(conn)
      conn:tx(function()
        conn:exec("DELETE FROM system_user WHERE name = ANY($1::text[])", databases.array(result.system_users))
        conn:exec("DELETE FROM app_authorization WHERE id = ANY($1::int[])",
          databases.array(result.authorizations))
      end)
    end)
  end,
  retry = SQL_RETRY,
}

M.update_company_license = wf.step "update_company_license" {
  title = "Update company info and license",
  doc = "The sandbox's own company takes the test name (step 20's owner company); on the "
    .. "control plane the target's license takes the source's edition and modules with "
    .. "the test serial, owner and seats, and its company record the source's details "
    .. "with the test name. Undo: the previous records and name.",
  run = function(ctx)
    local cp = tenants.client(ctx)
    local test = state(ctx).test_license or {}
    local test_name = test.owner_company or ("TEST " .. source(ctx))
    local t_license, s_license = cp:license(target(ctx)), cp:license(source(ctx))
    local license = {}
    for k, v in pairs(s_license) do license[k] = v end
    license.serial_number = t_license.serial_number or test.serial_number
    license.owner_company = t_license.owner_company or test_name
    license.seats = t_license.seats or license.seats
    local company = {}
    for k, v in pairs(cp:company(source(ctx))) do company[k] = v end
    company.name = test_name
    local db_previous = with_target(ctx, function(conn)
      return conn:tx(function()
        local before = state(ctx).own_company_before
          or conn:query("SELECT id, name FROM company WHERE is_own ORDER BY id" .. for_update(ctx))
        state(ctx).own_company_before = before
        conn:exec("UPDATE company SET name = $1 WHERE is_own", test_name)
        return before
      end)
    end)
    local l = cp:put_license(target(ctx), json.object(license))
    local c = cp:put_company(target(ctx), json.object(company))
    return { license_previous = l.previous or json.null, company_previous = c.previous or json.null,
      own_company_previous = array(db_previous) }
  end,
  compensate = function(ctx, result)
    local cp = tenants.client(ctx, true)
    if present(result.license_previous) then cp:put_license(target(ctx), result.license_previous) end
    if present(result.company_previous) then cp:put_company(target(ctx), result.company_previous) end
    with_target(ctx, function(conn)
      for _, r in ipairs(result.own_company_previous) do
        conn:exec("UPDATE company SET name = $2 WHERE id = $1", r.id, r.name)
      end
    end)
  end,
}

M.clone_ejpackages = wf.parallel "clone_ejpackages" {
  title = "Clone EjPackages (Azure and SoArc at once)",
  wf.step "clone_ejpackages_azure" {
    title = "Clone EjPackages in Azure from CustID",
    doc = "Mirrors the source's EjPackages container in Azure storage into the target's. "
      .. "Undo: the previous container.",
    run = mirror_container("ejpackages"),
    compensate = restore_container("ejpackages"),
  },
  wf.step "clone_ejpackages_soarc" {
    title = "Clone EjPackages in SoArc from CustID",
    doc = "Mirrors the source's packages on the SoArc archive server into the target's. "
      .. "Undo: the previous packages.",
    run = mirror_container("soarc"),
    compensate = restore_container("soarc"),
  },
}

M.notify_apps = wf.step "notify_apps" {
  title = "Notify apps about Changing State with BackupRestored",
  doc = "Notify partner apps: every app authorized in the new sandbox database gets one "
    .. "BackupRestored event on its webhook, all at once, each with an idempotency key "
    .. "so a retry or resume never notifies twice. Irreversible: a notification cannot "
    .. "be unsent and partners act on it, so a failure after this step pauses the run "
    .. "for a person instead of compensating past it.",
  irreversible = true,
  run = function(ctx)
    local client = apps.client(ctx)
    local known = client:all()
    local ids = with_target(ctx, function(conn)
      return conn:query("SELECT DISTINCT app_id FROM app_authorization ORDER BY app_id")
    end)
    local list, unknown = {}, {}
    if ctx.mode == "dry-run" then ids = with_would_authorized(ctx, ids) end
    for _, r in ipairs(ids) do
      if known[r.app_id] and known[r.app_id].webhook_url then list[#list + 1] = known[r.app_id]
      else unknown[#unknown + 1] = r.app_id end
    end
    if #unknown > 0 then ctx:warn("apps without a webhook, not notified: %s", table.concat(unknown, ", ")) end
    local received = client:notify(list, { event = "BackupRestored", tenant = target(ctx),
      source = source(ctx), run_id = ctx.run_id, state = "BackupRestored" })
    ctx:tally(#list, "apps", "notify", "notified")
    return { notified = json.object(received) }
  end,
}

M.enter_running_mode = wf.step "enter_running_mode" {
  title = "Enter running mode",
  doc = "The production sandbox may now be logged in to! Going live queues the web "
    .. "farm's ApplicationHost.config operations (step 31). Undo: back to offline "
    .. "maintenance (forced) and the queued records deleted.",
  run = function(ctx)
    local answer = tenants.client(ctx):set_mode(target(ctx), "running")
    local ops = {}
    for i, op in ipairs(answer.iis_operations or {}) do ops[i] = op.id end
    return { previous = answer.previous or json.null, iis_operations = array(ops) }
  end,
  compensate = function(ctx, result)
    if present(result.previous) and result.previous ~= "running" then
      restore_mode(ctx, result.previous, nil, true)
      local ops = iis.client(ctx, true)
      for _, id in ipairs(result.iis_operations) do ops:delete(target(ctx), id) end
    end
  end,
}

M.wait_iis_operations = wf.step "wait_iis_operations" {
  title = "Wait for customers IIS ApplicationHost.config operations to complete",
  doc = "Waits until the target has no IIS operation running. Then, the clone being done, "
    .. "drops the old sandbox database step 5 put aside and deletes the old Service "
    .. "folders step 17 held under Held/<target>/<run id>/ (a failure of either is a "
    .. "warning saying what to remove by hand, never a reason to undo the clone).",
  run = function(ctx)
    local ops = iis.client(ctx)
    ctx:wait_until(function() return ops:active(target(ctx)) == 0 end,
      { timeout = 1800, interval = poll_interval(ctx), what = "IIS operations" })
    local old = state(ctx).old_database
    if old then
      local ok, err = pcall(with_admin, ctx, target_db(ctx).cluster, function(admin)
        databases.drop(admin, old)
      end)
      if ok then ctx:tally(1, "old sandbox databases", "drop", "dropped", "(" .. old .. ")")
      else ctx:warn("could not drop the old sandbox database (DROP DATABASE %s WITH (FORCE)): %s",
        old, tostring(err)) end
    end
    local held_in = mailboxes.held_prefix(target(ctx), ctx.run_id)
    local ok, gone = pcall(discard_held_folders, ctx)
    if not ok and type(gone) == "table" and gone.kind == "cancelled" then error(gone, 0) end
    if not ok then
      ctx:warn("could not delete the old sandbox's Service folders held under %s (delete them by "
        .. "hand): %s", held_in, tostring(gone))
      gone = {}
    end
    return { dropped_old_database = old or json.null, deleted_held_folders = array(gone),
      held_in = held_in }
  end,
  timeout = 1900,
}

return M
