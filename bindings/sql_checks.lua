-- sql_checks.lua (module "wf.sql_checks"): the CHECK constraints that see a
-- column copy_database rewrites in its stream (docs/modules.md, wf.sql,
-- "The check rule"). A rewritten value can fail a CHECK its production
-- value passed (a length, a pattern, the production domain), which would
-- fail the whole COPY. Such constraints are dropped on the target before
-- the data is loaded and added back after it, validated; the rows that
-- fail one get the fallback, a short sandbox address; a constraint that no
-- fallback satisfies is added NOT VALID and reported.
local copy = require "wf.sql.copy"

local checks = {}

-- $1, $2, $3: schema, table and column of each rewritten column on the
-- target. One row per (constraint, table, column) it sees: a table's CHECK
-- whose columns include a rewritten one, on its table or on an ancestor
-- (where it is defined, conislocal: dropped and added there, ALTER TABLE
-- recurses), and a domain's CHECK on a rewritten column's type or a domain
-- under it. Those not inherited first: dropping them first leaves a child's
-- merged copy (legacy INHERITS, defined in both) its own, which is then
-- dropped; added back in the reverse order, the parent's merges with it.
checks.SQL = [[
WITH RECURSIVE rw AS (
  SELECT c.oid AS relid, a.attname, a.atttypid, format('%I.%I', n.nspname, c.relname) AS tbl, r.fixable
  FROM unnest($1::text[], $2::text[], $3::text[], $4::bool[]) AS r(nsp, rel, col, fixable)
    JOIN pg_namespace n ON n.nspname = r.nsp
    JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = r.rel
    JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = r.col),
up(relid, attname, tbl, fixable, ancestor) AS (
  SELECT relid, attname, tbl, fixable, relid FROM rw
  UNION SELECT up.relid, up.attname, up.tbl, up.fixable, i.inhparent
  FROM up JOIN pg_inherits i ON i.inhrelid = up.ancestor),
doms(relid, attname, tbl, fixable, typ) AS (
  SELECT relid, attname, tbl, fixable, atttypid FROM rw
  UNION SELECT d.relid, d.attname, d.tbl, d.fixable, t.typbasetype FROM doms d JOIN pg_type t ON t.oid = d.typ
  WHERE t.typtype = 'd')
SELECT k.oid::bigint AS oid, k.coninhcount AS inherited, k.conname AS name, 'table' AS kind,
  pg_get_constraintdef(k.oid) AS def,
  format('%I.%I', n.nspname, o.relname) AS owner, NULL AS base, up.tbl, up.relid::bigint AS relid,
  up.attname AS col, up.fixable
FROM up JOIN pg_constraint k ON k.conrelid = up.ancestor AND k.contype = 'c' AND k.conislocal
  JOIN pg_attribute ka ON ka.attrelid = k.conrelid AND ka.attnum = ANY (k.conkey) AND ka.attname = up.attname
  JOIN pg_class o ON o.oid = k.conrelid JOIN pg_namespace n ON n.oid = o.relnamespace
UNION ALL
SELECT k.oid, 0, k.conname, 'domain', pg_get_constraintdef(k.oid), format('%I.%I', n.nspname, t.typname),
  format_type(t.typbasetype, t.typtypmod), d.tbl, d.relid, d.attname, d.fixable
FROM doms d JOIN pg_constraint k ON k.contypid = d.typ AND k.contype = 'c'
  JOIN pg_type t ON t.oid = k.contypid JOIN pg_namespace n ON n.oid = t.typnamespace
ORDER BY 2, 1, 8, 10]]

local function quote(name) return '"' .. name:gsub('"', '""') .. '"' end

local function array(list)
  local parts = {}
  for i, v in ipairs(list) do parts[i] = v == false and "NULL" or '"' .. v:gsub('[\\"]', "\\%0") .. '"' end
  return "{" .. table.concat(parts, ",") .. "}"
end

-- find(target, tables) -> the CHECK constraints on the target that see a
-- column rewritten in tables (rewrite.tables planned them), each {oid,
-- name, kind = "table"|"domain", def, owner, base, columns = {{tbl, relid,
-- col, fixable}}}; one catalog query, none without rewritten columns.
function checks.find(target, tables)
  local schemas, names, cols, fixable = {}, {}, {}, {}
  for _, t in ipairs(tables) do
    for j, entry in ipairs(t.rewrite and t.rewrite.columns or {}) do
      local c = t.rewrite_columns[j]
      if c and entry.op ~= "keep" then
        local n = #schemas + 1
        schemas[n], names[n], cols[n] = t.schema, t.name, c.column
        fixable[n] = entry.type.kind == "text" and "t" or "f"
      end
    end
  end
  if #schemas == 0 then return {} end
  local list, by = {}, {}
  for _, row in ipairs(target:query(checks.SQL, array(schemas), array(names), array(cols),
      array(fixable))) do
    local k = by[row.oid]
    if not k then
      k = { oid = row.oid, name = row.name, kind = row.kind, def = row.def, owner = row.owner,
        base = row.base, columns = {} }
      by[row.oid] = k
      list[#list + 1] = k
    end
    k.columns[#k.columns + 1] = { tbl = row.tbl, relid = row.relid, col = row.col,
      fixable = row.fixable == true or row.fixable == "t" }
  end
  return list
end

local function alter(k) return (k.kind == "domain" and "ALTER DOMAIN " or "ALTER TABLE ") .. k.owner end

-- drop(target, list): the constraints dropped, before the data is loaded.
function checks.drop(target, list)
  local statements = {}
  for i, k in ipairs(list) do statements[i] = alter(k) .. " DROP CONSTRAINT " .. quote(k.name) .. ";" end
  if #statements > 0 then target:_run(table.concat(statements, "\n")) end
end

local function chars(s) return utf8.len(s) or #s end

-- The fallback of rewritten value r in at most `limit` characters: the fit
-- rule's forms (P.H@d, or H@d with H cut to fit) from the stream's own C
-- rule, with r as the original (the production value is no longer at
-- hand); a limit r already keeps (the last probe, 17 + length(d)): H@d.
local function fallback(r, domain, limit)
  if chars(r) <= limit then return copy.rewrite_text("hash", r, domain) .. "@" .. domain end
  return copy.rewrite_text("fit", r, domain, limit)
end

-- The violating rows seen through one of k's rewritten columns (by
-- tableoid and ctid): "rel id" -> {rel, id, values = {col = value}}.
local function violators(target, k, scope)
  local where
  if k.kind == "domain" then
    where = "NOT pg_temp.wf_check_ok(" .. quote(scope.cols[1]) .. ")"
  else
    where = "NOT COALESCE((" .. k.def:match("^CHECK (%b())") .. "), true)"
  end
  local select = { "tableoid::bigint AS rel", "ctid::text AS id" }
  for i, col in ipairs(scope.cols) do select[#select + 1] = quote(col) .. "::text AS c" .. i end
  local found = {}
  for _, row in ipairs(target:query("SELECT " .. table.concat(select, ", ") .. " FROM "
      .. (k.kind == "domain" and "ONLY " or "") .. scope.from .. " WHERE " .. where)) do
    local values = {}
    for i, col in ipairs(scope.cols) do values[col] = row["c" .. i] end
    found[row.rel .. " " .. row.id] = { rel = row.rel, id = row.id, values = values }
  end
  return found
end

-- Sets each row's fixable rewritten columns to its fallback at its limit
-- (row.limit; nil: back to the stream's value), updating row.rel and row.id.
local function set(target, k, scope, rows, domain)
  if #rows == 0 then return end
  local rels, ids, sets, arrays = {}, {}, {}, {}
  for i, col in ipairs(scope.cols) do
    arrays[i] = {}
    if scope.fixable[col] then
      sets[#sets + 1] = string.format("%s = COALESCE(v.c%d, t.%s)", quote(col), i, quote(col))
    end
  end
  if #sets == 0 then return end
  for n, row in ipairs(rows) do
    rels[n], ids[n] = tostring(row.rel), row.id
    for i, col in ipairs(scope.cols) do
      local r = row.values[col]
      local v = r and scope.fixable[col] and (row.limit and fallback(r, domain, row.limit) or r)
      arrays[i][n] = v or false
    end
  end
  local names, params = { "rel", "id", "n" }, { array(rels), array(ids) }
  local types = { "$1::oid[]", "$2::tid[]", "$3::int[]" }
  local ordinals = {}
  for n = 1, #rows do ordinals[n] = tostring(n) end
  params[3] = array(ordinals)
  for i in ipairs(scope.cols) do
    names[#names + 1] = "c" .. i
    params[#params + 1] = array(arrays[i])
    types[#types + 1] = "$" .. #params .. "::text[]"
  end
  local statement = string.format("UPDATE %s%s AS t SET %s FROM unnest(%s) AS v(%s) "
    .. "WHERE t.tableoid = v.rel AND t.ctid = v.id RETURNING v.n, t.tableoid::bigint AS rel, t.ctid::text AS id",
    k.kind == "domain" and "ONLY " or "", scope.from, table.concat(sets, ", "), table.concat(types, ", "),
    table.concat(names, ", "))
  for _, moved in ipairs(target:query(statement, table.unpack(params))) do
    rows[moved.n].rel, rows[moved.n].id = moved.rel, moved.id
  end
end

-- The scopes of k: where its violators are looked for and fixed, each
-- {from = relation, cols = {rewritten columns}, fixable = {col = bool}}.
-- A table's constraint: its own relation (with its descendants); a
-- domain's: each table with a rewritten column of it.
local function scopes(k)
  local list, by = {}, {}
  for _, c in ipairs(k.columns) do
    local from = k.kind == "domain" and c.tbl or k.owner
    local key = from .. (k.kind == "domain" and ("\0" .. c.col) or "")
    local s = by[key]
    if not s then
      s = { from = from, cols = {}, fixable = {}, seen = {} }
      by[key] = s
      list[#list + 1] = s
    end
    if not s.seen[c.col] then
      s.seen[c.col] = true
      s.cols[#s.cols + 1] = c.col
    end
    s.fixable[c.col] = s.fixable[c.col] or c.fixable
  end
  return list
end

-- Gives the violating rows of one scope the longest fallback k accepts,
-- by bisection on its length (from length(d) + 2 to one less than the
-- stream's value), then H@d for those no length satisfied; those rows
-- none satisfies get the stream's value back. -> rows given a fallback.
local function fix_scope(target, k, scope, domain)
  local found, rows = violators(target, k, scope), {}
  for _, row in pairs(found) do
    local longest = 0
    for col, r in pairs(row.values) do
      if scope.fixable[col] then longest = math.max(longest, chars(r)) end
    end
    row.lo, row.hi = #domain + 2, longest - 1
    rows[#rows + 1] = row
  end
  local function probe(list)
    set(target, k, scope, list, domain)
    local now = violators(target, k, scope)
    for _, row in ipairs(list) do row.ok = not now[row.rel .. " " .. row.id] end
  end
  while true do
    local searching = {}
    for _, row in ipairs(rows) do
      if row.lo <= row.hi then
        row.limit = (row.lo + row.hi + 1) // 2
        searching[#searching + 1] = row
      end
    end
    if #searching == 0 then break end
    probe(searching)
    for _, row in ipairs(searching) do
      if row.ok then row.best, row.lo = row.limit, row.limit + 1 else row.hi = row.limit - 1 end
    end
  end
  local last, settle = {}, {}
  for _, row in ipairs(rows) do
    row.limit = row.best or 17 + #domain
    if not row.best then last[#last + 1] = row elseif not row.ok then settle[#settle + 1] = row end
  end
  probe(last)
  for _, row in ipairs(last) do
    if not row.ok then
      row.limit = nil
      settle[#settle + 1] = row
    end
  end
  set(target, k, scope, settle, domain)
  local fixed = 0
  for _, row in ipairs(rows) do if row.limit then fixed = fixed + 1 end end
  return fixed
end

local function add(target, k, not_valid)
  target:_run(alter(k) .. " ADD CONSTRAINT " .. quote(k.name) .. " " .. k.def .. (not_valid and " NOT VALID" or ""))
end

local function try_add(target, k)
  local ok, err = pcall(add, target, k)
  if ok then return true end
  if type(err) == "table" and err.code == "23514" then return false end
  error(err, 0)
end

-- The rows of k's scopes that violate it (after its fallback).
local function count_violators(target, k)
  local n = 0
  for _, scope in ipairs(scopes(k)) do
    for _ in pairs(violators(target, k, scope)) do n = n + 1 end
  end
  return n
end

-- For a domain's constraint: pg_temp.wf_check_ok(value) -> whether value
-- passes it (a temporary domain of the same base type and check: the
-- domain's own is dropped while its violators are found).
local function domain_probe(target, k)
  target:_run("DROP FUNCTION IF EXISTS pg_temp.wf_check_ok;\nDROP DOMAIN IF EXISTS pg_temp.wf_check;\n"
    .. "CREATE DOMAIN pg_temp.wf_check AS " .. k.base .. " " .. k.def .. ";\n"
    .. "CREATE FUNCTION pg_temp.wf_check_ok(v " .. k.base .. ") RETURNS boolean LANGUAGE plpgsql AS "
    .. "$f$BEGIN PERFORM v::pg_temp.wf_check; RETURN true; "
    .. "EXCEPTION WHEN check_violation THEN RETURN false; END$f$")
end

-- restore(target, list, domain, log) -> {fallback = rows given one,
-- unchecked = {{constraint, table, kind, rows}}}: each constraint added
-- back, validated; on a check violation its rows get the fallback and it
-- is added again; when it still fails, it is added NOT VALID.
function checks.restore(target, list, domain, log)
  local report = { fallback = 0, unchecked = {} }
  domain = domain:match("^%s*(.-)%s*$"):lower()
  for i = #list, 1, -1 do
    local k = list[i]
    if not try_add(target, k) then
      if k.kind == "domain" then domain_probe(target, k) end
      for _, scope in ipairs(scopes(k)) do
        report.fallback = report.fallback + fix_scope(target, k, scope, domain)
      end
      if not try_add(target, k) then
        local rows = count_violators(target, k)
        add(target, k, true)
        report.unchecked[#report.unchecked + 1] = { constraint = k.name, table = k.owner, kind = k.kind,
          rows = rows }
        log("warn", "CHECK constraint %s on %s added NOT VALID: %d rewritten rows fail it and no "
          .. "sandbox address satisfies it", k.name, k.owner, rows)
      end
    end
  end
  return report
end

return checks
