-- conn:wait_notify: LISTEN/NOTIFY on the loop. A notification, a timeout,
-- one read during a query, a wait beside other work, a wait cancelled by a
-- failing sibling (the connection stays usable), a connection killed while
-- waiting (a retryable 08006).
local sql = require "wf.sql"
local tap = require "tap"
local now = require("wf.sql.core").now

local function notify(dsn, channel, payload)
  local other = sql.connect(dsn)
  other:exec("SELECT pg_notify($1, $2)", channel, payload)
  other:close()
end

return workflow {
  name = "sql_notify",
  params = { dsn = { required = true } },
  steps = {
    step "notify" {
      run = function(ctx)
        local dsn = ctx.params.dsn
        local conn = sql.connect(dsn)
        conn:_run("LISTEN wf_test")
        local t0 = now()
        tap.is(conn:wait_notify(0.3), nil, "nothing sent: nil after the timeout")
        tap.ok(now() - t0 >= 0.25, "the timeout is waited out")
        tap.is(conn:wait_notify(0), nil, "timeout 0: a look, nil")

        notify(dsn, "wf_test", "hello")
        local channel, payload = conn:wait_notify(5)
        tap.is(channel, "wf_test", "a notification: its channel")
        tap.is(payload, "hello", "and its payload")

        conn:exec("SELECT pg_notify('wf_test', 'during a query')")
        t0 = now()
        payload = select(2, conn:wait_notify(5))
        tap.is(payload, "during a query", "one that arrived during a query is returned")
        tap.ok(now() - t0 < 1, "at once")

        local beside = 0
        local got = ctx:parallel {
          function() return select(2, conn:wait_notify(10)) end,
          function()
            for _ = 1, 3 do ctx:sleep(0.05) beside = beside + 1 end
            notify(dsn, "wf_test", "from a sibling")
            return true
          end,
        }
        tap.is(got[1], "from a sibling", "a wait beside other work is woken by its NOTIFY")
        tap.is(beside, 3, "the loop went on while it waited")

        local ok, err = pcall(ctx.parallel, ctx, {
          function() return conn:wait_notify() end,
          function() ctx:sleep(0.1) error("sibling fails") end,
        })
        tap.ok(not ok and tostring(err):find("sibling fails"), "a failing sibling cancels the wait")
        tap.is(conn:scalar("SELECT 41 + 1"), 42, "the cancelled wait leaves the connection usable")
        notify(dsn, "wf_test", "still listening")
        tap.is(select(2, conn:wait_notify(5)), "still listening", "and still listening")

        local pid = conn:_info().backend_pid
        local killed = ctx:parallel {
          function()
            local done, e = pcall(conn.wait_notify, conn, 10)
            return { done = done, err = e }
          end,
          function()
            ctx:sleep(0.1)
            local other = sql.connect(dsn)
            other:scalar("SELECT pg_terminate_backend($1)", pid)
            other:close()
            return true
          end,
        }
        local e = killed[1].err
        tap.ok(not killed[1].done, "a connection killed while waiting ends the wait with an error")
        tap.is(type(e) == "table" and e.code, "08006", "class 08 (08006), as a query's")
        tap.is(type(e) == "table" and e.retryable, true, "retryable")
        local closed_ok, closed_err = pcall(conn.wait_notify, conn, 0)
        tap.ok(not closed_ok and tostring(closed_err):find("lost"), "a wait on the lost connection: closed (it was lost)")
        tap.done()
      end,
    },
  },
}
