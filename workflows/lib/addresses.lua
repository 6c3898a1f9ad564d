-- addresses.lua: the clone's rewrite (copy_database,
-- rewrite_email_addresses) of every email address in a sandbox database,
-- set-based, giving exactly what wf.mail's
-- mail.sandbox_address(address, domain) gives:
--   trim spaces; split at the last '@'; a domain part equal to `domain`
--   (ASCII case-insensitively) is left as it is; otherwise
--   local '_' lower(domain part) '@' lower(domain); no '@': unchanged.
-- The SQL expression is written once here (address_sql) and tested against
-- mail.sandbox_address in tests/e2e/clone.t. Columns that hold one address
-- are rewritten whole; other text columns have each address inside them
-- (AT_DOMAIN_RE) rewritten by the same expression.
local sql = require "wf.sql"

local addresses = {}

-- What C's isspace() trims: space, \t, \n, \v, \f, \r.
local SPACES = [[E' \t\n\013\f\r']]
-- lower() under the "C" collation maps A-Z only, whatever the database's or
-- the column's collation (and is about 4x cheaper than translate() with
-- the two alphabets).
local function ascii_lower(x)
  return string.format('lower(%s COLLATE "C")', x)
end

-- An address inside free text is local@domain; its rewrite keeps the local
-- part where it is and changes only "@domain", so only that is matched: '@'
-- and a domain of dot-separated labels (a trailing full stop is not taken).
addresses.AT_DOMAIN_RE = [[@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*]]
local AT_DOMAIN_PARTS_RE = [[@([A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*)]]

-- The domain as the rewrite writes it: trimmed, ASCII lower-case.
function addresses.normal_domain(domain)
  return (domain:gsub("^[ \t\n\v\f\r]+", ""):gsub("[ \t\n\v\f\r]+$", ""):gsub("%u", string.lower))
end

-- address_sql(x, domain) -> SQL text of sandbox_address(x, domain); x is a
-- SQL expression of type text, domain a SQL expression holding
-- normal_domain(...) (a $n parameter).
function addresses.address_sql(x, domain)
  local t = string.format("btrim(%s, %s)", x, SPACES)
  local at = string.format("strpos(reverse(%s), '@')", t)
  local part = ascii_lower(string.format("right(%s, %s - 1)", t, at))
  local loc = string.format("left(%s, length(%s) - %s)", t, t, at)
  return string.format(
    "CASE WHEN strpos(%s, '@') = 0 THEN %s WHEN %s = %s THEN %s ELSE %s || '_' || %s || '@' || %s END",
    x, x, part, domain, t, loc, part, domain)
end

-- The slow path of text_sql, as a function of the session (pg_temp: it
-- lives and dies with the connection, nothing is left in the database).
-- x is cut at every '@'; each piece after the first starts with the domain
-- part that AT_DOMAIN_RE matches after that '@' (a domain part holds no '@',
-- so the matches are exactly these, left to right), which becomes
-- address_sql("@domain"): "_domain@<domain>" lower-cased, or stays when it
-- is <domain> already. PL/pgSQL does this loop 2-3 times faster than the
-- same in SQL (a correlated aggregate per row): 111k mixed-case attendee
-- lists, 8.5 s against 16-28 s.
addresses.FUNCTION = "pg_temp.wf_sandbox_text"
addresses.FUNCTION_SQL = string.format([[
CREATE OR REPLACE FUNCTION %s(x text, d text) RETURNS text
LANGUAGE plpgsql IMMUTABLE STRICT AS $wf$
DECLARE
  pieces text[] := string_to_array(x, '@');
  r text := pieces[1];
  piece text;
  dom text;
BEGIN
  FOR i IN 2 .. coalesce(cardinality(pieces), 0) LOOP
    piece := pieces[i];
    dom := substring(piece from %s);
    IF dom IS NULL THEN
      r := r || '@' || piece;
    ELSE
      dom := %s;
      IF dom = d THEN
        r := r || '@' || piece;
      ELSE
        r := r || '_' || dom || '@' || d || substr(piece, length(dom) + 1);
      END IF;
    END IF;
  END LOOP;
  RETURN r;
END
$wf$]], addresses.FUNCTION, sql.literal("^" .. addresses.AT_DOMAIN_RE:sub(2)), ascii_lower("dom"))

-- prepare(conn): defines the session's function that text_sql uses; once
-- per connection, before text_sql runs on it.
function addresses.prepare(conn)
  conn:exec(addresses.FUNCTION_SQL)
end

-- text_sql(x, domain) -> SQL text of x with every address in it rewritten:
-- each "@domain" becomes address_sql("@domain"), i.e. "_domain@<domain>"
-- with the domain part lower-cased, or stays when it is <domain> already;
-- with the local part in front that is exactly address_sql(local@domain).
-- Fast path, one regexp_replace: when no domain part in x has an upper-case
-- letter and none is <domain>, nothing needs lower-casing or skipping.
-- Otherwise the session's FUNCTION (prepare) cuts x at its '@'s.
-- Both paths find the same matches (the same expression, left to right).
function addresses.text_sql(x, domain)
  local fast = string.format([[%s !~ '@[A-Za-z0-9.-]*[A-Z]' AND strpos(%s, '@' || %s) = 0]], x, x, domain)
  return string.format([[CASE WHEN strpos(%s, '@') = 0 THEN %s
  WHEN %s THEN regexp_replace(%s, %s, '_\1@' || replace(%s, '\', '\\'), 'g')
  ELSE %s(%s, %s) END]],
    x, x, fast, x, sql.literal(AT_DOMAIN_PARTS_RE), domain, addresses.FUNCTION, x, domain)
end

-- The text columns of a database's own tables: {table, column, whole}.
-- `whole` when the column holds one address (named in `single`, a set of
-- "table.column", or with "email" in its name).
function addresses.text_columns(conn, single)
  local rows = conn:query([[
    SELECT c.table_schema AS schema, c.table_name AS tbl, c.column_name AS col
    FROM information_schema.columns c JOIN information_schema.tables t
      ON t.table_schema = c.table_schema AND t.table_name = c.table_name
    WHERE t.table_type = 'BASE TABLE' AND c.data_type IN ('text', 'character varying')
      AND c.table_schema NOT IN ('pg_catalog', 'information_schema')
      AND c.is_generated = 'NEVER'
    ORDER BY 1, 2, 3]])
  local columns = {}
  for _, r in ipairs(rows) do
    local name = r.tbl .. "." .. r.col
    columns[#columns + 1] = { schema = r.schema, table = r.tbl, column = r.col, name = name,
      whole = (single and single[name]) or r.col:find("email", 1, true) ~= nil }
  end
  return columns
end

-- tables(columns) -> the columns grouped by table, in order:
-- {{schema=, table=, name=, columns={...}}, ...}
function addresses.tables(columns)
  local list, by = {}, {}
  for _, c in ipairs(columns) do
    local key = c.schema .. "." .. c.table
    local t = by[key]
    if not t then
      t = { schema = c.schema, table = c.table, name = key, columns = {} }
      by[key] = t
      list[#list + 1] = t
    end
    t.columns[#t.columns + 1] = c
  end
  return list
end

-- update_sql(tbl, range) -> one UPDATE of every text column of a table ($1:
-- the normal domain), as a query returning one row: n1..nk, how many values
-- of each column changed. The new values are computed once per row in a
-- subquery (OFFSET 0 keeps the planner from copying the expressions into
-- the join filter) over the rows with an '@' in some column; only rows where
-- some value changes are written (a row written is a new row version and an
-- entry in every index, so unchanged rows are left alone). `range`, when
-- given, is {first, last} heap blocks: only the rows stored there (a TID
-- range scan), so a big table can be rewritten in pieces, concurrently.
function addresses.update_sql(tbl, range)
  local name = sql.ident(tbl.schema, tbl.table)
  local where = {}
  local sets, news, diffs, returning, counts, anyat = {}, {}, {}, {}, {}, {}
  for i, c in ipairs(tbl.columns) do
    local col = sql.ident(c.column)
    local expr = c.whole and addresses.address_sql(col, "$1") or addresses.text_sql(col, "$1")
    sets[i] = string.format("%s = s.v%d", col, i)
    news[i] = string.format("%s AS v%d", expr, i)
    diffs[i] = string.format("q.v%d IS DISTINCT FROM q.o%d AS d%d", i, i, i)
    returning[i] = "s.d" .. i
    counts[i] = string.format("count(*) FILTER (WHERE d%d) AS n%d", i, i)
    anyat[i] = string.format("strpos(%s, '@') > 0", col)
  end
  where[1] = "(" .. table.concat(anyat, " OR ") .. ")"
  local trange = ""
  if range then
    local r = string.format("ctid >= '(%d,0)'::tid AND ctid < '(%d,0)'::tid", range[1], range[2])
    where[2] = r
    trange = " AND t." .. r
  end
  local olds = {}
  for i, c in ipairs(tbl.columns) do olds[i] = string.format("%s AS o%d", sql.ident(c.column), i) end
  local anydiff = {}
  for i in ipairs(tbl.columns) do anydiff[i] = "s.d" .. i end
  return string.format([[WITH u AS (
  UPDATE %s AS t SET %s
  FROM (SELECT q.row_id, %s, %s
    FROM (SELECT ctid AS row_id, %s, %s FROM %s WHERE %s OFFSET 0) q) s
  WHERE t.ctid = s.row_id%s AND (%s)
  RETURNING %s)
SELECT %s FROM u]],
    name, table.concat(sets, ", "),
    (function() local v = {} for i in ipairs(tbl.columns) do v[i] = "q.v" .. i end return table.concat(v, ", ") end)(),
    table.concat(diffs, ", "),
    table.concat(olds, ", "), table.concat(news, ", "), name, table.concat(where, " AND "),
    trange, table.concat(anydiff, " OR "), table.concat(returning, ", "), table.concat(counts, ", "))
end

-- count_changes(conn, tbl, domain) -> {["table.column"] = values the
-- rewrite would change}, by one read-only SELECT (the dry-run's count):
-- a whole-address column changes where address_sql differs; a text column
-- where some address in it has a domain part other than <domain> (the
-- rewrite leaves those equal to it, ASCII case-insensitively, as they are).
function addresses.count_changes(conn, tbl, domain)
  local counts = {}
  for i, c in ipairs(tbl.columns) do
    local col = sql.ident(c.column)
    local changes = c.whole and string.format("%s IS DISTINCT FROM %s", addresses.address_sql(col, "$1"), col)
      or string.format([[EXISTS (SELECT 1 FROM regexp_matches(%s, %s, 'g') AS m(p)
        WHERE %s <> $1)]], col, sql.literal(AT_DOMAIN_PARTS_RE), ascii_lower("m.p[1]"))
    counts[i] = string.format("count(*) FILTER (WHERE strpos(%s, '@') > 0 AND %s) AS n%d", col, changes, i)
  end
  local row = conn:one(string.format("SELECT %s FROM %s", table.concat(counts, ", "),
    sql.ident(tbl.schema, tbl.table)), addresses.normal_domain(domain)) or {}
  local changed = {}
  for i, c in ipairs(tbl.columns) do changed[c.name] = tonumber(row["n" .. i]) or 0 end
  return changed
end

-- Session settings for a rewrite transaction: no JIT (compiling these
-- expressions costs ~1.7 s per statement and wins nothing back), and room
-- for the self-join's hash in memory.
addresses.SETTINGS = { "SET LOCAL jit = off", "SET LOCAL work_mem = '64MB'" }

-- rewrite_table(conn, tbl, domain, range) -> {["table.column"] = values
-- changed}: one transaction, one UPDATE.
function addresses.rewrite_table(conn, tbl, domain, range)
  local changed = {}
  conn:tx(function()
    for _, s in ipairs(addresses.SETTINGS) do conn:exec(s) end
    local rows = conn:query(addresses.update_sql(tbl, range), addresses.normal_domain(domain))
    local row = rows and rows[1] or {}
    for i, c in ipairs(tbl.columns) do changed[c.name] = tonumber(row["n" .. i]) or 0 end
  end)
  return changed
end

-- blocks(conn, tbl) -> the table's size in heap blocks
function addresses.blocks(conn, tbl)
  return tonumber(conn:scalar(
    "SELECT pg_relation_size($1::regclass) / current_setting('block_size')::bigint",
    sql.ident(tbl.schema, tbl.table))) or 0
end

-- work(conn, tables, pieces) -> units of work, biggest first: {tbl=, range=,
-- blocks=}; a table bigger than `chunk` blocks is cut into block ranges of
-- about that size (the last one reaching the end at planning time: rows
-- an UPDATE moves go to new blocks past it, already rewritten).
function addresses.work(conn, tables, chunk)
  local units = {}
  for _, t in ipairs(tables) do
    local n = addresses.blocks(conn, t)
    if n <= chunk then
      units[#units + 1] = { tbl = t, blocks = n }
    else
      local pieces = math.ceil(n / chunk)
      local size = math.ceil(n / pieces)
      for first = 0, n - 1, size do
        units[#units + 1] = { tbl = t, blocks = math.min(size, n - first),
          range = { first, math.min(first + size, n) } }
      end
    end
  end
  table.sort(units, function(a, b)
    if a.blocks ~= b.blocks then return a.blocks > b.blocks end
    return a.tbl.name < b.tbl.name
  end)
  return units
end

-- rewrite(ctx, connect, tables, domain, opts) -> {["table.column"] = values
-- changed}, total. `workers` connections (connect() opens one) take units
-- of work() off one queue, biggest first, each in its own transaction, via
-- ctx:parallel. A unit that fails cancels the rest: the rewrite is then
-- partly committed, but it is idempotent (a rewritten value rewrites to
-- itself), so a retry or a resume finishes it. opts: workers (default 4),
-- chunk (blocks per unit, default 4096 = 32 MB), progress(done, total).
function addresses.rewrite(ctx, connect, tables, domain, opts)
  opts = opts or {}
  local workers, chunk = opts.workers or 4, opts.chunk or 4096
  local units
  do
    local conn <close> = connect()
    units = addresses.work(conn, tables, chunk)
  end
  local changed, total, next_unit, done, blocks, done_blocks = {}, 0, 1, 0, 0, 0
  for _, u in ipairs(units) do blocks = blocks + math.max(u.blocks, 1) end
  local function worker()
    local conn <close> = connect()
    addresses.prepare(conn)
    while next_unit <= #units do
      local u = units[next_unit]
      next_unit = next_unit + 1
      local n = addresses.rewrite_table(conn, u.tbl, domain, u.range)
      for name, k in pairs(n) do
        changed[name] = (changed[name] or 0) + k
        total = total + k
      end
      done, done_blocks = done + 1, done_blocks + math.max(u.blocks, 1)
      if opts.progress then opts.progress(done_blocks, blocks, done, #units) end
    end
  end
  local fns = {}
  for i = 1, math.min(workers, #units) do fns[i] = worker end
  if #fns > 0 then ctx:parallel(fns, { limit = #fns }) end
  return changed, total, #units
end

-- leak_sql(x, domain) -> SQL condition, true when the text x holds an
-- address outside `domain` (a Lua string): some '@' followed by a domain
-- part (AT_DOMAIN_RE) other than the normal domain. Every "@<domain>" not
-- followed by more of a domain part is taken out first (ASCII letters in
-- either case), then any '@' before a domain character left is a
-- production address.
function addresses.leak_sql(x, domain)
  local d = addresses.normal_domain(domain)
  local pattern = "@" .. d:gsub("%a", function(c) return "[" .. c:lower() .. c:upper() .. "]" end)
      :gsub("([^%w%[%]])", "\\%1") .. [[(?![A-Za-z0-9-]|\.[A-Za-z0-9-])]]
  return string.format([[(strpos(%s, '@') > 0 AND regexp_replace(%s, %s, '', 'g') ~ '@[A-Za-z0-9-]')]],
    x, x, sql.literal(pattern))
end

-- find_leaks(conn, columns, domain, opts) -> {{column =, values =}, ...}:
-- how many values of each column ({schema, table, column}) hold an address
-- outside domain, one read-only scan per table (cast to text: arrays,
-- json, composites included), tables spread over opts.parallel (a function
-- running a list of functions at once; default one after the other) on
-- connections from opts.connect (default conn).
function addresses.find_leaks(conn, columns, domain, opts)
  opts = opts or {}
  local found, fns = {}, {}
  for _, t in ipairs(addresses.tables(columns)) do
    fns[#fns + 1] = function()
      local exprs = {}
      for i, c in ipairs(t.columns) do
        exprs[i] = string.format("count(*) FILTER (WHERE %s) AS n%d",
          addresses.leak_sql(sql.ident(c.column) .. "::text", domain), i)
      end
      local function scan(db)
        return db:one(string.format("SELECT %s FROM %s", table.concat(exprs, ", "),
          sql.ident(t.schema, t.table)))
      end
      local row
      if opts.connect then
        local own <close> = opts.connect()
        row = scan(own)
      else
        row = scan(conn)
      end
      for i, c in ipairs(t.columns) do
        local n = tonumber(row["n" .. i]) or 0
        if n > 0 then found[#found + 1] = { column = c, values = n } end
      end
    end
  end
  if opts.parallel and #fns > 1 then opts.parallel(fns) else for _, fn in ipairs(fns) do fn() end end
  table.sort(found, function(a, b) return a.column.name < b.column.name end)
  return found
end

-- fix_leaks(conn, leaks, domain) -> values rewritten in place: each column
-- found by find_leaks rewritten through its text form by the free-text
-- rule (every address in it: a whole-value column that leaks holds more
-- than one) and cast back to its type, only in the rows that leak.
function addresses.fix_leaks(conn, leaks, domain)
  local d = addresses.normal_domain(domain)
  local total = 0
  addresses.prepare(conn)
  for _, leak in ipairs(leaks) do
    local c = leak.column
    local col = sql.ident(c.column) .. "::text"
    local expr = addresses.text_sql(col, "$1")
    local n = conn:exec(string.format("UPDATE %s SET %s = (%s)::%s WHERE %s", sql.ident(c.schema, c.table),
      sql.ident(c.column), expr, c.type, addresses.leak_sql(col, domain)), d)
    total = total + (tonumber(n) or 0)
  end
  return total
end

return addresses
