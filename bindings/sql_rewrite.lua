-- sql_rewrite.lua (module "wf.sql_rewrite"): the plan of copy_database's
-- rewrite option (docs/modules.md, wf.sql): which copied columns are
-- rewritten inside the COPY stream, by which operation, and how the C side
-- (bindings/copy_rewrite.c) walks each one's binary value.
--
-- Columns are chosen from the source's catalog, the way step 13 chose them:
-- every text-bearing column of every table (text, varchar(n), char(n),
-- citext, domains over these, arrays of them, json, jsonb, composites
-- holding any of these) when `addresses` is on: whole-value sandbox address
-- when the column's name holds "email" or it is listed in `whole`, the
-- free-text scan otherwise. `columns` names an operation for a column
-- ("address", "scan", "null", "hash", "keep", or {"constant", value = ...}),
-- `exclude` lists columns left as they are. A column is named "table.column"
-- or "schema.table.column". Columns of composite types, and arrays of types
-- the database defines, are walked even when nothing in them is rewritten:
-- their binary values carry type OIDs, which differ between the two
-- databases and are written as the target's.
local rewrite = {}

local OPS = { address = true, scan = true, null = true, hash = true, keep = true, constant = true }

rewrite.COLUMNS_SQL = [[
SELECT a.attrelid AS table_oid, a.attname AS name, a.atttypid AS type_oid, a.atttypmod AS typmod
FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
WHERE c.relkind = 'r' AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''
  AND c.relnamespace NOT IN ('pg_catalog'::regnamespace, 'information_schema'::regnamespace)
ORDER BY a.attrelid, a.attnum]]

rewrite.TYPES_SQL = [[
SELECT t.oid, n.nspname AS schema, t.typname AS name, t.typtype, t.typbasetype, t.typtypmod,
  t.typelem, t.typcategory, t.typrelid
FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace]]

rewrite.FIELDS_SQL = [[
SELECT a.atttypid AS type_oid, a.atttypmod AS typmod FROM pg_attribute a
WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum]]

-- check(opts.rewrite) -> the option, normalized; raises on a malformed one.
function rewrite.check(option)
  if option == nil or option == false then return nil end
  local function bad(message) error("bad argument #1 to 'copy_database' (rewrite: " .. message .. ")", 5) end
  if type(option) ~= "table" then bad("a table expected") end
  local set = function(list, name)
    local s = {}
    if list ~= nil and type(list) ~= "table" then bad(name .. " must be a list of column names") end
    for _, v in ipairs(list or {}) do s[v] = true end
    return s
  end
  local plan = { domain = option.domain, addresses = option.addresses ~= false,
    whole = set(option.whole, "whole"), exclude = set(option.exclude, "exclude"), columns = {} }
  for name, op in pairs(option.columns or {}) do
    local kind, value = op, nil
    if type(op) == "table" then kind, value = op[1], op.value end
    if not OPS[kind] or (kind == "constant" and type(value) ~= "string") then
      bad(string.format("columns[%q] must be address, scan, null, hash, keep or {\"constant\", value = text}", name))
    end
    plan.columns[name] = { op = kind, value = value }
  end
  local needs_domain = plan.addresses
  for _, c in pairs(plan.columns) do
    if c.op == "address" or c.op == "scan" then needs_domain = true end
  end
  if needs_domain and (type(plan.domain) ~= "string" or not plan.domain:find("%S")) then
    bad("domain (the sandbox mail domain) is required to rewrite addresses")
  end
  plan.domain = plan.domain or "masked.invalid"
  return plan
end

local TEXT = { text = true, varchar = true, bpchar = true }

-- The describer of one database pair: type rows of the source by OID, and
-- the target's OIDs by qualified name (nil target: the source's OIDs).
local function describer(source, target)
  local types, target_oids, fields = {}, {}, {}
  for _, t in ipairs(source:query(rewrite.TYPES_SQL)) do
    for _, k in ipairs { "oid", "typbasetype", "typtypmod", "typelem", "typrelid" } do t[k] = tonumber(t[k]) end
    types[t.oid] = t
  end
  if target then
    for _, t in ipairs(target:query(rewrite.TYPES_SQL)) do
      target_oids[t.schema .. "." .. t.name] = tonumber(t.oid)
    end
  end
  local function target_oid(t)
    if not target then return t.oid end
    return target_oids[t.schema .. "." .. t.name] or t.oid
  end
  -- describe(oid, typmod) -> type table for the C side, text-bearing, and
  -- whether walking it is needed to write the target's OIDs
  local function describe(oid, typmod, depth)
    local declared = types[oid]
    if not declared or depth > 15 then return { kind = "other", oid = oid }, false, false end
    local base, mod = declared, typmod
    while base.typtype == "d" and types[base.typbasetype] do
      if mod < 0 then mod = base.typtypmod end
      base = types[base.typbasetype]
    end
    local me = { oid = target_oid(declared) }
    local catalog = base.schema == "pg_catalog"
    if (catalog and TEXT[base.name]) or base.name == "citext" then
      me.kind = "text"
      if catalog and base.name ~= "text" and mod >= 4 then me.limit = mod - 4 end
      return me, true, false
    elseif catalog and (base.name == "json" or base.name == "jsonb") then
      me.kind = base.name
      return me, true, false
    elseif base.typcategory == "A" and base.typelem ~= 0 then
      local elem, bearing, remap = describe(base.typelem, mod, depth + 1)
      me.kind, me.elem = "array", elem
      return me, bearing, remap or base.typelem >= 16384
    elseif base.typtype == "c" then
      local list = fields[base.typrelid]
      if not list then
        list = source:query(rewrite.FIELDS_SQL, base.typrelid)
        fields[base.typrelid] = list
      end
      me.kind, me.fields = "record", {}
      local bearing = false
      for i, f in ipairs(list) do
        local b
        me.fields[i], b = describe(tonumber(f.type_oid), tonumber(f.typmod), depth + 1)
        bearing = bearing or b
      end
      return me, bearing, true
    end
    me.kind = "other"
    return me, false, false
  end
  return describe
end

-- column_name(schema, table, column) -> "table.column" ("schema.table.column"
-- outside public): the key of the counts per column (stats.rewrite.changed,
-- scan, step 13's report).
function rewrite.column_name(schema, tbl, column)
  local name = tbl .. "." .. column
  return schema == "public" and name or schema .. "." .. name
end

local function quote(name) return '"' .. name:gsub('"', '""') .. '"' end

local function column_op(plan, t, name, bearing)
  local short, long = t.name .. "." .. name, t.schema .. "." .. t.name .. "." .. name
  local chosen = plan.columns[long] or plan.columns[short]
  if chosen then return chosen.op, chosen.value, "option" end
  if plan.exclude[long] or plan.exclude[short] or not bearing or not plan.addresses then return nil end
  if plan.whole[long] or plan.whole[short] or name:find("email", 1, true) then return "address" end
  return "scan"
end

-- tables(plan, source, target, tables) -> sets t.rewrite (the spec of its
-- COPY actions, or nil) on each of `tables` (copy_database's, by oid, with
-- schema and name), with t.rewrite_columns (per spec column: {column =
-- attname, name = column_name} when an operation was chosen, else false),
-- and returns the list of columns rewritten: {name =, op =, kind =}. target
-- nil: planning only (dry-run, counting).
function rewrite.tables(plan, source, target, tables)
  local describe = describer(source, target)
  local by_oid, columns = {}, {}
  for _, t in ipairs(tables) do by_oid[t.oid] = t end
  local specs = {}
  for _, row in ipairs(source:query(rewrite.COLUMNS_SQL)) do
    local t = by_oid[row.table_oid]
    if t then
      local spec = specs[t]
      if not spec then
        spec = { domain = plan.domain, columns = {}, used = false }
        specs[t] = spec
        t.rewrite_columns = {}
      end
      local T, bearing, remap = describe(tonumber(row.type_oid), tonumber(row.typmod), 0)
      local op, value = column_op(plan, t, row.name, bearing)
      local entry, named = false, false
      if op then
        entry = { op = op, value = value, type = T }
        named = { column = row.name, name = rewrite.column_name(t.schema, t.name, row.name) }
        columns[#columns + 1] = { name = t.qualified .. "." .. row.name, op = op, kind = T.kind }
      elseif remap then
        entry = { op = "keep", type = T }
      end
      spec.columns[#spec.columns + 1] = entry
      t.rewrite_columns[#spec.columns] = named
      spec.used = spec.used or entry ~= false
    end
  end
  for t, spec in pairs(specs) do
    if spec.used then
      spec.used = nil
      t.rewrite = spec
    end
  end
  table.sort(columns, function(a, b) return a.name < b.name end)
  return columns
end

-- Per column, what a check-mode rewrite counts ({n, ...}) of each of
-- reads ({label =, sql = "COPY ... TO STDOUT (FORMAT binary)", spec =}),
-- `jobs` at a time, each on one connection from connect(): the copy pool
-- with no target (a read: the tuples go nowhere), so nothing is written and
-- a read-only transaction (a dry-run's) is enough.
local function check_reads(connect, jobs, reads)
  if #reads == 0 then return {} end
  local copy = require "wf.sql.copy"
  local conns, workers = {}, {}
  local ok, result = pcall(function()
    for i = 1, math.max(1, math.min(jobs or 2, #reads)) do
      conns[i] = connect()
      workers[i] = { source = conns[i] }
    end
    local pool = copy.pool(workers)
    local ids = {}
    for i, r in ipairs(reads) do
      r.spec.check = true
      ids[i] = pool:add { label = r.label, actions = { { phase = "check", source = r.sql, rewrite = r.spec } } }
    end
    while not pool:wait() do end
    local counts = {}
    for i in ipairs(reads) do counts[i] = pool:changed(ids[i]) or {} end
    return counts
  end)
  for _, c in ipairs(conns) do pcall(c.close, c) end
  if not ok then error(result, 0) end
  return result
end

local function copy_out(qualified, names)
  return "COPY (SELECT " .. table.concat(names, ", ") .. " FROM ONLY " .. qualified
      .. ") TO STDOUT (FORMAT binary)"
end

-- changed(pool, tables) -> {[column_name] = values the rewrite changed}
-- after copy_database's pool ran: summed over each table's COPY tasks
-- (t.copy_tasks: a big table's parts), columns that changed nothing left out.
function rewrite.changed(pool, tables)
  local changed = {}
  for _, t in ipairs(tables) do
    for _, id in ipairs(t.rewrite and t.copy_tasks or {}) do
      for j, n in ipairs(pool:changed(id) or {}) do
        local c = t.rewrite_columns[j]
        if c and n > 0 then changed[c.name] = (changed[c.name] or 0) + n end
      end
    end
  end
  return changed
end

-- count(connect, tables, jobs) -> {[column_name] = values}: what the
-- stream's rewrite would change in the tables rewrite.tables planned (read
-- through connect(), the would-be copy's source), by the stream's own C
-- rule and per-column operations, without writing anything: each table's
-- chosen columns read by a binary COPY through the rewrite in check mode.
function rewrite.count(connect, tables, jobs)
  local reads, owners = {}, {}
  for _, t in ipairs(tables) do
    local names, spec, cols = {}, { domain = t.rewrite and t.rewrite.domain, columns = {} }, {}
    for j, entry in ipairs(t.rewrite and t.rewrite.columns or {}) do
      local c = t.rewrite_columns[j]
      if c and entry.op ~= "keep" then
        names[#names + 1] = quote(c.column)
        spec.columns[#names], cols[#names] = entry, c.name
      end
    end
    if #names > 0 then
      reads[#reads + 1] = { label = t.qualified, sql = copy_out(t.qualified, names), spec = spec }
      owners[#reads] = cols
    end
  end
  local changed = {}
  for i, list in ipairs(check_reads(connect, jobs, reads)) do
    for j, n in ipairs(list) do
      if n > 0 then changed[owners[i][j]] = (changed[owners[i][j]] or 0) + n end
    end
  end
  return changed
end

-- scan(connect, domain, jobs) -> {{column = {schema, table, column, name,
-- type}, values = n}, ...}, columns scanned: the columns holding an address
-- outside domain (the free-text rule would change the value: some
-- '@domain' other than it, anywhere in the value, JSON keys and array
-- elements included), and how many values. Read-only: each table's
-- text-bearing columns are read by a binary COPY and checked by the stream
-- rewrite in C (check_reads), `jobs` tables at once.
function rewrite.scan(connect, domain, jobs)
  local columns
  do
    local conn <close> = connect()
    columns = rewrite.text_bearing(conn, true)
  end
  local tables, by = {}, {}
  for _, c in ipairs(columns) do
    local key = c.schema .. "." .. c.table
    if not by[key] then
      by[key] = { schema = c.schema, table = c.table, columns = {} }
      tables[#tables + 1] = by[key]
    end
    local list = by[key].columns
    list[#list + 1] = c
  end
  local reads = {}
  for i, t in ipairs(tables) do
    local names, spec = {}, { domain = domain, columns = {} }
    for j, c in ipairs(t.columns) do
      names[j] = quote(c.column)
      spec.columns[j] = { op = "scan", type = c.T }
    end
    reads[i] = { label = quote(t.schema) .. "." .. quote(t.table), spec = spec }
    reads[i].sql = copy_out(reads[i].label, names)
  end
  local found = {}
  for i, list in ipairs(check_reads(connect, jobs, reads)) do
    for j, n in ipairs(list) do
      if n > 0 then found[#found + 1] = { column = tables[i].columns[j], values = n } end
    end
  end
  return found, #columns
end

-- text_bearing(conn) -> every text-bearing column of every table of the
-- database: {schema =, table =, column =, kind =, type = format_type}, by
-- the same description the stream's rewrite uses (step 13 scans these).
function rewrite.text_bearing(conn, with_types)
  local describe = describer(conn, nil)
  local list = {}
  for _, row in ipairs(conn:query([[SELECT n.nspname AS schema, c.relname AS tbl, a.attname AS col,
      a.atttypid AS type_oid, a.atttypmod AS typmod, format_type(a.atttypid, a.atttypmod) AS type
    FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind = 'r' AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''
      AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_'
    ORDER BY 1, 2, a.attnum]])) do
    local T, bearing = describe(tonumber(row.type_oid), tonumber(row.typmod), 0)
    if bearing then
      list[#list + 1] = { schema = row.schema, table = row.tbl, column = row.col, kind = T.kind,
        type = row.type, name = rewrite.column_name(row.schema, row.tbl, row.col),
        T = with_types and T or nil }
    end
  end
  return list
end

return rewrite
