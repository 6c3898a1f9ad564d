-- databases.lua: where a tenant's database lives and the cluster-level
-- operations of a clone (rename aside, create, drop, logins), on wf.sql.
-- A tenant record names {cluster, name}; ctx.config.clusters.<cluster>.dsn
-- says how to reach that cluster (its own dbname is the maintenance db).
-- Writes go through exec, so dry-run reports them instead of running them.
local sql = require "wf.sql"

local databases = {}

local function cluster_dsn(ctx, cluster)
  local clusters = ctx.config.clusters
  local conf = clusters and clusters[cluster]
  if (type(conf) ~= "table" or type(conf.dsn) ~= "string") and ctx.mode == "simulate" then
    return "host=simulated.invalid dbname=postgres" -- no config needed to rehearse
  elseif type(conf) ~= "table" or type(conf.dsn) ~= "string" then
    ctx:fail(string.format("config: clusters.%s.dsn is missing", tostring(cluster)),
      { retryable = false })
  end
  return conf.dsn, conf.sslmode
end

-- Server notices are turned off: wf.sql logs a notice with the format
-- "%.*s", which the engine's log formatter refuses ("invalid option '%.'"),
-- failing the statement that caused it (e.g. DROP DATABASE IF EXISTS of a
-- missing database). Errors still arrive as errors.
local QUIET = "-c client_min_messages=error"

-- dsn(ctx, {cluster=, name=}) -> a DSN table for sql.connect
-- clusters.<cluster>.sslmode, when given, wins over the DSN's (verify-full
-- is the one to use across a network: docs/operations.md).
function databases.dsn(ctx, db)
  local dsn, sslmode = cluster_dsn(ctx, db.cluster)
  return { dsn = dsn, sslmode = sslmode, dbname = db.name, options = QUIET }
end

-- connect(ctx, db) -> conn to the tenant's database
function databases.connect(ctx, db)
  return sql.connect(databases.dsn(ctx, db))
end

-- admin(ctx, cluster) -> conn to the cluster's maintenance database
function databases.admin(ctx, cluster)
  local dsn, sslmode = cluster_dsn(ctx, cluster)
  return sql.connect({ dsn = dsn, sslmode = sslmode, options = QUIET })
end

function databases.exists(conn, name)
  return conn:scalar("SELECT 1 FROM pg_database WHERE datname = $1", name) ~= nil
end

-- Ends the other sessions of a database (a rename or drop needs none).
function databases.disconnect(conn, name)
  conn:exec("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
    .. " WHERE datname = $1 AND pid <> pg_backend_pid()", name)
end

function databases.rename(conn, from, to)
  databases.disconnect(conn, from)
  conn:exec(string.format("ALTER DATABASE %s RENAME TO %s", sql.ident(from), sql.ident(to)))
end

function databases.drop(conn, name)
  conn:exec("DROP DATABASE IF EXISTS " .. sql.ident(name) .. " WITH (FORCE)")
end

function databases.create(conn, name)
  conn:exec("CREATE DATABASE " .. sql.ident(name) .. " TEMPLATE template0 ENCODING 'UTF8'")
end

-- user_relations(conn) -> how many tables, views, sequences the database holds
function databases.user_relations(conn)
  return conn:scalar([[SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_']]) or 0
end

function databases.role_exists(conn, role)
  return conn:scalar("SELECT 1 FROM pg_roles WHERE rolname = $1", role) ~= nil
end

-- ensure_login(conn, role, password) -> true when it had to be created.
-- The server gets the SCRAM verifier computed here, never the password: a
-- statement log (log_statement = all) or pg_stat_activity would show it.
function databases.ensure_login(conn, role, password)
  if databases.role_exists(conn, role) then return false end
  local verifier = conn:encrypt_password(password, role)
  conn:exec(string.format("CREATE ROLE %s LOGIN PASSWORD %s", sql.ident(role), sql.literal(verifier)))
  return true
end

function databases.drop_login(conn, role)
  conn:exec("DROP ROLE IF EXISTS " .. sql.ident(role))
end

-- grant(conn, db, role, "read" | "write"): connect, schema usage, tables, sequences
function databases.grant(conn, db, role, access)
  local r = sql.ident(role)
  conn:exec(string.format("GRANT CONNECT ON DATABASE %s TO %s", sql.ident(db), r))
  conn:exec("GRANT USAGE ON SCHEMA public TO " .. r)
  if access == "write" then
    conn:exec("GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO " .. r)
    conn:exec("GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO " .. r)
  else
    conn:exec("GRANT SELECT ON ALL TABLES IN SCHEMA public TO " .. r)
  end
end

-- revoke(conn, db, role): the undo of grant
function databases.revoke(conn, db, role)
  local r = sql.ident(role)
  conn:exec("REVOKE ALL ON ALL TABLES IN SCHEMA public FROM " .. r)
  conn:exec("REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM " .. r)
  conn:exec("REVOKE ALL ON SCHEMA public FROM " .. r)
  conn:exec(string.format("REVOKE ALL ON DATABASE %s FROM %s", sql.ident(db), r))
end

-- write(ctx, conn, q, ...) -> rows of a statement that changes and returns
-- rows; in dry-run it is reported (exec) and answers no rows.
function databases.write(ctx, conn, q, ...)
  if ctx.mode == "dry-run" then
    conn:exec(q, ...)
    return {}
  end
  return conn:query(q, ...)
end

-- change(ctx, conn, preview, q, ...) -> rows of a statement that changes
-- and returns rows. In a dry-run q is reported (exec) and `preview` answers
-- with the rows q would return: a SELECT (run with the same parameters) or
-- function(conn) -> rows. So the dry-run's counts are the run's.
function databases.change(ctx, conn, preview, q, ...)
  if ctx.mode ~= "dry-run" then return conn:query(q, ...) end
  conn:exec(q, ...)
  if type(preview) == "function" then return preview(conn) end
  return conn:query(preview, ...)
end

-- A PostgreSQL array literal of integers or plain words, for $n::int[] / $n::text[].
function databases.array(list)
  local items = {}
  for i, v in ipairs(list or {}) do
    items[i] = math.type(v) == "integer" and tostring(v)
      or '"' .. tostring(v):gsub('[\\"]', "\\%0") .. '"'
  end
  return "{" .. table.concat(items, ",") .. "}"
end

return databases
