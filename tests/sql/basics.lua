-- basics.lua: wf.sql type mapping, parameters, errors and transactions
-- against a real server. Run by basics.t.
local sql = require "wf.sql"
local tap = require "tap"

local function check_types(ctx)
  local db <close> = sql.connect(ctx.params.dsn)
  local row = db:one([[SELECT 1::int2 AS i2, 2147483647::int4 AS i4,
    9223372036854775807::int8 AS i8, (-9223372036854775808)::int8 AS i8min, 42::oid AS o,
    true AS t, false AS f, NULL::text AS n, 1.5::float4 AS f4, 0.1::float8 AS f8,
    'Infinity'::float8 AS inf, 'NaN'::float8 AS nan,
    12345678901234567890.123456789::numeric AS num, 'NaN'::numeric AS numnan,
    '\x00ff41'::bytea AS b, '{1,2,NULL}'::int[] AS arr, '{"a": [1, 2]}'::jsonb AS j,
    'héllo wörld ✓'::text AS u, E'tab\there\nnl \\ bs'::text AS esc,
    '2024-01-02'::date AS d, '1 day'::interval AS iv, 'x'::char(3) AS ch,
    '00000000-0000-0000-0000-000000000001'::uuid AS id]])
  tap.is(row.i2, 1, "int2 -> integer")
  tap.is(row.i4, 2147483647, "int4 -> integer")
  tap.is(row.i8, math.maxinteger, "int8 max -> exact integer")
  tap.is(row.i8min, math.mininteger, "int8 min -> exact integer")
  tap.is(row.o, 42, "oid -> integer")
  tap.is(row.t, true, "bool true")
  tap.is(row.f, false, "bool false")
  tap.is(row.n, nil, "NULL -> nil")
  tap.is(row.f4, 1.5, "float4 -> float")
  tap.is(row.f8, 0.1, "float8 -> float, exact round trip")
  tap.is(row.inf, math.huge, "Infinity -> math.huge")
  tap.ok(row.nan ~= row.nan, "NaN -> nan")
  tap.is(row.num, "12345678901234567890.123456789", "numeric -> string, no precision lost")
  tap.is(row.numnan, "NaN", "numeric NaN -> string")
  tap.is(row.b, "\0\255A", "bytea -> raw bytes")
  tap.is(row.arr, "{1,2,NULL}", "array -> text")
  tap.is(row.j, '{"a": [1, 2]}', "jsonb -> text")
  tap.is(row.u, "héllo wörld ✓", "non-ASCII text")
  tap.is(row.esc, "tab\there\nnl \\ bs", "tabs, newlines, backslashes")
  tap.is(row.d, "2024-01-02", "date -> text")
  tap.is(row.iv, "1 day", "interval -> text")
  tap.is(row.ch, "x  ", "char(n) keeps padding")
  tap.is(row.id, "00000000-0000-0000-0000-000000000001", "uuid -> text")
  tap.is(db:scalar("SELECT NULL"), nil, "scalar NULL -> nil")
  tap.is(db:scalar("SELECT 1 WHERE false"), nil, "scalar of no rows -> nil")
  tap.is(db:one("SELECT 1 WHERE false"), nil, "one of no rows -> nil")
  local rows = db:query("SELECT g AS n FROM generate_series(1, 3) g ORDER BY g")
  tap.is(#rows, 3, "query returns every row")
  tap.is(rows[3].n, 3, "rows keyed by column name")
  tap.is(#db:query("SELECT 1 WHERE false"), 0, "query of no rows -> empty array")
  tap.is(db:scalar("SELECT 1; SELECT 2"), 2, "several statements without parameters: last result")
end

local function check_params(ctx)
  local db <close> = sql.connect(ctx.params.dsn)
  local hostile = {
    "'; DROP TABLE victims; --", "Robert'); DROP TABLE students;--", "back\\slash",
    "$1", "dollar $$ quote", "E'\\x41'", "multi\nline\r\n", "\"double\"", "tab\t", "ünïcødé",
    string.rep("x", 100000),
  }
  db:exec("CREATE TEMP TABLE victims (v text)")
  for i, value in ipairs(hostile) do
    tap.is(db:scalar("SELECT $1::text", value), value, "hostile parameter " .. i .. " round trips")
    db:exec("INSERT INTO victims VALUES ($1)", value)
  end
  tap.is(db:scalar("SELECT count(*) FROM victims"), #hostile, "hostile values stored as data")
  tap.is(db:scalar("SELECT $1::int8", math.maxinteger), math.maxinteger, "integer parameter exact")
  tap.is(db:scalar("SELECT $1::float8", 0.1), 0.1, "float parameter exact")
  tap.is(db:scalar("SELECT $1::float8", math.huge), math.huge, "infinite parameter")
  tap.is(db:scalar("SELECT $1::bool", true), true, "boolean parameter")
  tap.is(db:scalar("SELECT $1::text IS NULL", nil), true, "nil parameter is NULL")
  tap.is(db:scalar("SELECT $1::numeric + 1", "99999999999999999999.5"), "100000000000000000000.5",
    "numeric as string parameter")
  local bytes = "\0\1\2\255'\\"
  tap.is(db:scalar("SELECT $1::bytea", sql.bytea(bytes)), bytes, "sql.bytea parameter with NUL")
  tap.is(db:scalar("SELECT length($1)", sql.bytea(bytes)), 6, "bytea parameter length")
  local err = tap.raises(function() db:scalar("SELECT $1", "a\0b") end, "NUL in a text parameter")
  tap.like(tostring(err), "NUL", "NUL error says so")
  tap.raises(function() db:scalar("SELECT $1", {}) end, "table parameter refused")
  tap.is(db:exec("UPDATE victims SET v = v WHERE v LIKE $1", "%DROP%"), 2, "exec -> affected rows")
  tap.is(db:exec("CREATE TEMP TABLE t2 (a int)"), 0, "exec of DDL -> 0")
  -- quoting helpers
  tap.is(sql.ident("a"), '"a"', "ident")
  tap.is(sql.ident('we"ird', "Tab le"), '"we""ird"."Tab le"', "ident quotes and joins")
  tap.is(sql.literal("it's"), "'it''s'", "literal quotes")
  tap.is(sql.literal("a\\b"), "E'a\\\\b'", "literal with backslash uses E''")
  tap.is(sql.literal(nil), "NULL", "literal nil")
  tap.is(sql.literal(42), "42", "literal integer")
  tap.is(sql.literal(true), "TRUE", "literal boolean")
  for i, value in ipairs(hostile) do
    tap.is(db:scalar("SELECT " .. sql.literal(value) .. "::text"), value, "literal " .. i .. " round trips")
  end
  local odd = 'Odd "name"; DROP'
  db:exec("CREATE TEMP TABLE " .. sql.ident(odd) .. " (" .. sql.ident("col ✓") .. " int)")
  db:exec("INSERT INTO " .. sql.ident(odd) .. " VALUES (7)")
  tap.is(db:scalar("SELECT " .. sql.ident("col ✓") .. " FROM " .. sql.ident(odd)), 7, "ident round trips")
  tap.raises(function() sql.ident("") end, "empty identifier refused")
end

local function check_errors(ctx)
  local db <close> = sql.connect(ctx.params.dsn)
  local function expect(query, code, retryable, name, ...)
    local err = tap.raises(function(...) db:query(query, ...) end, name, ...)
    tap.is(type(err) == "table" and err.kind, "sql", name .. ": kind sql")
    tap.is(type(err) == "table" and err.code, code, name .. ": SQLSTATE " .. code)
    tap.is(type(err) == "table" and err.retryable, retryable, name .. ": retryable " .. tostring(retryable))
    return err
  end
  local e = expect("SELEC 1", "42601", false, "syntax error")
  tap.is(e.position, 1, "syntax error position")
  expect("SELECT * FROM no_such_table", "42P01", false, "undefined table")
  expect("SELECT 1/0", "22012", false, "division by zero")
  db:exec("CREATE TEMP TABLE u (id int PRIMARY KEY, v int CHECK (v > 0))")
  db:exec("INSERT INTO u VALUES (1, 1)")
  e = expect("INSERT INTO u VALUES (1, 1)", "23505", false, "unique violation")
  tap.is(e.constraint, "u_pkey", "constraint name given")
  tap.like(e.detail, "already exists", "detail given")
  expect("INSERT INTO u VALUES (2, -1)", "23514", false, "check violation")
  expect("SELECT $1::int", "22P02", false, "bad parameter value", "abc")
  expect("DO $$ BEGIN RAISE EXCEPTION USING ERRCODE = '40001', MESSAGE = 'ser'; END $$",
    "40001", true, "serialization failure")
  expect("DO $$ BEGIN RAISE EXCEPTION USING ERRCODE = '40P01', MESSAGE = 'dl'; END $$",
    "40P01", true, "deadlock")
  expect("DO $$ BEGIN RAISE EXCEPTION USING ERRCODE = '57P01', MESSAGE = 'x'; END $$",
    "57P01", true, "admin shutdown")
  expect("DO $$ BEGIN RAISE EXCEPTION USING ERRCODE = '53300', MESSAGE = 'x'; END $$",
    "53300", true, "too many connections")
  expect("DO $$ BEGIN RAISE EXCEPTION USING ERRCODE = '08006', MESSAGE = 'x'; END $$",
    "08006", true, "connection class 08")
  e = expect("DO $$ BEGIN RAISE EXCEPTION 'custom' USING HINT = 'try again'; END $$",
    "P0001", false, "raise exception")
  tap.is(e.hint, "try again", "hint given")
  tap.like(tostring(e), "custom", "tostring shows the message")
  tap.is(db:scalar("SELECT 1"), 1, "connection usable after errors")
  -- connection-level failures
  local bad = ctx.params.dsn:gsub("port=%d+", "port=1")
  local err = tap.raises(function() sql.connect(bad) end, "connect to a closed port")
  tap.is(err.kind, "sql", "connect failure kind")
  tap.is(err.retryable, true, "connect failure retryable")
  tap.like(err.message, "cannot connect to", "connect failure message")
  err = tap.raises(function() sql.connect(ctx.params.dsn .. " password=sup3rsecret dbname=nodb") end,
    "connect to a missing database")
  tap.ok(not tostring(err):find("sup3rsecret"), "password not in the connect error")
  tap.like(err.message, "password=%*%*%*", "DSN shown with ***")
  err = tap.raises(function() sql.connect("host=x password=tops3cret foo") end, "malformed DSN")
  tap.ok(not tostring(err):find("tops3cret"), "password not in the parse error")
  err = tap.raises(function() sql.connect("postgresql://u:tops3cret@host:notaport/db") end, "malformed URI")
  tap.ok(not tostring(err):find("tops3cret"), "password not in the URI error")
  -- a backend killed under us: lost connection, retryable, handle closed
  local victim = sql.connect(ctx.params.dsn)
  local pid = victim:scalar("SELECT pg_backend_pid()")
  db:scalar("SELECT pg_terminate_backend($1)", pid)
  err = tap.raises(function() victim:scalar("SELECT 1") end, "query on a terminated backend")
  tap.is(err.retryable, true, "terminated backend: retryable")
  err = tap.raises(function() victim:scalar("SELECT 1") end, "then the handle is closed")
  tap.like(err.message, "connection is closed", "closed handle says so")
  -- closing
  local c = sql.connect(ctx.params.dsn)
  c:close()
  c:close()
  tap.ok(true, "close twice is fine")
  err = tap.raises(function() c:query("SELECT 1") end, "query after close")
  tap.like(tostring(err), "connection is closed", "closed connection error")
  tap.like(tostring(c), "closed", "tostring of a closed connection")
  tap.raises(function() db:query(42) end, "bad argument")
end

local function check_tx(ctx)
  local db <close> = sql.connect(ctx.params.dsn)
  db:exec("CREATE TEMP TABLE acc (id int PRIMARY KEY, n int)")
  local a, b = db:tx(function(c)
    c:exec("INSERT INTO acc VALUES (1, 10)")
    return "done", 2
  end)
  tap.is(a, "done", "tx returns fn's results")
  tap.is(b, 2, "tx returns every result")
  tap.is(db:scalar("SELECT n FROM acc WHERE id = 1"), 10, "tx committed")
  local err = tap.raises(function()
    db:tx(function(c)
      c:exec("UPDATE acc SET n = 20 WHERE id = 1")
      error({ kind = "mine", message = "boom" })
    end)
  end, "tx re-raises")
  tap.is(err.kind, "mine", "tx keeps the error as raised")
  tap.is(db:scalar("SELECT n FROM acc WHERE id = 1"), 10, "tx rolled back")
  tap.is(db:_status(), "idle", "idle after rollback")
  db:tx(function(c)
    c:exec("UPDATE acc SET n = 30 WHERE id = 1")
    pcall(c.tx, c, function(c2)
      c2:exec("UPDATE acc SET n = 40 WHERE id = 1")
      error("inner")
    end)
    tap.is(c:scalar("SELECT n FROM acc WHERE id = 1"), 30, "nested tx rolled back to its savepoint")
  end)
  tap.is(db:scalar("SELECT n FROM acc WHERE id = 1"), 30, "outer tx committed")
  err = tap.raises(function()
    db:tx(function(c)
      pcall(c.exec, c, "INSERT INTO acc VALUES (1, 1)")
    end)
  end, "commit of a failed tx raises")
  tap.is(err.code, "25P02", "failed tx code")
  err = tap.raises(function() db:tx(function(c) c:exec("INSERT INTO acc VALUES (1, 1)") end) end,
    "error inside tx")
  tap.is(err.code, "23505", "error inside tx keeps its code")
  tap.is(db:_status(), "idle", "idle after failed tx")
  -- shorthands and table DSNs
  tap.is(sql.scalar(ctx.params.dsn, "SELECT $1::int + 1", 1), 2, "sql.scalar shorthand")
  local t = sql.connect { dsn = ctx.params.dsn, application_name = "tabled" }
  tap.is(t:scalar("SELECT current_setting('application_name')"), "tabled", "connect from a table")
  t:close()
  tap.is(sql.with(ctx.params.dsn, function(c) return c:scalar("SELECT 5") end), 5, "sql.with")
  -- garbage collection closes connections
  local before = db:scalar("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'gc_me'")
  for _ = 1, 5 do sql.connect(ctx.params.dsn .. " application_name=gc_me") end
  collectgarbage()
  collectgarbage()
  local after
  for _ = 1, 50 do
    after = db:scalar("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'gc_me'")
    if after == before then break end
    ctx:sleep(0.05)
  end
  tap.is(after, before, "collected connections are closed on the server")
end

-- A query on a connection whose backend was just terminated must fail, never
-- wait forever: libuv stops the socket's poll on POLLERR, and the binding
-- must watch it again (it once took the poll for running and hung). 50
-- rounds, because the reset and the query race; the step's timeout turns a
-- hang into a failure instead of stalling the suite.
local function check_dying(ctx)
  local db <close> = sql.connect(ctx.params.dsn)
  local failed, retryable = 0, 0
  for _ = 1, 50 do
    local victim <close> = sql.connect(ctx.params.dsn)
    db:scalar("SELECT pg_terminate_backend($1)", victim:scalar("SELECT pg_backend_pid()"))
    local ok, err = pcall(victim.scalar, victim, "SELECT 1")
    if not ok then
      failed = failed + 1
      if type(err) == "table" and err.retryable then retryable = retryable + 1 end
    end
  end
  tap.is(failed, 50, "50 queries on terminated backends: each fails, none hangs")
  tap.is(retryable, 50, "each failure is retryable")
end

return workflow {
  name = "sql_basics",
  params = { dsn = { required = true } },
  steps = {
    step "types" { run = check_types },
    step "params" { run = check_params },
    step "errors" { run = check_errors },
    step "tx" { run = check_tx },
    step "dying" { timeout = 60, run = check_dying },
    step "done" { run = function() assert(tap.done(), "some tests failed") end },
  },
}
