-- modes.lua: cancellation by step timeout, dry-run and simulate. Run by
-- modes.t, once per mode; the table "ledger" exists beforehand.
local sql = require "wf.sql"
local tap = require "tap"

local shared, shared_pid, started -- survive from one attempt to the next


return workflow {
  name = "sql_modes",
  params = {
    dsn = { required = true }, mode = { required = true }, target = { default = "" },
    token = { secret = true, default = "s3cr3t-token" },
  },
  steps = {
    step "dry_run" {
      when = function(ctx) return ctx.params.mode == "dry-run" end,
      run = function(ctx)
        tap.is(ctx.mode, "dry-run", "running as a dry-run")
        local db <close> = sql.connect(ctx.params.dsn)
        tap.is(db:scalar("SELECT count(*) FROM ledger"), 1, "reads run")
        tap.is(db:scalar("SELECT current_setting('transaction_read_only')"), "on", "reads are read-only")
        tap.is(db:exec("INSERT INTO ledger VALUES ($1, $2)", 2, ctx.params.token), 0, "exec reports, returns 0")
        tap.is(db:exec("DELETE FROM ledger"), 0, "delete reported")
        local err = tap.raises(function() db:query("INSERT INTO ledger VALUES (3, 'x') RETURNING id") end,
          "a write through query is refused")
        tap.is(err.code, "25006", "read-only transaction error")
        tap.is(db:tx(function(c) c:exec("UPDATE ledger SET note = 'y'"); return c:scalar("SELECT 7") end), 7,
          "tx runs its reads")
        tap.is(db:scalar("SELECT count(*) FROM ledger"), 1, "nothing was written")
        local stats = sql.copy_database { from = ctx.params.dsn, to = ctx.params.target, jobs = 2 }
        tap.ok(stats.tables >= 1, "dry-run copy counts tables")
        tap.ok(stats.bytes > 0, "dry-run copy reports the source size")
      end,
    },
    step "simulate" {
      when = function(ctx) return ctx.params.mode == "simulate" end,
      run = function(ctx)
        tap.is(ctx.mode, "simulate", "running simulated")
        local db = sql.connect(ctx.params.dsn) -- a closed port: never contacted
        tap.is(#db:query("SELECT 1"), 0, "query -> empty array")
        tap.is(db:one("SELECT 1"), nil, "one -> nil")
        tap.is(db:scalar("SELECT 1"), nil, "scalar -> nil")
        tap.is(db:exec("DELETE FROM x"), 0, "exec -> 0")
        tap.is(db:tx(function() return 3 end), 3, "tx runs its function")
        local stats = sql.copy_database { from = ctx.params.dsn, to = ctx.params.dsn }
        tap.is(stats.tables, 0, "copy_database -> zero stats")
        db:close()
      end,
    },
    step "prepare" {
      when = function(ctx) return ctx.params.mode == "run" end,
      run = function(ctx)
        shared = sql.connect(ctx.params.dsn .. " application_name=cancel_me")
        shared_pid = shared:scalar("SELECT pg_backend_pid()")
      end,
    },
    step "slow" {
      when = function(ctx) return ctx.params.mode == "run" end,
      timeout = 0.5,
      retry = { attempts = 2, delay = 0, jitter = false, retry_on = function() return true end },
      run = function(ctx)
        if ctx.attempt == 1 then
          started = os.time()
          shared:scalar("SELECT pg_sleep(10)")
          tap.ok(false, "pg_sleep(10) should have been cancelled")
          return
        end
        tap.ok(os.time() - started <= 3, "the timeout ended the step fast")
        local observer <close> = sql.connect(ctx.params.dsn)
        tap.is(shared:scalar("SELECT 42"), 42, "the connection is usable after the cancel")
        local state = observer:one("SELECT state, query FROM pg_stat_activity WHERE pid = $1", shared_pid)
        tap.is(state and state.state, "idle", "the server is no longer running the statement")
        tap.is(observer:scalar([[SELECT count(*) FROM pg_stat_activity
          WHERE query LIKE '%pg_sleep(10)%' AND state = 'active' AND pid <> pg_backend_pid()]]), 0,
          "no pg_sleep left running")
      end,
    },
    step "slow_tx" {
      when = function(ctx) return ctx.params.mode == "run" end,
      timeout = 0.5,
      retry = { attempts = 2, delay = 0, jitter = false, retry_on = function() return true end },
      run = function(ctx)
        if ctx.attempt == 1 then
          shared:tx(function(c) c:scalar("SELECT pg_sleep(10)") end)
          return
        end
        local observer <close> = sql.connect(ctx.params.dsn)
        for _ = 1, 40 do
          if shared:_status() == "closed" then break end
          ctx:sleep(0.05)
        end
        tap.is(shared:_status(), "closed", "a cancelled transaction closes its connection")
        local gone
        for _ = 1, 40 do
          gone = observer:scalar("SELECT count(*) FROM pg_stat_activity WHERE pid = $1", shared_pid) == 0
          if gone then break end
          ctx:sleep(0.05)
        end
        tap.ok(gone, "the backend of the cancelled transaction is gone")
        local err = tap.raises(function() shared:scalar("SELECT 1") end, "the closed handle refuses")
        tap.like(err.message, "closed", "and says it is closed")
      end,
    },
    step "done" { run = function() assert(tap.done(), "some tests failed") end },
  },
}
