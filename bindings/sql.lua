-- sql.lua: module "wf.sql", the friendly side of the PostgreSQL binding.
-- The C primitives live in bindings/sql.c ("wf.sql.core": connections and
-- queries through the engine loop) and bindings/sql_copy.c ("wf.sql.copy":
-- the streaming COPY pool and pg_dump pipelines). Here: DSNs from tables,
-- transactions, quoting, one-shot shorthands and the copy_database
-- orchestration (snapshot, schema, data, indexes, constraints, sequences).
local core = require "wf.sql.core"
local copy = require "wf.sql.copy"
local rewriting = require "wf.sql_rewrite"
local checks = require "wf.sql_checks"

local sql = {}
local methods = core.conn_methods

local function raise(code, message, fields, retryable)
  core.sql_error(code, message, fields, retryable)
end

-- ---- connection strings ---------------------------------------------------

local aliases = { database = "dbname", db = "dbname", username = "user", pass = "password" }

local function quote_conninfo(value)
  value = tostring(value)
  if value ~= "" and not value:find("[%s'\\]") then return value end
  return "'" .. value:gsub("\\", "\\\\"):gsub("'", "\\'") .. "'"
end

-- {keyword = value} -> "k=v k='v v'", sorted so it is stable; `skip` names
-- keywords to leave out (the password, for command lines).
local function conninfo_string(options, skip)
  local keys = {}
  for k in pairs(options) do
    if not (skip and skip[k]) then keys[#keys + 1] = k end
  end
  table.sort(keys)
  local parts = {}
  for _, k in ipairs(keys) do parts[#parts + 1] = k .. "=" .. quote_conninfo(options[k]) end
  return table.concat(parts, " ")
end

-- A DSN string or a table ({host=, port=, dbname=, user=, password=, dsn=,
-- ...}) -> the options table; raises on a malformed DSN.
local function parse_target(target)
  local options = {}
  if type(target) == "table" then
    if target.dsn or target.url then
      local base, err = core.conninfo(target.dsn or target.url)
      if not base then raise("08001", "invalid connection string: " .. err, nil, false) end
      options = base
    end
    for k, v in pairs(target) do
      if k ~= "dsn" and k ~= "url" then options[aliases[k] or k] = tostring(v) end
    end
  elseif type(target) == "string" then
    local parsed, err = core.conninfo(target)
    if not parsed then raise("08001", "invalid connection string: " .. err, nil, false) end
    options = parsed
  else
    error("bad argument #1 to 'connect' (DSN string or table expected, got " .. type(target) .. ")",
      3)
  end
  if options.application_name == nil then options.application_name = "wfengine" end
  return options
end

-- ---- TLS ------------------------------------------------------------------

-- 127.0.0.0/8, ::1, localhost, a Unix socket directory ("/..." or "@...")
-- and the default socket (no host): the traffic never leaves the machine.
local function is_local(host)
  host = host:lower()
  if host == "" or host:find("^[/@]") or host == "localhost" or host == "::1" then return true end
  local b, c, d = host:match("^127%.(%d+)%.(%d+)%.(%d+)$")
  return b ~= nil and tonumber(b) <= 255 and tonumber(c) <= 255 and tonumber(d) <= 255
end

-- sslmodes that do not refuse a connection in clear (prefer, libpq's
-- default, falls back to it, and a man in the middle can make it).
local CLEAR_SSLMODES = { disable = true, allow = true, prefer = true }
local warned_hosts = {}

-- Warns once per process and host when a connection to a host that is not
-- local may run without TLS: the password and every row cross in clear.
local function warn_without_tls(options)
  local sslmode = options.sslmode or os.getenv("PGSSLMODE") or "prefer"
  if not CLEAR_SSLMODES[sslmode] or core.mode() == "simulate" then return end
  -- hostaddr, when given, is where libpq connects; host then only names it.
  local hosts = options.hostaddr or os.getenv("PGHOSTADDR") or options.host or os.getenv("PGHOST") or ""
  for host in (hosts .. ","):gmatch("([^,]*),") do
    if not is_local(host) and not warned_hosts[host] then
      warned_hosts[host] = true
      core.log("warn", string.format("sql: the connection to %s does not require TLS (sslmode=%s), "
        .. "so the password and the data may cross the network in clear: set sslmode=verify-full "
        .. "(docs/operations.md)", host, sslmode))
    end
  end
end

-- ---- dry-run: a database that reads as another --------------------------

-- In a dry-run, sql.read_as(target, source) makes every later connection to
-- the target database (same host, port and dbname) a read-only connection to
-- the source database instead, inside one REPEATABLE READ transaction on a
-- snapshot taken when read_as is called: the world a copy of the source
-- made at that moment would show. Keyed by host, port and dbname.
local read_as = {}

local function database_key(options)
  return table.concat({ options.host or options.hostaddr or "", options.port or "",
    options.dbname or "" }, "|")
end

local function open(options)
  warn_without_tls(options)
  return core.connect(conninfo_string(options))
end

--- sql.read_as(target, source) -> true in a dry-run (false otherwise: a
--- run or a simulation connects where it is told).
function sql.read_as(target, source)
  if core.mode() ~= "dry-run" then return false end
  local from = parse_target(source)
  local holder = open(from)
  holder:_run("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
  local snapshot = holder:scalar("SELECT pg_export_snapshot()")
  local key = database_key(parse_target(target))
  -- the holder keeps the snapshot alive until the dry-run ends
  read_as[key] = { options = from, snapshot = snapshot, holder = holder }
  return true
end

--- sql.connect(dsn_or_table) -> conn
function sql.connect(target)
  local options = parse_target(target)
  local alias = core.mode() == "dry-run" and read_as[database_key(options)]
  if not alias then return open(options) end
  local conn = open(alias.options)
  conn:_run("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
  conn:_run("SET TRANSACTION SNAPSHOT " .. sql.literal(alias.snapshot))
  return conn
end

--- Forgets every sql.read_as (the engine, between two runs in one process).
function sql._forget_read_as()
  for key, alias in pairs(read_as) do
    pcall(alias.holder.close, alias.holder)
    read_as[key] = nil
  end
end

-- ---- transactions ---------------------------------------------------------

local savepoints = 0

--- conn:tx(fn, ...) -> fn's results. BEGIN, then COMMIT when fn returns or
--- ROLLBACK when it raises (the error goes on). Inside a transaction it
--- nests with a savepoint.
function methods:tx(fn, ...)
  local status = self:_status()
  if status == "simulate" then return fn(self, ...) end
  local nested = status == "transaction" or status == "failed"
  local savepoint
  if nested then
    savepoints = savepoints + 1
    savepoint = "wf_tx_" .. savepoints
    self:_run("SAVEPOINT " .. savepoint)
  else
    self:_run("BEGIN")
  end
  local results = table.pack(pcall(fn, self, ...))
  if results[1] then
    if nested then
      self:_run("RELEASE SAVEPOINT " .. savepoint)
    elseif self:_run("COMMIT") == "ROLLBACK" then
      raise("25P02", "transaction rolled back: a statement in it failed and was caught", nil, false)
    end
    return table.unpack(results, 2, results.n)
  end
  if self:_status() == "transaction" or self:_status() == "failed" then
    pcall(self._run, self, nested and ("ROLLBACK TO SAVEPOINT " .. savepoint) or "ROLLBACK")
    if nested then pcall(self._run, self, "RELEASE SAVEPOINT " .. savepoint) end
  end
  error(results[2], 0)
end

-- ---- quoting ----------------------------------------------------------------

--- sql.ident("schema", "table") -> "schema"."table"
function sql.ident(...)
  local n = select("#", ...)
  if n == 0 then error("bad argument #1 to 'ident' (string expected, got no value)", 2) end
  local parts = {}
  for i = 1, n do
    local name = select(i, ...)
    if type(name) ~= "string" then
      error(string.format("bad argument #%d to 'ident' (string expected, got %s)", i, type(name)), 2)
    end
    if name == "" or name:find("\0", 1, true) then
      error(string.format("bad argument #%d to 'ident' (empty or NUL in identifier)", i), 2)
    end
    parts[i] = '"' .. name:gsub('"', '""') .. '"'
  end
  return table.concat(parts, ".")
end

--- sql.bytea(bytes) marks a Lua string as binary data for a parameter.
function sql.bytea(bytes)
  if type(bytes) ~= "string" then
    error("bad argument #1 to 'bytea' (string expected, got " .. type(bytes) .. ")", 2)
  end
  return setmetatable({ bytes }, core.bytea_meta)
end

--- sql.literal(value) -> SQL text for value (prefer $n parameters).
function sql.literal(value)
  local t = type(value)
  if value == nil then return "NULL" end
  if t == "boolean" then return value and "TRUE" or "FALSE" end
  if t == "number" then
    if math.type(value) == "integer" then return tostring(value) end
    if value ~= value then return "'NaN'::float8" end
    if value == math.huge then return "'Infinity'::float8" end
    if value == -math.huge then return "'-Infinity'::float8" end
    return string.format("%.17g", value)
  end
  if t == "table" and getmetatable(value) == core.bytea_meta then
    return "'\\x" .. value[1]:gsub(".", function(c) return string.format("%02x", c:byte()) end)
        .. "'::bytea"
  end
  if t ~= "string" then
    error("bad argument #1 to 'literal' (cannot quote a " .. t .. ")", 2)
  end
  if value:find("\0", 1, true) then
    error("bad argument #1 to 'literal' (NUL byte in string; use sql.bytea)", 2)
  end
  local quoted = value:gsub("'", "''")
  if value:find("\\", 1, true) then
    -- E'' so the text means the same whatever standard_conforming_strings says
    return "E'" .. quoted:gsub("\\", "\\\\") .. "'"
  end
  return "'" .. quoted .. "'"
end

-- ---- one-shot shorthands ------------------------------------------------------

--- sql.with(dsn, fn) -> fn(conn)'s results; the connection is closed after.
function sql.with(target, fn)
  local conn <close> = sql.connect(target)
  return fn(conn)
end

for _, name in ipairs { "query", "one", "scalar", "exec" } do
  sql[name] = function(target, q, ...)
    local conn <close> = sql.connect(target)
    return conn[name](conn, q, ...)
  end
end

-- ---- copy_database ----------------------------------------------------------

local function log(level, fmt, ...)
  core.log(level, string.format(fmt, ...))
end

local function human_bytes(n)
  local units = { "B", "kB", "MB", "GB", "TB" }
  local i = 1
  while n >= 1024 and i < #units do n, i = n / 1024, i + 1 end
  return string.format(i == 1 and "%d %s" or "%.1f %s", n, units[i])
end

-- Runs fn; an error gets the phase named in its message.
local function in_phase(phase, fn, ...)
  local results = table.pack(pcall(fn, ...))
  if results[1] then return table.unpack(results, 2, results.n) end
  local err = results[2]
  if type(err) == "table" then
    if not err.phase then
      err.phase = phase
      err.message = "copy_database, phase " .. phase .. ": " .. tostring(err.message)
    end
    error(err, 0)
  end
  raise(nil, "copy_database, phase " .. phase .. ": " .. tostring(err), { phase = phase }, false)
end

local SYSTEM_SCHEMAS = [[n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname !~ '^pg_toast' AND n.nspname !~ '^pg_temp']]

local function not_extension_member(class, column)
  return string.format([[NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = '%s'::regclass
    AND d.objid = %s AND d.deptype = 'e')]], class, column)
end

local EMPTY_SQL = [[
SELECT
  (SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE ]] .. SYSTEM_SCHEMAS .. [[) AS relations,
  (SELECT count(*) FROM pg_namespace n WHERE ]] .. SYSTEM_SCHEMAS .. [[
    AND n.nspname <> 'public') AS schemas,
  (SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
    WHERE ]] .. SYSTEM_SCHEMAS .. [[) AS functions,
  (SELECT count(*) FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
    WHERE ]] .. SYSTEM_SCHEMAS .. [[) AS types,
  (SELECT count(*) FROM pg_extension WHERE extname <> 'plpgsql') AS extensions,
  (SELECT pg_encoding_to_char(encoding) FROM pg_database
    WHERE datname = current_database()) AS encoding,
  current_database() AS name]]

local TABLES_SQL = [[
SELECT c.oid, n.nspname AS schema, c.relname AS name,
  format('%I.%I', n.nspname, c.relname) AS qualified,
  pg_table_size(c.oid) AS bytes, greatest(c.reltuples, 0)::bigint AS estimated_rows,
  pg_relation_size(c.oid) / current_setting('block_size')::bigint AS blocks,
  (SELECT string_agg(quote_ident(a.attname), ', ' ORDER BY a.attnum) FROM pg_attribute a
    WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
      AND a.attgenerated = '') AS columns
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind = 'r' AND ]] .. SYSTEM_SCHEMAS .. " AND " .. not_extension_member("pg_class", "c.oid")
    .. [[ ORDER BY bytes DESC, c.oid]]

-- The indexes and keys of plain tables, by the catalog ID (class and object
-- OIDs) that pg_dump gives their archive entries, with the table each
-- belongs to. For a primary key or unique constraint that is not
-- deferrable, also the statement pg_dump writes for it when that is all its
-- entry holds (no CLUSTER ON or REPLICA IDENTITY after it), and the two
-- statements that build it instead: the unique index on its own, then the
-- constraint on that index. Run with search_path empty, so that every name
-- is qualified as pg_dump qualifies it.
local OWNED_SQL = [[
SELECT 'INDEX' AS type, 'pg_class'::regclass::oid || ' ' || ic.oid AS catalog_id, t.oid AS table_oid,
  NULL AS plain_sql, NULL AS index_sql, NULL AS attach_sql, pg_relation_size(ic.oid) AS bytes
FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid JOIN pg_class t ON t.oid = i.indrelid
  JOIN pg_namespace n ON n.oid = ic.relnamespace
WHERE t.relkind = 'r' AND ]] .. SYSTEM_SCHEMAS .. [[
UNION ALL
SELECT 'CONSTRAINT', 'pg_constraint'::regclass::oid || ' ' || c.oid, t.oid,
  format(E'ALTER TABLE ONLY %I.%I\n    ADD CONSTRAINT %I %s;', n.nspname, t.relname, c.conname,
    pg_get_constraintdef(c.oid)),
  CASE WHEN ic.oid IS NOT NULL THEN pg_get_indexdef(ic.oid) || ';' END,
  CASE WHEN ic.oid IS NOT NULL THEN format('ALTER TABLE ONLY %I.%I ADD CONSTRAINT %I %s USING INDEX %I;',
    n.nspname, t.relname, c.conname, CASE c.contype WHEN 'p' THEN 'PRIMARY KEY' ELSE 'UNIQUE' END,
    ic.relname) END,
  coalesce(pg_relation_size(nullif(c.conindid, 0)), 0)
FROM pg_constraint c JOIN pg_class t ON t.oid = c.conrelid
  JOIN pg_namespace n ON n.oid = t.relnamespace
  LEFT JOIN pg_class ic ON ic.oid = c.conindid AND c.contype IN ('p', 'u') AND NOT c.condeferrable
WHERE c.contype IN ('p', 'u', 'x') AND t.relkind = 'r' AND ]] .. SYSTEM_SCHEMAS

-- Foreign keys by catalog ID, with their names, and whether a plain b-tree
-- index of the referencing table starts with the key's columns (the
-- referenced side always has its unique index).
local FOREIGN_KEYS_SQL = [[
SELECT 'pg_constraint'::regclass::oid || ' ' || c.oid AS catalog_id,
  format('%I.%I %I', n.nspname, t.relname, c.conname) AS name, c.conrelid AS table_oid,
  c.confrelid AS referenced_oid,
  EXISTS (SELECT 1 FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid
      JOIN pg_am am ON am.oid = ic.relam
    WHERE i.indrelid = c.conrelid AND am.amname = 'btree' AND i.indpred IS NULL
      AND (i.indkey::int2[])[0:cardinality(c.conkey) - 1] @> c.conkey
      AND (i.indkey::int2[])[0:cardinality(c.conkey) - 1] <@ c.conkey) AS indexed
FROM pg_constraint c JOIN pg_class t ON t.oid = c.conrelid
  JOIN pg_namespace n ON n.oid = t.relnamespace
WHERE c.contype = 'f' AND ]] .. SYSTEM_SCHEMAS

local SEQUENCES_SQL = [[
SELECT format('%I.%I', n.nspname, c.relname) AS qualified
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind = 'S' AND ]] .. SYSTEM_SCHEMAS .. " AND " .. not_extension_member("pg_class", "c.oid")
    .. " ORDER BY 1"

local LATE_ANALYZE_SQL = [[
SELECT format('%I.%I', n.nspname, c.relname) AS qualified
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('p', 'm') AND ]] .. SYSTEM_SCHEMAS .. " ORDER BY 1"

-- The newest PostgreSQL client programs installed (pg_dump must be at least
-- as new as the server), else whatever PATH has.
local function program(name, opts)
  if opts.pg_bin then return opts.pg_bin .. "/" .. name end
  for version = 40, 9, -1 do
    local path = "/usr/lib/postgresql/" .. version .. "/bin/" .. name
    local f = io.open(path)
    if f then
      f:close()
      return path
    end
  end
  return name
end

-- What a child process needs to connect: the DSN without its password on
-- the command line (ps shows it), the password in its environment.
local function child_connection(options)
  local env = { PGAPPNAME = "wfengine copy_database" }
  if options.password then env.PGPASSWORD = options.password end
  return conninfo_string(options, { password = true, application_name = true }), env
end

-- ---- post-data entries ------------------------------------------------------
--
-- pg_dump writes post-data to a custom-format archive; `pg_restore -l` lists
-- its table of contents, and each group of entries the copy runs on its own
-- (one index, one key, the rest in dump order) is one `pg_restore -L` run
-- over just those entries. An entry's SQL is thus exactly what pg_restore
-- writes for it, cut by the archive's structure and never by searching the
-- text, which holds the source's data (comments, function bodies, ...):
-- the text goes to the target whole, as one query string the server parses.

-- A private scratch directory (mode 0700) whose files (0600) are removed
-- with it when it goes out of scope.
local scratch_meta = {}
scratch_meta.__index = scratch_meta

local function scratch()
  return setmetatable({ path = copy.private_dir(), files = {}, count = 0 }, scratch_meta)
end

function scratch_meta:file(name, text)
  self.count = self.count + 1
  local path = string.format("%s/%d-%s", self.path, self.count, name)
  copy.write_private(path, text or "")
  self.files[path] = true
  return path
end

function scratch_meta:remove(path)
  os.remove(path)
  self.files[path] = nil
end

function scratch_meta:remove_all()
  for path in pairs(self.files) do os.remove(path) end
  self.files = {}
  if self.path then os.remove(self.path) end
  self.path = nil
end
scratch_meta.__close = scratch_meta.remove_all

-- `pg_restore -l` -> its entries in archive order: { id =, catalog_id =
-- "classid objid", what = "TYPE SCHEMA NAME OWNER" }. A line starts with the
-- dump ID and the catalog ID, both numbers from pg_dump; the names after
-- the type are the catalog's (sanitized to one line by pg_restore) and only
-- the type at the start of `what` is ever looked at.
local function parse_toc(listing)
  local entries, seen = {}, {}
  for line in listing:gmatch("[^\n]+") do
    if not line:find("^;") then
      local id, classid, objid, what = line:match("^(%d+); (%d+) (%d+) (.*)$")
      if not id or seen[id] then return nil, "unexpected line in pg_restore's list: " .. line end
      seen[id] = true
      entries[#entries + 1] = { id = id, catalog_id = classid .. " " .. objid, what = what }
    end
  end
  return entries
end

-- What every pg_restore run writes around its entries, from a run over no
-- entry: the preamble (SET lines) and the trailer. Neither holds data.
local TRAILER = "--\n-- PostgreSQL database dump complete\n"

local function restore_frame(empty)
  local last
  local at = 1
  while true do
    local found = empty:find(TRAILER, at, true)
    if not found then break end
    last, at = found, found + 1
  end
  if not last then return nil end
  return empty:sub(1, last - 1), empty:sub(last)
end

-- One run's output -> the text of its entries, between the preamble and the
-- trailer that every run writes alike (nil when it is not framed so).
local function entry_body(output, preamble, trailer)
  if #output < #preamble + #trailer or output:sub(1, #preamble) ~= preamble
      or output:sub(-#trailer) ~= trailer then
    return nil
  end
  return output:sub(#preamble + 1, #output - #trailer)
end

-- The statement of a one-entry text when that is all it holds: pg_restore's
-- comment header and at most a SET default_tablespace = '' before it.
local function lone_statement(body)
  local rest = body:match("^SET default_tablespace = '';\n\n(.*)$") or body
  local statement = rest:match("^%-%-\n%-%- [^\n]*\n%-%-\n\n(.*)$")
  return statement and statement:match("^%s*(.-)%s*$")
end

local function restrict_key()
  local f = io.open("/dev/urandom", "rb")
  local bytes = f and f:read(24) or tostring(core.now()) .. tostring({})
  if f then f:close() end
  return (bytes:gsub(".", function(c) return string.format("%02x", c:byte()) end))
end

local function restore_failure(what, result)
  local child = result[1]
  if child.error or child.status ~= 0 or child.signal ~= 0 then
    local why = child.error or (child.signal ~= 0 and ("killed by signal " .. child.signal))
        or ("exit status " .. child.status)
    raise(nil, string.format("copy_database, phase schema: %s failed (%s)%s", what, why,
      child.stderr ~= "" and (": " .. child.stderr:gsub("%s+$", "")) or ""),
      { phase = "schema" }, false)
  end
end

local function restore_start(r, ids)
  local list = r.dir:file("list", #ids > 0 and (table.concat(ids, ";\n") .. ";\n") or "")
  local argv = { r.program, "-f", "-", "-L", list }
  for _, flag in ipairs(r.flags) do argv[#argv + 1] = flag end
  argv[#argv + 1] = r.archive
  return { handle = copy.spawn({ { argv = argv } }, true), list = list }
end

local function restore_finish(r, run)
  local result = run.handle:wait()
  r.dir:remove(run.list)
  restore_failure("pg_restore", result)
  return result.stdout
end

local function schema_error(message)
  raise(nil, "copy_database, phase schema: " .. message, { phase = "schema" }, false)
end

-- The archive: its entries (r.entries), the preamble every pg_restore run
-- writes (r.preamble) and what `restore_groups` needs.
local function open_archive(pg_restore, dir, archive, help)
  local r = { program = pg_restore, dir = dir, archive = archive, flags = {} }
  local helped = help:wait()
  restore_failure("pg_restore --help", helped)
  -- one key for every run (psql's \restrict, which pg_restore writes in the
  -- preamble and trailer): otherwise each run's frame would differ
  if helped.stdout:find("--restrict-key", 1, true) then
    r.flags[1] = "--restrict-key=" .. restrict_key()
  end
  -- the list and the run over no entry (the frame) at once: each is a
  -- process start, on the schema phase's critical path
  local list <close> = copy.spawn({ { argv = { pg_restore, "-l", archive } } }, true)
  local frame = restore_start(r, {})
  local frame_handle <close> = frame.handle
  local listed = list:wait()
  restore_failure("pg_restore -l", listed)
  local entries, err = parse_toc(listed.stdout)
  if not entries then schema_error(err) end
  r.entries = entries
  r.preamble, r.trailer = restore_frame(restore_finish(r, { handle = frame_handle, list = frame.list }))
  if not r.preamble then schema_error("pg_restore wrote no trailer") end
  return r
end

-- groups[i] = { entry id, ... } -> texts[i], each group's entries as
-- pg_restore writes them on their own, without its preamble and trailer;
-- up to `parallel` pg_restore runs at once.
local function restore_groups(r, groups, parallel)
  local inflight <close> = setmetatable({}, { __close = function(runs)
    for _, run in pairs(runs) do getmetatable(run.handle).__close(run.handle) end
  end })
  local texts = {}
  local started = 0
  for done = 1, #groups do
    while started < #groups and started - done < parallel - 1 do
      started = started + 1
      inflight[started] = restore_start(r, groups[started])
    end
    local output = restore_finish(r, inflight[done])
    inflight[done] = nil
    texts[done] = entry_body(output, r.preamble, r.trailer)
    if not texts[done] then
      schema_error(string.format("pg_restore's text for entries %s is not framed as its others",
        table.concat(groups[done], ", ")))
    end
  end
  return texts
end

-- The preamble as SQL for a session: without psql's meta-commands (\restrict).
local function session_preamble(preamble)
  local lines = {}
  for line in preamble:gmatch("([^\n]*)\n") do
    if not line:find("^\\") then lines[#lines + 1] = line end
  end
  return table.concat(lines, "\n") .. "\n"
end

-- Sorts the archive's entries into what the copy runs where, each item with
-- the group of entries whose text it runs: each index and key of a plain
-- table and each foreign key on its own, the indexes and keys of other
-- relations and the index attachments together ("early"), and the rest
-- together, in dump order. Catalog IDs and pg_dump's type names decide,
-- never an entry's text.
local function plan_post_data(entries, owned, fks, by_oid)
  local plan = { groups = {}, items = {} }
  local function add(ids, item)
    plan.groups[#plan.groups + 1] = ids
    item.group = #plan.groups
    plan.items[#plan.items + 1] = item
  end
  local early, rest = {}, {}
  for _, e in ipairs(entries) do
    local row, fk = owned[e.catalog_id], fks[e.catalog_id]
    local index_or_key = e.what:find("^INDEX ") or e.what:find("^CONSTRAINT ")
    if row and by_oid[row.table_oid] and index_or_key then
      add({ e.id }, { kind = "table", table = by_oid[row.table_oid], row = row })
    elseif fk and e.what:find("^FK CONSTRAINT ") then
      local child, parent = by_oid[fk.table_oid], by_oid[fk.referenced_oid]
      add({ e.id }, { kind = child and parent and "fk" or "late fk", name = fk.name,
        tables = { child, parent, indexed = fk.indexed } })
    elseif index_or_key then -- INDEX ATTACH too
      early[#early + 1] = e.id
    else
      rest[#rest + 1] = e.id
    end
  end
  if #early > 0 then add(early, { kind = "early" }) end
  if #rest > 0 then add(rest, { kind = "rest" }) end
  return plan
end

-- The plan with each group's text -> the statements of each kind: a key
-- whose entry holds nothing but pg_dump's plain ADD CONSTRAINT is built as
-- its unique index instead, then made the constraint on it.
local function post_data_tasks(plan, texts)
  local early, foreign_keys, late_keys, rest = {}, {}, {}, {}
  for _, item in ipairs(plan.items) do
    local text = texts[item.group]
    local statement = "SET default_tablespace = '';\n" .. text
    local row = item.row
    if item.kind == "table" and row.attach_sql and lone_statement(text) == row.plain_sql then
      table.insert(item.table.post, { sql = "SET default_tablespace = '';\n" .. row.index_sql,
        attach = row.attach_sql, bytes = row.bytes })
    elseif item.kind == "table" then
      table.insert(item.table.post, { sql = statement, constraint = row.type == "CONSTRAINT",
        bytes = row.bytes })
    elseif item.kind == "fk" then
      foreign_keys[#foreign_keys + 1] = { name = item.name, sql = statement, tables = item.tables }
    elseif item.kind == "late fk" then
      late_keys[#late_keys + 1] = { name = item.name, sql = statement }
    elseif item.kind == "early" then
      early[#early + 1] = statement
    else
      rest[#rest + 1] = statement
    end
  end
  return early, foreign_keys, late_keys, rest
end

local function check_empty(target)
  local state = target:one(EMPTY_SQL)
  local found = {}
  for _, what in ipairs { "relations", "schemas", "functions", "types", "extensions" } do
    if state[what] > 0 then found[#found + 1] = state[what] .. " " .. what end
  end
  if #found > 0 then
    raise("55000", string.format("copy_database: target database %s is not empty (%s)",
      state.name, table.concat(found, ", ")), { phase = "check" }, false)
  end
  return state
end

-- psql exits 2 when "the connection to the server went bad" (psql(1)): a
-- lost connection, which a retry may get past; every other failure of the
-- pipeline is not. A program that could not be run (exit 127, the shell's
-- convention, which wf_spawn follows) is named first, looked for in the
-- order copy.spawn starts them, last first (after the first one that
-- cannot start, the others are not started: "operation canceled"); then
-- psql, since the pg_dump feeding either fails too (a broken pipe).
local function pipeline_failure(commands, result)
  for i = #result, 1, -1 do
    local child = result[i]
    if child.error or (child.signal == 0 and child.status == 127) then
      return i, commands[i].argv[1]:match("[^/]*$"), nil, false
    end
  end
  for i, child in ipairs(result) do
    local what = commands[i].argv[1]:match("[^/]*$")
    if what == "psql" and not child.error and child.signal == 0 and child.status == 2 then
      return i, what, "08006", true
    end
  end
  for i, child in ipairs(result) do
    if child.error or child.status ~= 0 or child.signal ~= 0 then
      return i, commands[i].argv[1]:match("[^/]*$"), nil, false
    end
  end
end

local function wait_pipeline(phase, commands, handle)
  local result = handle:wait()
  local i, what, code, retryable = pipeline_failure(commands, result)
  if i then
    local child = result[i]
    local why = child.error or (child.signal ~= 0 and ("killed by signal " .. child.signal))
        or ("exit status " .. child.status)
    raise(code, string.format("copy_database, phase %s: %s failed (%s)%s", phase, what, why,
      child.stderr ~= "" and (": " .. child.stderr:gsub("%s+$", "")) or ""),
      { phase = phase }, retryable)
  end
  return result
end

-- Adds each foreign key whose two tables are in the pool, as soon as they
-- are: a worker takes the first ready task in the order they were added,
-- so the keys of the largest tables come before the COPY of the small
-- ones, which then fill the end of the copy instead of a lone key check.
--
-- Adding a foreign key checks every row of the referencing table against
-- the referenced one with one query, which the planner makes a hash anti
-- join. When the referencing columns lead a b-tree index and both tables
-- were loaded frozen (all-visible, so index-only scans fetch no heap page),
-- a merge anti join over the two indexes, already in order, does the same
-- check without building a hash table: 1.0-1.2 worker-seconds instead of
-- 2.0-3.3 at 1 GB (docs/performance.md). SET LOCAL lasts for the one
-- statement (one implicit transaction), retries included.
local function add_foreign_keys(pool, foreign_keys, analyze_task)
  for _, fk in ipairs(foreign_keys) do
    local child, parent = fk.tables[1], fk.tables[2]
    if not fk.added and analyze_task[child] and analyze_task[parent] then
      fk.added = true
      local statement = fk.sql
      if fk.tables.indexed and child.frozen and parent.frozen then
        statement = "SET LOCAL enable_hashjoin = off;\n" .. statement
      end
      pool:add { label = fk.name, after = { analyze_task[child], analyze_task[parent] },
        locks = { "table " .. child.oid, "table " .. parent.oid },
        actions = { { phase = "foreign keys", sql = statement, retries = 5 } } }
    end
  end
end

local function wait_pool(pool)
  while true do
    local done, stats = pool:wait()
    if done then return stats end
  end
end

local function copy_template(opts, started)
  local from, to = parse_target(opts.from), parse_target(opts.to)
  local source_db = from.dbname or from.user
  local target_db = to.dbname or to.user
  if not source_db or not target_db then
    raise(nil, "copy_database: both DSNs must name their database", nil, false)
  end
  local admin_from, admin_to = {}, {}
  for k, v in pairs(from) do admin_from[k] = v end
  for k, v in pairs(to) do admin_to[k] = v end
  admin_from.dbname, admin_to.dbname = opts.maintenance_db or "postgres",
      opts.maintenance_db or "postgres"
  local a <close> = sql.connect(admin_from)
  local b <close> = sql.connect(admin_to)
  local id = "SELECT system_identifier::text FROM pg_control_system()"
  if a:scalar(id) ~= b:scalar(id) then
    raise(nil, "copy_database: strategy \"template\" needs both databases in one cluster",
      { phase = "check" }, false)
  end
  local size = b:scalar("SELECT pg_database_size($1)", source_db)
  local existing = b:one([[SELECT pg_get_userbyid(datdba) AS owner FROM pg_database
    WHERE datname = $1]], target_db)
  local owner = existing and existing.owner
  if existing then
    sql.with(opts.to, check_empty)
  end
  local strategy = (opts.template_strategy or "file_copy"):upper()
  if existing then b:exec("DROP DATABASE " .. sql.ident(target_db)) end
  b:exec(string.format("CREATE DATABASE %s TEMPLATE %s STRATEGY %s%s", sql.ident(target_db),
    sql.ident(source_db), strategy == "WAL_LOG" and "WAL_LOG" or "FILE_COPY",
    owner and (" OWNER " .. sql.ident(owner)) or ""))
  return { tables = 0, rows = 0, bytes = size or 0, seconds = core.now() - started,
    strategy = "template" }
end

-- Tables at least this large are copied in ctid ranges by several workers
-- (opts.split_bytes; 0 never splits).
local SPLIT_BYTES = math.huge

-- The options of copy_database, checked.
local function copy_options(opts)
  if type(opts) ~= "table" or opts.from == nil or opts.to == nil then
    error("bad argument #1 to 'copy_database' (table with from and to expected)", 3)
  end
  local function integer_option(name, low, high)
    local value = opts[name]
    if value ~= nil and (math.type(value) ~= "integer" or value < low or value > high) then
      error(string.format("bad argument #1 to 'copy_database' (%s must be an integer from %d to %d)",
        name, low, high), 4)
    end
    return value
  end
  local o = { jobs = integer_option("jobs", 1, 64) or 2,
    index_workers = integer_option("index_workers", 0, 64), strategy = opts.strategy or "stream" }
  -- With several jobs the copy already runs that many builds at once, so by
  -- default a build gets no parallel workers of its own: jobs is the
  -- parallelism asked for (docs/modules.md)
  if o.index_workers == nil and o.jobs > 1 then o.index_workers = 0 end
  if o.strategy ~= "stream" and o.strategy ~= "template" then
    error("bad argument #1 to 'copy_database' (strategy must be \"stream\" or \"template\")", 3)
  end
  o.rewrite = rewriting.check(opts.rewrite)
  if o.rewrite and o.strategy == "template" then
    error("bad argument #1 to 'copy_database' (rewrite needs strategy \"stream\")", 3)
  end
  return o
end

-- check: both reachable, the target empty and of the same encoding; one
-- snapshot for everything read from the source, and its tables.
local function copy_check(c)
  local source_encoding = c.source:scalar([[SELECT pg_encoding_to_char(encoding) FROM pg_database
    WHERE datname = current_database()]])
  local target_state = check_empty(c.target)
  if target_state.encoding ~= source_encoding then
    raise(nil, string.format("copy_database: source encoding %s differs from target encoding %s",
      source_encoding, target_state.encoding), { phase = "check" }, false)
  end
  c.source:_run("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
  c.snapshot = c.source:scalar("SELECT pg_export_snapshot()")
  c.tables = c.source:query(TABLES_SQL)
  c.total_bytes, c.estimated_rows = 0, 0
  for _, t in ipairs(c.tables) do
    c.total_bytes = c.total_bytes + t.bytes
    c.estimated_rows = c.estimated_rows + t.estimated_rows
  end
end

local function log_rewrite_plan(columns, verb)
  local counts = {}
  for _, col in ipairs(columns) do counts[col.op] = (counts[col.op] or 0) + 1 end
  local parts = {}
  for op, n in pairs(counts) do parts[#parts + 1] = string.format("%d %s", n, op) end
  table.sort(parts)
  log(verb, "rewrite %d columns in the stream (%s)", #columns, table.concat(parts, ", "))
end

-- dry-run: what the copy would do, read from the source only.
local function copy_dry_run(c, started)
  log("would", "copy %d tables (%s, about %d rows) from %s to %s", #c.tables,
    human_bytes(c.total_bytes), c.estimated_rows, c.source:_info().display, c.target:_info().display)
  local columns
  if c.o.rewrite then
    columns = rewriting.tables(c.o.rewrite, c.source, nil, c.tables)
    log_rewrite_plan(columns, "would")
    for _, col in ipairs(columns) do log("would", "rewrite %s (%s, %s)", col.name, col.kind, col.op) end
    local seen = checks.find(c.source, c.tables)
    if #seen > 0 then
      log("would", "check %d CHECK constraints on rewritten columns after the load", #seen)
    end
  end
  c.source:_run("ROLLBACK")
  return { tables = #c.tables, rows = c.estimated_rows, bytes = c.total_bytes,
    seconds = core.now() - started, phases = {},
    rewrite = columns and { columns = columns, values = 0 } or nil }
end

-- schema: pre-data piped from pg_dump into psql; meanwhile post-data dumped
-- to an archive and its entries' SQL taken out with pg_restore.
local function copy_schema(c, opts)
  local pg_dump, psql = program("pg_dump", opts), program("psql", opts)
  local source_dsn, source_env = child_connection(c.from)
  local target_dsn, target_env = child_connection(c.to)
  local dump_flags = {}
  if opts.owner == false then dump_flags[#dump_flags + 1] = "--no-owner" end
  if opts.privileges == false then dump_flags[#dump_flags + 1] = "--no-privileges" end
  local function dump_argv(section, extra)
    local argv = { pg_dump, "--section=" .. section, "--snapshot=" .. c.snapshot, "-d", source_dsn }
    for _, flag in ipairs(dump_flags) do argv[#argv + 1] = flag end
    for _, flag in ipairs(extra or {}) do argv[#argv + 1] = flag end
    return { argv = argv, env = source_env }
  end
  local dir <close> = scratch()
  local archive = dir:file("post-data.dump")
  -- <close>: when the schema phase fails or the step is cancelled, these
  -- children are stopped now, not whenever the handles are collected
  local post_dump <close> = copy.spawn({ dump_argv("post-data", { "-Fc", "-f", archive }) })
  local schema_commands = {
    dump_argv("pre-data"),
    { argv = { psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", "--single-transaction", "-d",
      target_dsn }, env = target_env },
  }
  local schema_load <close> = copy.spawn(schema_commands)
  local pg_restore = program("pg_restore", opts)
  -- its flags, learnt while the dumps run
  local help <close> = copy.spawn({ { argv = { pg_restore, "--help" } } }, true)
  local post = post_dump:wait()
  if post[1].status ~= 0 or post[1].error then
    schema_error("pg_dump --section=post-data failed: " .. (post[1].error or post[1].stderr))
  end
  local restorer = open_archive(pg_restore, dir, archive, help)

  -- which post-data entries belong to which table
  local by_oid = {}
  for _, t in ipairs(c.tables) do
    by_oid[t.oid] = t
    t.post = {}
  end
  c.source:_run("SELECT pg_catalog.set_config('search_path', '', true)")
  local owned, fks = {}, {}
  for _, row in ipairs(c.source:query(OWNED_SQL)) do owned[row.catalog_id] = row end
  for _, row in ipairs(c.source:query(FOREIGN_KEYS_SQL)) do fks[row.catalog_id] = row end
  local plan = plan_post_data(restorer.entries, owned, fks, by_oid)
  local texts = in_phase("schema", restore_groups, restorer, plan.groups, c.o.jobs + 1)
  dir:remove_all() -- not left on disk for the hours the data may take
  in_phase("schema", wait_pipeline, "schema", schema_commands, schema_load)
  c.early, c.foreign_keys, c.late_keys, c.rest = post_data_tasks(plan, texts)
  c.preamble = restorer.preamble
end

-- The session of every target connection of the copy.
local function target_session(c, opts)
  local session = session_preamble(c.preamble) .. "\nSET synchronous_commit = off;\n"
  if c.o.index_workers then
    session = session .. "SET max_parallel_maintenance_workers = " .. c.o.index_workers .. ";\n"
  end
  if opts.maintenance_work_mem then
    session = session .. "SET maintenance_work_mem = " .. sql.literal(opts.maintenance_work_mem)
        .. ";\n"
  end
  return session
end

-- workers: each a source connection in the snapshot and a target connection
local function open_workers(c)
  local workers = {}
  for i = 1, math.min(c.o.jobs, math.max(#c.tables, 1)) do
    local s = sql.connect(c.from)
    c.connections[#c.connections + 1] = s
    local t = sql.connect(c.to)
    c.connections[#c.connections + 1] = t
    s:_run("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY;\nSET TRANSACTION SNAPSHOT "
      .. sql.literal(c.snapshot))
    t:_run(c.session)
    workers[i] = { source = s, target = t }
  end
  return workers
end

-- The tasks of one table: its COPY (split by ctid ranges into several parts
-- when it is large, each through the table's rewrite when it has one),
-- then the constraints that must be built by ALTER TABLE (one task: it
-- locks the table), then each index as a task of its own, then ANALYZE.
local function add_table_tasks(pool, c, t, analyze_task)
  local jobs, split_bytes = c.o.jobs, c.split_bytes
  local columns = t.columns and (" (" .. t.columns .. ")") or ""
  local lock = "table " .. t.oid
  local parts = 1
  if jobs > 1 and split_bytes > 0 and t.bytes >= split_bytes and t.blocks >= 2 * jobs then
    parts = jobs
  end
  local loaded = {}
  t.frozen = parts == 1
  if parts == 1 then
    loaded[1] = pool:add { label = t.qualified, estimate = t.bytes, actions = {
      { phase = "data", source = "COPY " .. t.qualified .. columns .. " TO STDOUT (FORMAT binary)",
        target = "BEGIN;\nTRUNCATE ONLY " .. t.qualified .. ";\nCOPY " .. t.qualified .. columns
            .. " FROM STDIN (FORMAT binary, FREEZE)", rewrite = t.rewrite },
      { phase = "data", sql = "COMMIT" },
    } }
  else
    -- parts of one table load concurrently, so none of them can
    -- TRUNCATE it first for COPY FREEZE: the rows are frozen by the
    -- first VACUUM instead
    local select_list = t.columns or "*"
    for i = 1, parts do
      local first = (i - 1) * t.blocks // parts
      local last = i * t.blocks // parts
      local where = i == 1 and string.format("ctid < '(%d,0)'", last)
          or i == parts and string.format("ctid >= '(%d,0)'", first)
          or string.format("ctid >= '(%d,0)' AND ctid < '(%d,0)'", first, last)
      loaded[i] = pool:add { label = t.qualified, estimate = t.bytes / parts, actions = {
        { phase = "data", source = "COPY (SELECT " .. select_list .. " FROM ONLY " .. t.qualified
            .. " WHERE " .. where .. ") TO STDOUT (FORMAT binary)",
          target = "COPY " .. t.qualified .. columns .. " FROM STDIN (FORMAT binary)",
          rewrite = t.rewrite },
      } }
    end
  end
  t.copy_tasks = loaded -- their rewrite counts: rewriting.changed
  local constraints, indexes, attach = {}, {}, {}
  for i, post in ipairs(t.post) do
    if post.constraint then constraints[#constraints + 1] = post.sql
    else indexes[#indexes + 1] = { sql = post.sql, bytes = post.bytes, order = i } end
    if post.attach then attach[#attach + 1] = post.attach end
  end
  -- the largest index of the table (its size on the source) first: it
  -- takes longest to build, and the table's ANALYZE and foreign keys
  -- wait for its last index, so starting the long build late leaves the
  -- other workers idle at the end
  table.sort(indexes, function(a, b)
    if a.bytes ~= b.bytes then return a.bytes > b.bytes end
    return a.order < b.order
  end)
  local ready = loaded
  if #constraints > 0 then
    ready = { pool:add { label = t.qualified, after = loaded, locks = { lock }, actions = {
      { phase = "indexes", sql = table.concat(constraints, "\n") } } } }
  end
  local indexed = {}
  for _, index in ipairs(indexes) do
    indexed[#indexed + 1] = pool:add { label = t.qualified, after = ready, actions = {
      { phase = "indexes", sql = index.sql } } }
  end
  if #indexed == 0 then indexed = ready end
  local finish = { { phase = "analyze", sql = "ANALYZE " .. t.qualified } }
  if #attach > 0 then
    table.insert(finish, 1, { phase = "indexes", sql = table.concat(attach, "\n") })
  end
  analyze_task[t] = pool:add { label = t.qualified, after = indexed, locks = { lock },
    actions = finish }
end

-- data: one pool runs everything that belongs to tables, as a graph: each
-- table's tasks (add_table_tasks); a foreign key as soon as both of its
-- tables are done (and before the tables that come after them, see
-- add_foreign_keys). Locks keep two tasks that would wait for each other's
-- table locks (ANALYZE, ALTER TABLE) from holding two workers at once.
local function copy_data(c, workers)
  local pool = copy.pool(workers)
  local analyze_task = {}
  for _, t in ipairs(c.tables) do
    add_table_tasks(pool, c, t, analyze_task)
    add_foreign_keys(pool, c.foreign_keys, analyze_task)
  end
  local stats = in_phase("data", wait_pool, pool)
  if c.o.rewrite then stats.changed = rewriting.changed(pool, c.tables) end
  return stats
end

-- sequences at the source's values (read now, never behind the data)
local function copy_sequences(c)
  if #c.sequences == 0 then return end
  local sequences, statements = c.sequences, {}
  for i = 1, #sequences, 200 do
    local selects = {}
    for j = i, math.min(i + 199, #sequences) do
      selects[#selects + 1] = string.format(
        "SELECT %d AS i, last_value, is_called FROM %s", j, sequences[j].qualified)
    end
    for _, row in ipairs(c.source:query(table.concat(selects, " UNION ALL "))) do
      statements[#statements + 1] = string.format("SELECT pg_catalog.setval(%s, %d, %s);",
        sql.literal(sequences[row.i].qualified), row.last_value, tostring(row.is_called))
    end
  end
  in_phase("sequences", c.target._run, c.target, table.concat(statements, "\n"))
end

-- indexes and constraints of tables without rows of their own
-- (partitioned tables), then foreign keys, several at a time
local function copy_constraints(c, workers)
  if #c.early > 0 then in_phase("indexes", c.target._run, c.target, table.concat(c.early, "\n")) end
  if #c.late_keys > 0 then
    local fk_pool = copy.pool(workers)
    for _, fk in ipairs(c.late_keys) do
      fk_pool:add { label = fk.name, actions = { { phase = "foreign keys", sql = fk.sql,
        retries = 5 } } }
    end
    in_phase("foreign keys", wait_pool, fk_pool)
  end
end

-- the rest of post-data in dump order: triggers, rules, policies,
-- materialized view data, comments on indexes...
local function copy_post_data(c)
  local target = c.target
  if #c.rest > 0 then in_phase("post-data", target._run, target, table.concat(c.rest, "\n")) end
  if #c.late_analyze > 0 then
    local names = {}
    for _, r in ipairs(c.late_analyze) do names[#names + 1] = r.qualified end
    in_phase("analyze", target._run, target, "ANALYZE " .. table.concat(names, ", "))
  end
  -- The workers commit with synchronous_commit off. One synchronous commit
  -- that writes a commit record flushes the WAL up to it, so every earlier
  -- commit of the copy is durable before copy_database returns: a crash of
  -- the target server afterwards cannot lose part of the copy.
  in_phase("post-data", target._run, target,
    "SET synchronous_commit = on;\nBEGIN;\nSELECT pg_catalog.txid_current();\nCOMMIT")
end

--- sql.copy_database{ from = dsn, to = dsn, jobs = 2, strategy = "stream", rewrite = {...} }
--- -> { tables, rows, bytes, seconds, phases = {...}, rewrite = {columns, values, changed} }
function sql.copy_database(opts)
  local o = copy_options(opts)
  local mode = core.mode()
  local started = core.now()
  if mode == "simulate" then
    if o.rewrite then log("would", "rewrite the text-bearing columns in the stream to @%s", o.rewrite.domain) end
    return { tables = 0, rows = 0, bytes = 0, seconds = 0, phases = {} }
  end
  if o.strategy == "template" then return copy_template(opts, started) end

  local c = { o = o, from = parse_target(opts.from), to = parse_target(opts.to), connections = {},
    split_bytes = opts.split_bytes or SPLIT_BYTES }
  local phases = {}
  local phase_started = core.now()
  local function phase_done(name)
    local now = core.now()
    phases[name] = (phases[name] or 0) + (now - phase_started)
    phase_started = now
  end

  local source <close> = sql.connect(c.from)
  local target <close> = sql.connect(c.to)
  c.source, c.target = source, target
  copy_check(c)
  if mode == "dry-run" then return copy_dry_run(c, started) end
  log("info", "copying %d tables (%s) with %d jobs", #c.tables, human_bytes(c.total_bytes), o.jobs)
  phase_done("check")

  copy_schema(c, opts)
  local rewritten
  if o.rewrite then
    rewritten = in_phase("schema", rewriting.tables, o.rewrite, source, target, c.tables)
    log_rewrite_plan(rewritten, "info")
  end

  c.sequences = source:query(SEQUENCES_SQL)
  c.late_analyze = source:query(LATE_ANALYZE_SQL)
  c.session = target_session(c, opts)
  target:_run(c.session)
  if o.rewrite then
    -- CHECKs a rewritten value may fail: dropped until the data is loaded
    -- (their text read in the session they are added back in: search_path
    -- empty, every name qualified)
    c.checks = in_phase("schema", checks.find, target, c.tables)
    in_phase("schema", checks.drop, target, c.checks)
    if #c.checks > 0 then
      log("info", "%d CHECK constraints on rewritten columns are added back after the load", #c.checks)
    end
  end
  phase_done("schema")
  local ok, err = pcall(function()
    local workers = open_workers(c)
    local stats = copy_data(c, workers)
    phase_done("data")
    if c.checks and #c.checks > 0 then
      stats.checks = in_phase("constraints", checks.restore, target, c.checks, o.rewrite.domain, log)
      phase_done("constraints")
    end
    copy_sequences(c)
    phase_done("sequences")
    copy_constraints(c, workers)
    phase_done("constraints")
    copy_post_data(c)
    phase_done("post")
    source:_run("COMMIT")
    return stats
  end)
  for _, conn in ipairs(c.connections) do pcall(conn.close, conn) end
  if not ok then error(err, 0) end
  local stats = err
  local result = { tables = #c.tables, rows = stats.rows, bytes = math.floor(stats.bytes),
    seconds = core.now() - started, phases = phases, busy = stats.busy }
  if rewritten then
    local checked = stats.checks or { fallback = 0, unchecked = {} }
    result.rewrite = { columns = rewritten, values = stats.rewritten, changed = stats.changed,
      checks = #c.checks, fallback = checked.fallback, unchecked = checked.unchecked }
  end
  log("info", "copied %d tables, %d rows, %s in %.1fs%s", result.tables, result.rows,
    human_bytes(result.bytes), result.seconds,
    rewritten and string.format(", %d values rewritten in %d columns", stats.rewritten, #rewritten) or "")
  return result
end

--- sql.rewrite_count{ from = dsn, rewrite = {...}, jobs = 2 }
--- -> { columns = {...}, values = n, changed = {["table.column"] = n} }:
--- what copy_database{ from = dsn, rewrite = ... } would rewrite in its
--- stream, counted without writing (a read-only session is enough).
function sql.rewrite_count(opts)
  local plan = rewriting.check(opts.rewrite)
  if not plan or core.mode() == "simulate" then return { columns = {}, values = 0, changed = {} } end
  local from = parse_target(opts.from)
  local tables, columns
  do
    local conn <close> = sql.connect(from)
    tables = conn:query(TABLES_SQL)
    columns = rewriting.tables(plan, conn, nil, tables)
  end
  local changed = rewriting.count(function() return sql.connect(from) end, tables, opts.jobs or 2)
  local values = 0
  for _, n in pairs(changed) do values = values + n end
  return { columns = columns, values = values, changed = changed }
end

sql._parse_toc = parse_toc
sql._entry_body = entry_body
sql._lone_statement = lone_statement
sql._conninfo_string = conninfo_string

return sql
