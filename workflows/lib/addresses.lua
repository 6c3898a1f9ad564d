-- addresses.lua: step 13's rewrite of every email address in a sandbox
-- database, set-based, giving exactly what wf.mail's
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
local UPPER, LOWER = "'ABCDEFGHIJKLMNOPQRSTUVWXYZ'", "'abcdefghijklmnopqrstuvwxyz'"

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
  local part = string.format("translate(right(%s, %s - 1), %s, %s)", t, at, UPPER, LOWER)
  local loc = string.format("left(%s, length(%s) - %s)", t, t, at)
  return string.format(
    "CASE WHEN strpos(%s, '@') = 0 THEN %s WHEN %s = %s THEN %s ELSE %s || '_' || %s || '@' || %s END",
    x, x, part, domain, t, loc, part, domain)
end

-- text_sql(x, domain) -> SQL text of x with every address in it rewritten:
-- each "@domain" becomes address_sql("@domain"), i.e. "_domain@<domain>"
-- with the domain part lower-cased, or stays when it is <domain> already;
-- with the local part in front that is exactly address_sql(local@domain).
-- Fast path, one regexp_replace: when no domain part in x has an upper-case
-- letter and none is <domain>, nothing needs lower-casing or skipping.
-- Otherwise x is cut at its "@domain"s and each goes through address_sql.
-- Both paths find the same matches (the same expression, left to right).
function addresses.text_sql(x, domain)
  local re = sql.literal(addresses.AT_DOMAIN_RE)
  local fast = string.format([[%s !~ '@[A-Za-z0-9.-]*[A-Z]' AND strpos(%s, '@' || %s) = 0]], x, x, domain)
  return string.format([[CASE WHEN strpos(%s, '@') = 0 THEN %s
  WHEN %s THEN regexp_replace(%s, %s, '_\1@' || replace(%s, '\', '\\'), 'g')
  ELSE (SELECT coalesce(string_agg(s.parts[m.n] || %s, '' ORDER BY m.n), '') || s.parts[cardinality(s.parts)]
    FROM (SELECT regexp_split_to_array(%s, %s) AS parts) s, regexp_matches(%s, %s, 'g') WITH ORDINALITY AS m(a, n)
    GROUP BY s.parts) END]],
    x, x, fast, x, sql.literal(AT_DOMAIN_PARTS_RE), domain, addresses.address_sql("m.a[1]", domain), x, re, x, re)
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

-- rewrite_column(conn, column, domain) -> rows changed: one UPDATE.
function addresses.rewrite_column(conn, c, domain)
  local col = sql.ident(c.column)
  local expr = c.whole and addresses.address_sql(col, "$1") or addresses.text_sql(col, "$1")
  local tbl = sql.ident(c.schema, c.table)
  -- the new value is computed once per row (OFFSET 0 keeps the planner from
  -- copying the expression into the join filter), only changed rows are written
  return conn:exec(string.format([[UPDATE %s AS t SET %s = s.v
    FROM (SELECT ctid AS row_id, %s AS v FROM %s WHERE strpos(%s, '@') > 0 OFFSET 0) s
    WHERE t.ctid = s.row_id AND s.v IS DISTINCT FROM t.%s]], tbl, col, expr, tbl, col, col),
    addresses.normal_domain(domain))
end

return addresses
