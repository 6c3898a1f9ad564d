-- clone_sandbox.lua: clones a production customer's database into its
-- "production sandbox" tenant, the 31 steps of the clone procedure
-- (the operations team's procedure) in its order and with its titles. Runbook:
-- docs/clone-sandbox.md; lab mapping of each step: tests/lab/STEPS.md.
--
--   wfengine clone_sandbox.lua -c tests/lab/lab.yaml -p source=cust1001 -p target=sbx2001
--
-- Safety beyond the procedure: before step 1 touches anything it checks
-- (read-only) that the target is a sandbox of the source and the source a
-- production tenant; step 5 renames the old sandbox database aside instead
-- of dropping it, and step 31 drops it only once everything else is done
-- (step 17 likewise moves the old Service mail folders aside to Held/, and
-- step 31 deletes them); every step that changes something has a
-- compensate that puts back what its result says it replaced. Step 29
-- (notify partner apps) cannot be undone: it is irreversible, so a failure
-- after it pauses for a person.
local sql = require "wf.sql"
local json = require "wf.json"
local service = require "lib.service"
local tenants = require "lib.tenants"
local iis = require "lib.iis"
local superid = require "lib.superid"
local storage = require "lib.storage"
local apps = require "lib.apps"
local databases = require "lib.databases"
local addresses = require "lib.addresses"
local rewriting = require "wf.sql_rewrite"
local mailboxes = require "lib.mailboxes"

local present = service.present

-- ---- helpers ----------------------------------------------------------------

-- Steps 16, 27 and 28 mirror one of the source's storage containers into the
-- target's; their undo puts the target's previous contents back.
local function mirror_container(kind)
  return function(ctx)
    local answer = storage.container(ctx, kind, ctx.params.target):copy_from(ctx.params.source)
    return { copied = json.array(answer.copied or {}), deleted = json.array(answer.deleted or {}),
      previous = json.array(answer.previous or {}) }
  end
end

local function restore_container(kind)
  return function(ctx, result)
    storage.container(ctx, kind, ctx.params.target, true):put_all(result.previous)
  end
end

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

local function target(ctx) return ctx.params.target end
local function source(ctx) return ctx.params.source end

-- The target's database ({cluster, name}) as step 1 found it.
local function target_db(ctx)
  return ctx.state.target_db or { cluster = "sandbox", name = target(ctx) }
end

local function source_db(ctx)
  return ctx.state.source_db or { cluster = "source", name = source(ctx) }
end

local function sandbox_conf(ctx)
  return ctx.config.sandbox or {}
end

-- Columns that hold one address each though their names lack "email":
-- rewritten whole (mail.sandbox_address), like the *email* columns.
local WHOLE_ADDRESS_COLUMNS = { "document.sent_to", "mailbox.address", "mail_route.address" }

-- Step 8's rewrite option (sql.copy_database): every text-bearing column,
-- with sandbox.rewrite's whole, exclude and columns (masking) from the
-- config.
local function stream_rewrite(ctx)
  local conf = sandbox_conf(ctx).rewrite or {}
  local whole = {}
  for _, name in ipairs(WHOLE_ADDRESS_COLUMNS) do whole[#whole + 1] = name end
  for _, name in ipairs(conf.whole or {}) do whole[#whole + 1] = name end
  return { domain = ctx.params.mail_domain, whole = whole, exclude = conf.exclude,
    columns = conf.columns }
end

local function poll_interval(ctx)
  return tonumber(sandbox_conf(ctx).maintenance_poll_seconds) or 1
end

local function login_name(ctx, which)
  local logins = ctx.config.logins or {}
  return target(ctx) .. (logins[which .. "_suffix"] or ("_" .. which))
end

local function login_password(ctx)
  local logins = ctx.config.logins or {}
  if not logins.password and ctx.mode == "simulate" then return "simulate-only-password" end
  if not logins.password then
    ctx:fail("config: logins.password is missing", { retryable = false })
  end
  return logins.password
end

-- The name step 5 gives the old sandbox database: <target>_old_<run id>.
local function old_db_name(ctx)
  return (target(ctx) .. "_old_" .. ctx.run_id:lower():gsub("[^a-z0-9]", "_")):sub(1, 63)
end

-- with_target(ctx, fn): fn(conn) on the target's (new) database
local function with_target(ctx, fn)
  local conn <close> = databases.connect(ctx, target_db(ctx))
  return fn(conn)
end

local function with_admin(ctx, cluster, fn)
  local conn <close> = databases.admin(ctx, cluster)
  return fn(conn)
end

-- Undoes a mode change: back to `mode`, then deletes the records the
-- change made (a task, IIS operations), so the tenant is as it was.
local function restore_mode(ctx, mode, created_task, force)
  local cp = tenants.client(ctx, true)
  local answer = cp:set_mode(target(ctx), mode, force)
  local ops = iis.client(ctx, true)
  for _, op in ipairs(answer.iis_operations or {}) do ops:delete(target(ctx), op.id) end
  if present(answer.task) then cp:delete_task(target(ctx), answer.task.id) end
  if created_task then cp:delete_task(target(ctx), created_task) end
end

local function wait_task(ctx, task_id, what)
  local cp = tenants.client(ctx)
  return ctx:wait_until(function()
    local task = cp:task(target(ctx), task_id)
    ctx:progress(0, 1, "task")
    return task.state == "done" and task
  end, { timeout = 1800, interval = poll_interval(ctx), what = what })
end

local function array(t) return json.array(t or {}) end

-- " FOR UPDATE", except in dry-run where reads run in read-only transactions.
local function for_update(ctx)
  return ctx.mode == "dry-run" and "" or " FOR UPDATE"
end

local function test_mailbox(ctx)
  return sandbox_conf(ctx).test_mailbox or "test"
end

local function set_of(list)
  local set = {}
  for _, v in ipairs(list) do set[v] = true end
  return set
end

-- Step 17: moves the target's Service folders but test into this run's
-- holding area (Held/<target>/<run>/). The mail server is the record of what
-- is held, not ctx.state (journaled only when a step completes): a retry or a
-- resume finds what an earlier attempt moved there and moves only the rest.
-- A name both held and back in Service/ is not this run's doing: stop for a
-- person. Returns the held names (outermost: children move with a parent).
local function hold_service_folders(ctx, folders)
  local test = test_mailbox(ctx)
  local held = mailboxes.outermost(folders:held_names())
  local already = set_of(held)
  local moving = {}
  for _, name in ipairs(folders:names()) do
    if name ~= test then moving[#moving + 1] = name end
  end
  for _, name in ipairs(mailboxes.outermost(moving)) do
    if already[name] then
      ctx:fail(string.format("both %s and %s exist: look before resuming", folders:folder(name),
        folders:held_folder(name)), { retryable = false })
    end
    folders:hold(name)
    if ctx.mode == "run" then ctx:log("moved %s to %s", folders:folder(name), folders:held_folder(name)) end
    held[#held + 1] = name
  end
  return mailboxes.outermost(held)
end

-- Step 17's undo: every folder still held by this run goes back to Service/,
-- messages and all. Idempotent: what a previous attempt moved back is no
-- longer held. A name expected but neither held nor back is reported (step
-- 31 deleted it before the run was rolled back instead of resumed).
local function release_service_folders(ctx, folders, expected)
  local back = set_of(folders:names())
  for _, name in ipairs(mailboxes.outermost(folders:held_names())) do
    if back[name] then
      ctx:fail(string.format("both %s and %s exist: look, then move one back by hand",
        folders:folder(name), folders:held_folder(name)), { retryable = false })
    end
    folders:release(name)
    back[name] = true
    if ctx.mode == "run" then ctx:log("moved %s back to %s", folders:held_folder(name), folders:folder(name)) end
  end
  for _, name in ipairs(expected or {}) do
    if not back[name] and ctx.mode == "run" then
      ctx:warn("%s was neither held nor back: its messages are gone", folders:folder(name))
    end
  end
end

-- The held folders back, and the test mailbox gone if step 17 created it:
-- step 17's undo, and what a failed attempt of it does itself.
local function restore_service_folders(ctx, folders, created_test, expected)
  release_service_folders(ctx, folders, expected)
  local test = test_mailbox(ctx)
  if created_test and set_of(folders:names())[test] then folders:delete(test) end
end

-- Step 17, an attempt that failed after holding: the folders go back and a
-- test mailbox it created goes (a failed step's own compensate never runs),
-- so a step 17 that fails for good leaves Service/ as it found it. If that
-- fails too (the mail server is the problem), they stay held, intact: the
-- next attempt or a resume carries on from there.
local function undo_attempt(ctx, folders, had_test)
  local ok, err = pcall(restore_service_folders, ctx, folders, not had_test)
  if not ok then
    ctx:warn("could not move the Service folders back after the failed attempt; they stay under %s: %s",
      folders.held, tostring(err))
  end
end

-- Depth first: in Maildir++ a parent deleted before its children stays listed.
local function deepest_first(names)
  local function depth(name) return select(2, name:gsub("/", "")) end
  table.sort(names, function(a, b)
    if depth(a) ~= depth(b) then return depth(a) > depth(b) end
    return a < b
  end)
  return names
end

-- Step 31: the clone is done, so the old sandbox's Service folders that step
-- 17 held go. Listing the holding area makes it idempotent; a name already
-- gone (NONEXISTENT: a retry, or a parent that only existed through its
-- children) is fine. Returns the names deleted.
local function discard_held_folders(ctx)
  local folders = mailboxes.service(ctx, target(ctx))
  local gone = {}
  -- a dry-run held nothing: it deletes (reports) what step 17 would hold
  local held = ctx.mode == "dry-run" and { table.unpack(ctx.state.would_hold or {}) } or folders:held_names()
  for _, name in ipairs(deepest_first(held)) do
    local ok, err = pcall(folders.discard, folders, name)
    if not ok and not (type(err) == "table" and err.code == "NONEXISTENT") then error(err, 0) end
    gone[#gone + 1] = name
  end
  if #gone > 0 then
    ctx:tally(#gone, "held Service folders", "delete", "deleted", "(the old sandbox's, under " .. folders.held .. ")")
  end
  return gone
end

-- Step 17's work: hold the old folders, test created and checked, the
-- database's mailbox and route, the route on the control plane.
local function provision_mail_service(ctx, folders, had_test)
  local test = test_mailbox(ctx)
  local held = hold_service_folders(ctx, folders)
  if not had_test then folders:create(test) end
  if ctx.mode == "run" then
    local left = folders:names()
    if #left ~= 1 or left[1] ~= test then
      ctx:fail("Service folders left on the mail server: " .. table.concat(left, ", "))
    end
    ctx:log("mailbox %s holds %d messages", folders:folder(test), folders:count(test))
  end
  local address = test .. "@" .. (ctx.state.target_mail_domain or "sandbox.invalid")
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
  -- step 31 deletes what is held; in a dry-run nothing is, so it reads this
  if ctx.mode == "dry-run" then ctx.state.would_hold = array(held) end
  return { address = address, held_folders = array(held), held_in = folders.held,
    created_test = not had_test, route = route.id or json.null }
end

-- Step 29 in a dry-run: the app ids read, and those step 25 would add.
local function with_would_authorized(ctx, rows)
  local seen, all = {}, {}
  for _, r in ipairs(rows) do seen[r.app_id] = true all[#all + 1] = r end
  for _, id in ipairs(ctx.state.would_authorize or {}) do
    if not seen[id] then seen[id] = true all[#all + 1] = { app_id = id } end
  end
  table.sort(all, function(a, b) return a.app_id < b.app_id end)
  return all
end

-- Step 13 after the copy rewrote the addresses in its stream (step 8): a
-- read-only scan of every text-bearing column of every table (each read by
-- a binary COPY and checked in C by the stream's own free-text rule:
-- arrays, json, composites included), rewrite_workers tables at once
-- (default 2), for any address outside the sandbox domain; what it
-- finds (a column the stream did not cover: added after the copy started, a
-- type it does not walk, a whole-address value holding several addresses)
-- is rewritten in place by the free-text rule, then scanned again, which
-- must find nothing. It counts what the sandbox got rewritten: step 8's
-- stream (ctx.state.stream_rewrite) plus in place, per column.
local function prove_sandbox(ctx, conn, db, domain)
  local workers = tonumber(sandbox_conf(ctx).rewrite_workers) or 2
  local leaks, scanned = rewriting.scan(function() return databases.connect(ctx, db) end,
    addresses.normal_domain(domain), workers)
  local changed, fixed = {}, 0
  if #leaks > 0 then
    for _, leak in ipairs(leaks) do
      ctx:warn("%s: %d values hold an address outside @%s after the copy: rewriting them in place",
        leak.column.name, leak.values, addresses.normal_domain(domain))
    end
    fixed = addresses.fix_leaks(conn, leaks, domain)
    local fixed_columns = {}
    for i, leak in ipairs(leaks) do
      fixed_columns[i] = leak.column
      changed[leak.column.name] = leak.values
    end
    local left = addresses.find_leaks(conn, fixed_columns, domain)
    if #left > 0 then
      ctx:fail(string.format("%s still holds %d production addresses after the in-place rewrite",
        left[1].column.name, left[1].values), { retryable = false })
    end
  end
  local streamed = ctx.state.stream_rewrite or {}
  local stream_values, total = streamed.values or 0, {}
  for name, n in pairs(streamed.changed or {}) do total[name] = n end
  for name, n in pairs(changed) do total[name] = (total[name] or 0) + n end
  local columns = 0
  for _ in pairs(total) do columns = columns + 1 end
  ctx:log("scanned %d text-bearing columns: no address outside @%s", scanned, addresses.normal_domain(domain))
  ctx:tally(stream_values + fixed, "values", "rewrite", "rewritten", string.format(
    "in %d columns to @%s (%d in the copy stream of step 8, %d in place)", columns,
    addresses.normal_domain(domain), stream_values, fixed))
  return { domain = addresses.normal_domain(domain), columns = scanned,
    stream_values = stream_values, stream_columns = streamed.columns or 0,
    in_place_values = fixed, in_place_columns = #leaks,
    values = stream_values + fixed, changed = json.object(total) }
end

-- Step 13 in a dry-run: what step 8's stream would rewrite in the would-be
-- copy (read as the source, sql.read_as), counted per column by the
-- stream's own plan and C rule (sql.rewrite_count: read-only). What the
-- proof would then find to rewrite in place is only known after the copy:
-- counted as none.
local function count_would_rewrite(ctx, db, domain)
  local counted = sql.rewrite_count { from = databases.dsn(ctx, db), rewrite = stream_rewrite(ctx),
    jobs = tonumber(sandbox_conf(ctx).rewrite_workers) or 2 }
  local columns = 0
  for _ in pairs(counted.changed) do columns = columns + 1 end
  ctx:tally(counted.values, "values", "rewrite", "rewritten", string.format(
    "in %d columns to @%s (in the copy stream of step 8)", columns, addresses.normal_domain(domain)))
  return { domain = addresses.normal_domain(domain), columns = #counted.columns,
    stream_values = counted.values, stream_columns = #counted.columns, in_place_values = 0,
    in_place_columns = 0, values = counted.values, changed = json.object(counted.changed) }
end

-- Retry policies.
local HTTP_RETRY = { attempts = 5, delay = 1, backoff = 2, max_delay = 20 }
local SQL_RETRY = { attempts = 3, delay = 2, backoff = 2 }
-- For the long SQL steps (copy, address rewrite): one more attempt, and only
-- after an SQL error whose SQLSTATE says retryable (a lost connection, a
-- deadlock); trying anything else again would spend hours to fail the same way.
local SQL_RETRY_LONG = { attempts = 2, delay = 5, retry_on = function(err)
  return err.kind == "sql" and err.retryable == true
end }

-- ---- the workflow -----------------------------------------------------------

return workflow {
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
  retry = HTTP_RETRY,
  timeout = 300,
  on_failure = "compensate",
  lock = function(ctx) return "sandbox:" .. ctx.params.target end,

  steps = {
    step "enter_maintenance" {
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
        ctx.state.target_db = t.database or { cluster = "sandbox", name = target(ctx) }
        ctx.state.source_db = s.database or { cluster = "source", name = source(ctx) }
        ctx.state.target_mail_domain = t.mail_domain or (target(ctx) .. ".sandbox.invalid")
        ctx.state.target_name = t.name or target(ctx)
        ctx.state.clone_time = ctx.state.clone_time or os.date("!%Y-%m-%dT%H:%M:%SZ")
        ctx.state.old_app_authorizations = with_admin(ctx, target_db(ctx).cluster, function(admin)
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
        ctx.state.maintenance_task = present(answer.task) and answer.task.id or nil
        if ctx.mode == "dry-run" then
          -- the PUT was only reported: entering maintenance from another mode starts a task
          ctx.state.maintenance_task_would = before ~= "offline_maintenance" or nil
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
    },

    step "wait_customer_task" {
      title = "Wait for customer task to complete",
      doc = "Waits for the task that entering maintenance started (sessions drained). Reads only.",
      run = function(ctx)
        local task = ctx.state.maintenance_task
        if not task and ctx.state.maintenance_task_would then
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
    },

    step "connect_old_clusters" {
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
    },

    step "remove_mail_routes" {
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
    },

    step "drop_database" {
      title = "Drop database",
      doc = "Not a drop: the old sandbox database is renamed aside to <target>_old_<run id> "
        .. "(its sessions ended first), so a failed clone can put it back; step 31 drops it "
        .. "once the clone succeeded. Undo: drop the new database, rename the old one back.",
      confirm = "Replace the sandbox database (it is renamed aside until the clone succeeds)?",
      run = function(ctx)
        local db, old = target_db(ctx), old_db_name(ctx)
        return with_admin(ctx, db.cluster, function(admin)
          if databases.exists(admin, db.name) then
            if databases.exists(admin, old) then
              ctx:fail(string.format("both %s and %s exist: look before resuming", db.name, old),
                { retryable = false })
            end
            databases.rename(admin, db.name, old)
            if ctx.mode == "run" then ctx:log("renamed database %s to %s", db.name, old) end
          elseif not databases.exists(admin, old) then
            ctx:log("no database %s: nothing to put aside", db.name)
            return { renamed_to = json.null }
          end
          ctx.state.old_database = old
          return { renamed_to = old }
        end)
      end,
      compensate = function(ctx, result)
        local db = target_db(ctx)
        with_admin(ctx, db.cluster, function(admin)
          databases.drop(admin, db.name)
          if present(result.renamed_to) and databases.exists(admin, result.renamed_to) then
            databases.rename(admin, result.renamed_to, db.name)
          end
        end)
      end,
      retry = SQL_RETRY,
    },

    step "create_database" {
      title = "Create customer database",
      doc = "Creates the empty target database (UTF8, from template0); an empty one left by "
        .. "an interrupted attempt is kept. Undo: drop it.",
      run = function(ctx)
        local db = target_db(ctx)
        return with_admin(ctx, db.cluster, function(admin)
          if databases.exists(admin, db.name) and ctx.mode == "dry-run" then
            -- in a real run step 5 has renamed it: what exists is the old sandbox
            databases.create(admin, db.name)
            return { created = true }
          elseif databases.exists(admin, db.name) then
            local relations = with_target(ctx, databases.user_relations)
            if relations > 0 then
              ctx:fail(string.format("database %s exists and is not empty (%d relations)", db.name,
                relations), { retryable = false })
            end
            return { created = false }
          end
          databases.create(admin, db.name)
          return { created = true }
        end)
      end,
      compensate = function(ctx)
        local db = target_db(ctx)
        with_admin(ctx, db.cluster, function(admin) databases.drop(admin, db.name) end)
      end,
      retry = SQL_RETRY,
    },

    step "create_sql_login" {
      title = "Create SQL login",
      doc = "SQL Server logins must be created in target database after replace. "
        .. "Ensures the application login <target>_app exists on the sandbox cluster (logins "
        .. "are cluster-wide and usually survive from the old sandbox). Undo: drop it if created.",
      run = function(ctx)
        local role = login_name(ctx, "app")
        local created = with_admin(ctx, target_db(ctx).cluster, function(admin)
          return databases.ensure_login(admin, role, login_password(ctx))
        end)
        return { role = role, created = created }
      end,
      compensate = function(ctx, result)
        if not result.created then return end
        with_admin(ctx, target_db(ctx).cluster, function(admin)
          if databases.exists(admin, target_db(ctx).name) then
            with_target(ctx, function(conn) databases.revoke(conn, target_db(ctx).name, result.role) end)
          end
          databases.drop_login(admin, result.role)
        end)
      end,
      retry = SQL_RETRY,
    },

    step "copy_database" {
      title = "Copy customer database from XXX to ZZZ",
      doc = "Copies schema and data from the source database to the new target database "
        .. "in one snapshot (sql.copy_database, 2 jobs, without the source's owners and "
        .. "grants), rewriting every email address in its stream (the rule of step 13, "
        .. "sandbox.rewrite in the config: whole, exclude, columns). Depending on source "
        .. "database size, this step might take long. Every attempt "
        .. "(a retry on connection loss, or a resume after a crash) starts again from a new "
        .. "empty database. Undo: step 6's drop.",
      run = function(ctx)
        local from, to = databases.dsn(ctx, source_db(ctx)), databases.dsn(ctx, target_db(ctx))
        if ctx.mode == "dry-run" then
          local size = sql.one(from, [[SELECT pg_size_pretty(pg_database_size(current_database())) AS size,
            (SELECT count(*) FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema')) AS tables]])
          ctx:tally(1, "databases", "replace", "replaced", string.format("(%s with a copy of %s: %d tables, %s)",
            target_db(ctx).name, source_db(ctx).name, size.tables, size.size))
          do
            local conn <close> = sql.connect(from)
            ctx:log("would rewrite the addresses in %d text-bearing columns in the copy stream (to @%s)",
              #rewriting.text_bearing(conn), addresses.normal_domain(ctx.params.mail_domain))
          end
          -- the later steps read the would-be copy: the source, on this snapshot
          sql.read_as(to, from)
          ctx:log("from here on this dry-run reads %s as %s (read-only, one snapshot)",
            target_db(ctx).name, source_db(ctx).name)
          return { dry_run = true, tables = size.tables }
        end
        -- Always start from a new empty database: a failed attempt, or an attempt cut
        -- short by a crash (resume runs the step again from attempt 1), may have left
        -- part of the copy, which sql.copy_database refuses. The database is this run's
        -- own (step 5 renamed the old sandbox away, step 6 made this one empty).
        -- After a kill -9 the dead engine's CREATE DATABASE may still be running on the
        -- server (it finishes unseen), so the new one can collide with it ("duplicate
        -- key ... pg_database"): wait a moment and drop again, a few times.
        local db = target_db(ctx)
        with_admin(ctx, db.cluster, function(admin)
          for i = 1, 5 do
            local ok, err = pcall(function()
              databases.drop(admin, db.name)
              databases.create(admin, db.name)
            end)
            if ok then break end
            if i == 5 or type(err) ~= "table" or err.kind ~= "sql" then error(err, 0) end
            ctx:warn("re-creating database %s: %s; again in 1 s", db.name, tostring(err.message))
            ctx:sleep(1)
          end
        end)
        local stats = sql.copy_database { from = from, to = to, jobs = 2, owner = false, privileges = false,
          rewrite = stream_rewrite(ctx) }
        ctx:tally(1, "databases", "replace", "replaced", string.format("(%s with a copy of %s: %d tables)",
          db.name, source_db(ctx).name, stats.tables))
        local rewritten = stats.rewrite or { columns = {}, values = 0, changed = {} }
        -- for step 13's report: what the stream covered and rewrote, per column
        ctx.state.stream_rewrite = { columns = #rewritten.columns, values = rewritten.values,
          changed = json.object(rewritten.changed or {}) }
        return { tables = stats.tables, rows = stats.rows, bytes = stats.bytes,
          seconds = stats.seconds, rewritten_columns = #rewritten.columns, rewritten_values = rewritten.values }
      end,
      retry = SQL_RETRY_LONG,
      timeout = 6 * 3600,
    },

    step "prepare_database" {
      title = "Prepare cloned database for target customer",
      doc = "Makes the cluster's admin the owner, comments the database with its origin "
        .. "and refreshes statistics. Undo: none needed (the database goes with step 6's undo).",
      run = function(ctx)
        local db = target_db(ctx)
        local comment = string.format("production sandbox of %s, cloned %s by run %s",
          source(ctx), ctx.state.clone_time or "?", ctx.run_id)
        with_admin(ctx, db.cluster, function(admin)
          admin:exec("ALTER DATABASE " .. sql.ident(db.name) .. " OWNER TO CURRENT_USER")
          admin:exec("COMMENT ON DATABASE " .. sql.ident(db.name) .. " IS " .. sql.literal(comment))
        end)
        with_target(ctx, function(conn) conn:exec("ANALYZE") end)
        return { comment = comment }
      end,
      retry = SQL_RETRY,
      timeout = 1800,
    },

    step "grant_app_login" {
      title = "Create SQL login",
      doc = "Gives the application login <target>_app read/write access to the new "
        .. "database (connect, schema, tables, sequences). Undo: revoke.",
      run = function(ctx)
        local role = login_name(ctx, "app")
        with_target(ctx, function(conn) databases.grant(conn, target_db(ctx).name, role, "write") end)
        return { role = role }
      end,
      compensate = function(ctx, result)
        with_admin(ctx, target_db(ctx).cluster, function(admin)
          if databases.exists(admin, target_db(ctx).name) then
            with_target(ctx, function(conn) databases.revoke(conn, target_db(ctx).name, result.role) end)
          end
        end)
      end,
      retry = SQL_RETRY,
    },

    step "disable_scheduled_tasks" {
      title = "Disable scheduled tasks",
      doc = "Any scheduled tasks that have been active on the source will by default be set "
        .. "to disabled. One UPDATE; its result lists the ids. Undo: enable those ids again.",
      run = function(ctx)
        local ids = with_target(ctx, function(conn)
          local rows = databases.change(ctx, conn, "SELECT id FROM scheduled_task WHERE enabled",
            "UPDATE scheduled_task SET enabled = false WHERE enabled RETURNING id")
          local ids = {}
          for i, r in ipairs(rows) do ids[i] = r.id end
          table.sort(ids)
          return ids
        end)
        ctx:tally(#ids, "scheduled tasks", "disable", "disabled")
        return { ids = array(ids) }
      end,
      compensate = function(ctx, result)
        with_target(ctx, function(conn)
          conn:exec("UPDATE scheduled_task SET enabled = true WHERE id = ANY($1::int[])",
            databases.array(result.ids))
        end)
      end,
      retry = SQL_RETRY,
    },

    step "fix_system_users" {
      title = "Fix system users",
      doc = "System users must be created in the target database after replace: ensures "
        .. "the system's own users (system, batch, webapi, replication) and unlinks them "
        .. "from the source's people. Undo: delete the inserted ones, relink the others.",
      run = function(ctx)
        return with_target(ctx, function(conn)
          return conn:tx(function()
            local inserted = databases.change(ctx, conn, [[SELECT v.name
              FROM (VALUES ('system'), ('batch'), ('webapi'), ('replication')) v(name)
              WHERE NOT EXISTS (SELECT 1 FROM system_user s WHERE s.name = v.name)]],
              [[INSERT INTO system_user (name, kind)
              VALUES ('system', 'system'), ('batch', 'system'), ('webapi', 'system'), ('replication', 'system')
              ON CONFLICT (name) DO NOTHING RETURNING name]])
            local unlinked = databases.change(ctx, conn, [[SELECT id, associate_id FROM system_user
              WHERE kind = 'system' AND associate_id IS NOT NULL]],
              [[UPDATE system_user s SET associate_id = NULL
              FROM (SELECT id, associate_id FROM system_user WHERE kind = 'system'
                    AND associate_id IS NOT NULL FOR UPDATE) old
              WHERE s.id = old.id RETURNING s.id, old.associate_id]])
            local names = {}
            for i, r in ipairs(inserted) do names[i] = r.name end
            ctx:tally(#names, "system users", "create", "created")
            ctx:tally(#unlinked, "system users", "unlink", "unlinked", "from the source's people")
            return { inserted = array(names), unlinked = array(unlinked) }
          end)
        end)
      end,
      compensate = function(ctx, result)
        with_target(ctx, function(conn)
          conn:tx(function()
            conn:exec("DELETE FROM system_user WHERE name = ANY($1::text[])", databases.array(result.inserted))
            for _, r in ipairs(result.unlinked) do
              conn:exec("UPDATE system_user SET associate_id = $2 WHERE id = $1", r.id, r.associate_id)
            end
          end)
        end)
      end,
      retry = SQL_RETRY,
    },

    step "rewrite_email_addresses" {
      title = "Replacing all personal email domains with '@mailinator.com'",
      doc = "All email addresses in the source database will be replaced in the production "
        .. "sandbox. Default john.doe@company.com will be changed to "
        .. "john.doe_company.com@mailinator.com, mailinator.com may be changed in the cloning "
        .. "wizard (param mail_domain). Step 8 rewrote them in its copy stream (whole-value "
        .. "for address columns, every address inside free text otherwise; exactly "
        .. "mail.sandbox_address); this step proves it: a read-only scan of every text-bearing "
        .. "column of every table (text, varchar, char, citext, domains, arrays, json, jsonb, "
        .. "composites, read by binary COPY and checked in C), sandbox.rewrite_workers tables at once (default 2), and "
        .. "an in-place rewrite of only what the stream did not cover, reporting both counts. "
        .. "Idempotent, so a retry or resume finishes it. Undo: none in place (one-way; the "
        .. "database goes with step 6's undo).",
      run = function(ctx)
        local domain = ctx.params.mail_domain
        local db = target_db(ctx)
        if ctx.mode == "dry-run" then return count_would_rewrite(ctx, db, domain) end
        return with_target(ctx, function(conn) return prove_sandbox(ctx, conn, db, domain) end)
      end,
      retry = SQL_RETRY_LONG,
      timeout = 3 * 3600,
    },

    step "register_superid" {
      title = "Register customer in SuperID",
      doc = "Registers the target as a sandbox customer in SuperID, in the source's test "
        .. "environment. Undo: the previous registration, or unregister when there was none.",
      run = function(ctx)
        local answer = superid.client(ctx):register(target(ctx), {
          name = ctx.state.target_name or target(ctx), kind = "sandbox",
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
    },

    step "replace_test_environment" {
      title = "Replace test environment in SuperID",
      doc = "Points the source's test environment at the target, with this clone's time. "
        .. "Undo: SuperID restores the replaced version (or deletes a new one).",
      run = function(ctx)
        local env = source(ctx) .. "-test"
        local answer = superid.client(ctx):replace_environment(env, { customer = source(ctx),
          kind = "test", tenant = target(ctx), source = source(ctx), cloned_at = ctx.state.clone_time })
        return { environment = env, previous = answer.previous or json.null }
      end,
      compensate = function(ctx, result)
        local sid = superid.client(ctx, true)
        if present(result.previous) then sid:restore_environment(result.environment)
        else sid:delete_environment(result.environment) end
      end,
    },

    step "clone_templates" {
      title = "Clone Azure templates from CUST on ARCHIVEServer",
      doc = "Copy templates from source to target: mirrors the source's template container "
        .. "into the target's. Undo: put the previous container back.",
      run = mirror_container("templates"),
      compensate = restore_container("templates"),
    },

    step "provision_mail_service" {
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
        local had_test = set_of(folders:names())[test_mailbox(ctx)] == true
        local ok, result = pcall(provision_mail_service, ctx, folders, had_test)
        if not ok then
          undo_attempt(ctx, folders, had_test)
          error(result, 0)
        end
        return result
      end,
      compensate = function(ctx, result)
        if result == nil then
          -- an attempt cut short (the engine killed or interrupted, then the
          -- run rolled back): what it held is read from the mail server
          release_service_folders(ctx, mailboxes.service(ctx, target(ctx)))
          return
        end
        if present(result.route) then tenants.client(ctx, true):purge_mail_route(target(ctx), result.route) end
        restore_service_folders(ctx, mailboxes.service(ctx, target(ctx)), result.created_test,
          result.held_folders)
      end,
      undo_partial = true,
    },

    step "grant_query_login" {
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
    },

    step "recycle_customer" {
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
    },

    step "change_serial_number" {
      title = "Change serial number to TEST NAME/ SERIALNUMBER",
      doc = "We need to change the serial number and owner company to match that of the "
        .. "test tenant. License information. Takes both from the target tenant's license "
        .. "on the control plane. Undo: the copied values back.",
      run = function(ctx)
        local lic = tenants.client(ctx):license(target(ctx))
        local serial, owner = lic.serial_number or "TEST", lic.owner_company or "TEST"
        ctx.state.test_license = { serial_number = serial, owner_company = owner }
        return with_target(ctx, function(conn)
          return conn:tx(function()
            local before = ctx.state.license_before
              or conn:query("SELECT id, serial_number, owner_company FROM license ORDER BY id" .. for_update(ctx))
            ctx.state.license_before = before
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
    },

    step "superid_in_migration" {
      title = "Set SuperId Tenant State to: In migration",
      doc = "Also notes who holds plans on the sandbox now, for step 22. Undo: the previous state.",
      run = function(ctx)
        local sid = superid.client(ctx)
        -- Step 22 withdraws these plans. Noted here, in a completed step's
        -- state, so that a re-run of step 22 after a crash sends the very
        -- same request under its idempotency key.
        local holders = {}
        for user in pairs(sid:plans(target(ctx))) do holders[#holders + 1] = user end
        table.sort(holders)
        ctx.state.plan_holders = array(holders)
        local answer = sid:set_state(target(ctx), "In migration")
        return { previous = answer.previous or json.null }
      end,
      compensate = function(ctx, result)
        if present(result.previous) then superid.client(ctx, true):set_state(target(ctx), result.previous) end
      end,
    },

    step "assign_user_plans" {
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
        -- From step 21's note, not a fresh read: after a crash the plans read
        -- now may already be this step's own, and the request must not change.
        local holders = ctx.state.plan_holders
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
    },

    step "sync_superid_users" {
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
    },

    step "superid_normal" {
      title = "Set SuperID tenant state to: Normal",
      doc = "Undo: the previous state (In migration).",
      run = function(ctx)
        local answer = superid.client(ctx):set_state(target(ctx), "Normal")
        return { previous = answer.previous or json.null }
      end,
      compensate = function(ctx, result)
        if present(result.previous) then superid.client(ctx, true):set_state(target(ctx), result.previous) end
      end,
    },

    step "create_partner_system_users" {
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
            for _, a in ipairs(ctx.state.old_app_authorizations or {}) do
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
            -- step 29 notifies the apps authorized then: in a dry-run these are not there
            if ctx.mode == "dry-run" then ctx.state.would_authorize = array(new_apps) end
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
    },

    step "update_company_license" {
      title = "Update company info and license",
      doc = "The sandbox's own company takes the test name (step 20's owner company); on the "
        .. "control plane the target's license takes the source's edition and modules with "
        .. "the test serial, owner and seats, and its company record the source's details "
        .. "with the test name. Undo: the previous records and name.",
      run = function(ctx)
        local cp = tenants.client(ctx)
        local test = ctx.state.test_license or {}
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
            local before = ctx.state.own_company_before
              or conn:query("SELECT id, name FROM company WHERE is_own ORDER BY id" .. for_update(ctx))
            ctx.state.own_company_before = before
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
    },

    parallel "clone_ejpackages" {
      title = "Clone EjPackages (Azure and SoArc at once)",
      step "clone_ejpackages_azure" {
        title = "Clone EjPackages in Azure from CustID",
        doc = "Mirrors the source's EjPackages container in Azure storage into the target's. "
          .. "Undo: the previous container.",
        run = mirror_container("ejpackages"),
        compensate = restore_container("ejpackages"),
      },
      step "clone_ejpackages_soarc" {
        title = "Clone EjPackages in SoArc from CustID",
        doc = "Mirrors the source's packages on the SoArc archive server into the target's. "
          .. "Undo: the previous packages.",
        run = mirror_container("soarc"),
        compensate = restore_container("soarc"),
      },
    },

    step "notify_apps" {
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
    },

    step "enter_running_mode" {
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
    },

    step "wait_iis_operations" {
      title = "Wait for customers IIS ApplicationHost.config operations to complete",
      doc = "Waits until the target has no IIS operation running. Then, the clone being done, "
        .. "drops the old sandbox database step 5 put aside and deletes the old Service "
        .. "folders step 17 held under Held/<target>/<run id>/ (a failure of either is a "
        .. "warning saying what to remove by hand, never a reason to undo the clone).",
      run = function(ctx)
        local ops = iis.client(ctx)
        ctx:wait_until(function() return ops:active(target(ctx)) == 0 end,
          { timeout = 1800, interval = poll_interval(ctx), what = "IIS operations" })
        local old = ctx.state.old_database
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
    },
  },
}
