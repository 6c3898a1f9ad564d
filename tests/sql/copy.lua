-- copy.lua: sql.copy_database end to end (run by copy.t, which then compares
-- the databases table by table with psql).
local sql = require "wf.sql"
local tap = require "tap"

local function dsn(port, db)
  return string.format("host=127.0.0.1 port=%s user=postgres dbname=%s", port, db)
end

return workflow {
  name = "sql_copy",
  params = { source_port = { required = true }, target_port = { required = true } },
  steps = {
    step "copy" {
      run = function(ctx)
        local p = ctx.params
        local expected = sql.with(dsn(p.source_port, "src"), function(db)
          local tables = db:query([[SELECT format('%I.%I', n.nspname, c.relname) AS name
            FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema')]])
          local rows = 0
          for _, t in ipairs(tables) do rows = rows + db:scalar("SELECT count(*) FROM " .. t.name) end
          return { tables = #tables, rows = rows }
        end)
        local stats = sql.copy_database { from = dsn(p.source_port, "src"),
          to = dsn(p.target_port, "dst"), jobs = 3 }
        tap.is(stats.tables, expected.tables, "stats.tables counts every table")
        tap.is(stats.rows, expected.rows, "stats.rows counts every row")
        tap.ok(math.type(stats.bytes) == "integer" and stats.bytes > 1000000, "stats.bytes")
        tap.ok(stats.seconds > 0 and stats.seconds < 60, "stats.seconds")
        for _, phase in ipairs { "schema", "data", "constraints" } do
          tap.ok(type(stats.phases[phase]) == "number", "phase time for " .. phase)
        end
        local one = sql.copy_database { from = dsn(p.source_port, "src"),
          to = { host = "127.0.0.1", port = p.target_port, user = "postgres", dbname = "dst1" }, jobs = 1 }
        tap.is(one.rows, expected.rows, "one job copies the same rows")
        local split = sql.copy_database { from = dsn(p.source_port, "src"),
          to = dsn(p.target_port, "dst_split"), jobs = 3, split_bytes = 1, index_workers = 2 }
        tap.is(split.rows, expected.rows, "tables split by ctid ranges: the same rows")
        for _, phase in ipairs { "data", "indexes", "analyze", "foreign keys" } do
          tap.ok(type(split.busy[phase]) == "number", "busy seconds of " .. phase)
        end
      end,
    },
    step "errors" {
      run = function(ctx)
        local p = ctx.params
        local err = tap.raises(function()
          sql.copy_database { from = dsn(p.source_port, "src"), to = dsn(p.target_port, "dst") }
        end, "a target that is not empty is refused")
        tap.is(err.code, "55000", "not empty: code")
        tap.is(err.phase, "check", "not empty: phase check")
        tap.is(err.retryable, false, "not empty: not retryable")
        tap.like(err.message, "not empty %(%d+ relations", "not empty: says what is there")
        err = tap.raises(function()
          sql.copy_database { from = dsn(p.source_port, "broken"), to = dsn(p.target_port, "broken_dst"),
            jobs = 2 }
        end, "a row the target refuses fails the copy")
        tap.is(err.code, "23514", "data failure: SQLSTATE")
        tap.is(err.phase, "data", "data failure: phase")
        tap.is(err.table, "public.guarded", "data failure: table")
        tap.like(err.message, "table public%.guarded, phase data: ", "data failure: message names both")
        err = tap.raises(function()
          sql.copy_database { from = dsn(p.source_port, "src"), to = dsn(p.target_port, "missing_db") }
        end, "a missing target database")
        tap.is(err.code, "08001", "missing target: connection error")
        err = tap.raises(function()
          sql.copy_database { from = dsn(p.source_port, "src"), to = dsn(p.target_port, "x"), jobs = 0 }
        end, "jobs = 0 refused")
        tap.like(tostring(err), "jobs", "bad jobs: says so")
        err = tap.raises(function()
          sql.copy_database { from = dsn(p.source_port, "src"), to = dsn(p.target_port, "x"), index_workers = -1 }
        end, "index_workers = -1 refused")
        tap.like(tostring(err), "index_workers must be an integer from 0 to 64", "bad index_workers: says so")
        tap.raises(function() sql.copy_database { from = dsn(p.source_port, "src") } end, "to is required")
        err = tap.raises(function()
          sql.copy_database { from = dsn(p.source_port, "src"), to = dsn(p.target_port, "tpl"),
            strategy = "template" }
        end, "template across clusters refused")
        tap.like(err.message, "one cluster", "template across clusters: says why")
      end,
    },
    step "template" {
      run = function(ctx)
        local p = ctx.params
        local stats = sql.copy_database { from = dsn(p.source_port, "src"),
          to = dsn(p.source_port, "src_tpl"), strategy = "template" }
        tap.ok(stats.bytes > 0, "template copy reports the size")
        local count = sql.scalar(dsn(p.source_port, "src_tpl"), "SELECT count(*) FROM crm.persons")
        tap.is(count, 60000, "template copy has the data")
      end,
    },
    step "done" { run = function() assert(tap.done(), "some tests failed") end },
  },
}
