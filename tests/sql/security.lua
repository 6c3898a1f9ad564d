-- security.lua: wf.sql and lib.databases over the network. Run by
-- security.t, which reads the journal and the server's statement log.
local sql = require "wf.sql"
local tap = require "tap"
local databases = require "lib.databases"

-- 0.0.0.0 reaches the test cluster on 127.0.0.1 but is not a loopback host.
local function far(dsn)
  return (dsn:gsub("host=127%.0%.0%.1", "host=0.0.0.0"))
end

return workflow {
  name = "sql_security",
  params = { dsn = { required = true }, role = { required = true }, password = { required = true } },
  steps = {
    step "tls_warning" {
      run = function(ctx)
        local a <close> = sql.connect(far(ctx.params.dsn))
        local b <close> = sql.connect { dsn = far(ctx.params.dsn), sslmode = "disable" }
        tap.is(a:scalar("SELECT 1") + b:scalar("SELECT 1"), 2, "a non-loopback host without TLS still connects")
        local near <close> = sql.connect(ctx.params.dsn)
        tap.is(near:scalar("SELECT 1"), 1, "loopback connects (no warning expected)")
      end,
    },
    step "login" {
      run = function(ctx)
        local admin <close> = sql.connect(ctx.params.dsn)
        local verifier = admin:encrypt_password("p", "u")
        tap.like(verifier, "^SCRAM%-SHA%-256%$4096:", "encrypt_password gives a SCRAM-SHA-256 verifier")
        tap.is(databases.ensure_login(admin, ctx.params.role, ctx.params.password), true, "ensure_login creates the role")
        tap.is(databases.ensure_login(admin, ctx.params.role, ctx.params.password), false, "... once")
        tap.like(admin:scalar("SELECT rolpassword FROM pg_authid WHERE rolname = $1", ctx.params.role),
          "^SCRAM%-SHA%-256%$", "the server stores a SCRAM verifier")
        tap.done()
      end,
    },
  },
}
