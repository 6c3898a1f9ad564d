-- database.lua: the clone's database steps, drop_database to
-- rewrite_email_addresses: the old sandbox database put aside, the new one
-- created and copied from the source with every address rewritten in the
-- copy stream, prepared, its logins, scheduled tasks and system users fixed,
-- and the rewrite proven (clone_sandbox.lua lists every step, in order).
local wf = require "wf"
local sql = require "wf.sql"
local json = require "wf.json"
local rewriting = require "wf.sql_rewrite"
local databases = require "lib.databases"
local addresses = require "lib.addresses"
local common = require "clone_sandbox.common"
local state = require("clone_sandbox.state_keys").state

local present = common.present
local target = common.target
local source = common.source
local target_db = common.target_db
local source_db = common.source_db
local sandbox_conf = common.sandbox_conf
local login_name = common.login_name
local login_password = common.login_password
local with_target = common.with_target
local with_admin = common.with_admin
local array = common.array
local SQL_RETRY = common.SQL_RETRY
local SQL_RETRY_LONG = common.SQL_RETRY_LONG

local M = {}

-- Columns that hold one address each though their names lack "email":
-- rewritten whole (mail.sandbox_address), like the *email* columns.
local WHOLE_ADDRESS_COLUMNS = { "document.sent_to", "mailbox.address", "mail_route.address" }

-- copy_database's rewrite option (sql.copy_database): every text-bearing column,
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

-- The name drop_database gives the old sandbox database: <target>_old_<run id>.
local function old_db_name(ctx)
  return (target(ctx) .. "_old_" .. ctx.run_id:lower():gsub("[^a-z0-9]", "_")):sub(1, 63)
end

-- rewrite_email_addresses after the copy rewrote the addresses in its stream (copy_database): a
-- read-only scan of every text-bearing column of every table (each read by
-- a binary COPY and checked in C by the stream's own free-text rule:
-- arrays, json, composites included), rewrite_workers tables at once
-- (default 2), for any address outside the sandbox domain; what it
-- finds (a column the stream did not cover: added after the copy started, a
-- type it does not walk, a column `exclude`d from the stream; a whole-address
-- value holding several addresses no longer: the stream's address rule
-- rewrites them all) is rewritten in place by the free-text rule, then
-- scanned again, which
-- must find nothing. It counts what the sandbox got rewritten: copy_database's
-- stream (state(ctx).stream_rewrite) plus in place, per column.
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
  local streamed = state(ctx).stream_rewrite or {}
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

-- rewrite_email_addresses in a dry-run: what copy_database's stream would rewrite in the would-be
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


M.drop_database = wf.step "drop_database" {
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
      state(ctx).old_database = old
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
}

M.create_database = wf.step "create_database" {
  title = "Create customer database",
  doc = "Creates the empty target database (UTF8, from template0); an empty one left by "
    .. "an interrupted attempt is kept. Undo: drop it.",
  run = function(ctx)
    local db = target_db(ctx)
    return with_admin(ctx, db.cluster, function(admin)
      if databases.exists(admin, db.name) and ctx.mode == "dry-run" then
        -- in a real run drop_database has renamed it: what exists is the old sandbox
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
}

M.create_sql_login = wf.step "create_sql_login" {
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
}

M.copy_database = wf.step "copy_database" {
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
    -- own (drop_database renamed the old sandbox away, create_database made this one empty).
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
    -- for rewrite_email_addresses's report: what the stream covered and rewrote, per column
    state(ctx).stream_rewrite = { columns = #rewritten.columns, values = rewritten.values,
      changed = json.object(rewritten.changed or {}) }
    -- a CHECK no sandbox address satisfies is NOT VALID in the sandbox (docs/modules.md, the
    -- check rule): copy_database warns with one line; the result names each
    return { tables = stats.tables, rows = stats.rows, bytes = stats.bytes,
      seconds = stats.seconds, rewritten_columns = #rewritten.columns, rewritten_values = rewritten.values,
      unchecked_constraints = rewritten.unchecked and #rewritten.unchecked > 0 and rewritten.unchecked or nil }
  end,
  retry = SQL_RETRY_LONG,
  timeout = 6 * 3600,
}

M.prepare_database = wf.step "prepare_database" {
  title = "Prepare cloned database for target customer",
  doc = "Makes the cluster's admin the owner, comments the database with its origin "
    .. "and refreshes statistics. Undo: none needed (the database goes with step 6's undo).",
  run = function(ctx)
    local db = target_db(ctx)
    local comment = string.format("production sandbox of %s, cloned %s by run %s",
      source(ctx), state(ctx).clone_time or "?", ctx.run_id)
    with_admin(ctx, db.cluster, function(admin)
      admin:exec("ALTER DATABASE " .. sql.ident(db.name) .. " OWNER TO CURRENT_USER")
      admin:exec("COMMENT ON DATABASE " .. sql.ident(db.name) .. " IS " .. sql.literal(comment))
    end)
    with_target(ctx, function(conn) conn:exec("ANALYZE") end)
    return { comment = comment }
  end,
  retry = SQL_RETRY,
  timeout = 1800,
}

M.grant_app_login = wf.step "grant_app_login" {
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
}

M.disable_scheduled_tasks = wf.step "disable_scheduled_tasks" {
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
}

M.fix_system_users = wf.step "fix_system_users" {
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
}

M.rewrite_email_addresses = wf.step "rewrite_email_addresses" {
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
}

return M
