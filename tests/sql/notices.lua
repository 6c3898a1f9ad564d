-- Server notices reach the step's log, whatever their length or the format
-- characters in them (wf_log formats with the C library's printf).
local sql = require "wf.sql"
local tap = require "tap"

return workflow {
  name = "sql_notices",
  params = { dsn = { required = true } },
  steps = {
    step "notices" {
      run = function(ctx)
        local conn = sql.connect(ctx.params.dsn)
        tap.is(conn:exec('DROP DATABASE IF EXISTS "no_such_database_x" WITH (FORCE)'), 0,
          "a statement that draws a NOTICE succeeds")
        conn:exec("DO $$ BEGIN RAISE NOTICE '%%s %%d %s', repeat('x', 3000); END $$")
        tap.ok(true, "a 3000-character notice with printf directives in it is logged")
      end,
    },
  },
}
