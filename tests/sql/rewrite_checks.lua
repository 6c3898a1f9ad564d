-- rewrite_checks.lua: run by rewrite_checks.t (which loads
-- rewrite_checks_schema.sql into the source). Copies src to dst with the
-- rewrite, then checks the target's CHECK constraints (pg_constraint
-- convalidated) and the values the fallback gave.
local sql = require "wf.sql"
local copy = require "wf.sql.copy"
local tap = require "tap"

local D = "mailinator.com"

local function dsn(ctx, which, db)
  return string.format("host=127.0.0.1 port=%s user=postgres dbname=%s", ctx.params[which .. "_port"], db)
end

local function hash(r) return copy.rewrite_text("hash", r, D) end

-- name -> {validated, oid} of the target's CHECK constraints (domains' too)
local function constraints(conn)
  local by = {}
  for _, r in ipairs(conn:query([[SELECT conname || CASE WHEN conrelid <> 0 THEN '@' || conrelid::regclass::text
      ELSE '' END AS name, convalidated, oid::bigint AS oid FROM pg_constraint WHERE contype = 'c']])) do
    by[r.name] = { validated = r.convalidated, oid = r.oid }
  end
  return by
end

return workflow {
  name = "sql_rewrite_checks",
  params = { source_port = { required = true }, target_port = { required = true } },
  steps = {
    step "copy" {
      run = function(ctx)
        local stats = sql.copy_database { from = dsn(ctx, "source", "src"), to = dsn(ctx, "target", "dst"),
          jobs = 2, rewrite = { domain = D, exclude = { "users.name" } } }
        ctx.state.ran = true
        tap.is(stats.rewrite.checks, 10, "10 CHECK constraints see a rewritten column (the others are left alone)")
        tap.is(stats.rewrite.fallback, 11, "11 rewritten values got the fallback")
        local u = stats.rewrite.unchecked
        tap.ok(#u == 1 and u[1].constraint == "customer_domain" and u[1].table == "app.customer"
          and u[1].rows == 2, "result.rewrite.unchecked names the constraint no sandbox address satisfies")
      end,
    },
    step "target" {
      run = function(ctx)
        local conn <close> = sql.connect(dsn(ctx, "target", "dst"))
        local k = constraints(conn)
        local users = {}
        for _, r in ipairs(conn:query("SELECT id, email, long_email FROM app.users ORDER BY id")) do users[r.id] = r end
        tap.is(users[1].email, hash("Per.Olsen_kunde.no@mailinator.com"):sub(1, 15) .. "@" .. D,
          "length <= 30 on text: the fallback H@d, H cut to fit")
        tap.is(users[3].email, hash("Kari.Nordmann_kunde.no@mailinator.com"):sub(1, 15) .. "@" .. D,
          "length <= 30: a second row, its own hash")
        tap.is(users[1].long_email, "averyver." .. hash("averyverylongname_company.no@mailinator.com") .. "@" .. D,
          "length <= 40: the fallback P.H@d, as long as the check allows")
        tap.is(users[2].email, "a_b.no@mailinator.com", "a rewritten value that passes: the stream's value")
        tap.is(users[4].email, nil, "NULL stays NULL")
        tap.ok(k["users_email_len@app.users"].validated and k["users_long_len@app.users"].validated,
          "the length checks are added back validated")
        local first_index = conn:scalar("SELECT min(indexrelid)::bigint FROM pg_index WHERE indrelid = 'app.users'::regclass")
        tap.ok(k["users_id_positive@app.users"].validated and k["users_name_set@app.users"].validated
          and k["users_id_positive@app.users"].oid < first_index and k["users_name_set@app.users"].oid < first_index
          and k["users_email_len@app.users"].oid > first_index,
          "checks on columns not rewritten are untouched (the schema's, validated); the others added back after the load")
        tap.is(conn:scalar("SELECT email FROM app.lower_mail"), "per.olsen_kunde.no@mailinator.com",
          "a pattern the rewrite passes: the value unchanged")
        tap.ok(k["lower_mail_pattern@app.lower_mail"].validated, "and its check validated")
        local under = conn:query("SELECT email FROM app.no_underscore ORDER BY id")
        tap.ok(under[1].email:match("^%x+@mailinator%.com$") and under[2].email:match("^%x+@mailinator%.com$")
          and under[1].email ~= under[2].email and k["no_underscore_local@app.no_underscore"].validated,
          "NOT LIKE '%\\_%@%': the fallback without P passes, validated: " .. under[1].email .. " " .. under[2].email)
        local customer = conn:query("SELECT email FROM app.customer ORDER BY id")
        tap.ok(customer[1].email == "ola_kunde.no@mailinator.com"
          and customer[2].email == "kari.nordmann_kunde.no@mailinator.com",
          "a check no sandbox address satisfies: the stream's values, no production address")
        tap.is(k["customer_domain@app.customer"].validated, false, "and the check added NOT VALID")
        tap.is(conn:scalar("SELECT email FROM app.contacts WHERE id = 1"),
          hash("Per.Olsen_kunde.no@mailinator.com") .. "@" .. D, "a domain's check: the fallback")
        tap.is(conn:scalar("SELECT email FROM app.contacts WHERE id = 2"), "x_y.no@mailinator.com",
          "a domain's check: a value that passes unchanged")
        tap.ok(k["short_mail_len"].validated, "the domain's check added back validated")
        local ev = {}
        for _, r in ipairs(conn:query("SELECT id, email FROM app.events ORDER BY id")) do ev[r.id] = r.email end
        tap.ok(ev[1] == hash("Per.Olsen_kunde.no@mailinator.com"):sub(1, 15) .. "@" .. D
          and ev[150] == hash("Kari.Nordmann_kunde.no@mailinator.com"):sub(1, 15) .. "@" .. D
          and ev[151] == "a_b.no@mailinator.com", "a check on a partitioned parent: both partitions' rows fixed")
        tap.ok(k["events_len@app.events"].validated and k["events_len@app.events_1"].validated
          and k["events_len@app.events_2"].validated, "the parent's check and its partitions' validated")
        local base = conn:query("SELECT email FROM app.base ORDER BY id")
        tap.ok(base[1].email == hash("Per.Olsen_kunde.no@mailinator.com"):sub(1, 15) .. "@" .. D
          and base[2].email == hash("Kari.Nordmann_kunde.no@mailinator.com"):sub(1, 15) .. "@" .. D,
          "a check defined in a parent and merged in its INHERITS child: the rows of both fixed")
        local merged = conn:one([[SELECT convalidated, conislocal, coninhcount FROM pg_constraint
          WHERE conname = 'base_len' AND conrelid = 'app.derived'::regclass]])
        tap.ok(k["base_len@app.base"].validated and merged.convalidated and merged.conislocal
          and merged.coninhcount == 1, "both added back validated, the child's merged again (local and inherited)")
        tap.ok(k["fn_check_len@app.fn_check"].validated and conn:scalar("SELECT email FROM app.fn_check")
          == hash("Per.Olsen_kunde.no@mailinator.com"):sub(1, 15) .. "@" .. D,
          "a check calling a function of public: added back (its text qualified), the fallback given")
        local leaks = 0
        for _, c in ipairs(conn:query([[SELECT format('%I.%I', table_schema, table_name) AS t, quote_ident(column_name) AS c
            FROM information_schema.columns WHERE table_schema = 'app' AND data_type IN ('text', 'USER-DEFINED')]])) do
          leaks = leaks + conn:scalar(string.format("SELECT count(*) FROM %s WHERE %s::text ~ '@(?!mailinator\\.com$)'",
            c.t, c.c))
        end
        tap.is(leaks, 0, "no production address in the target")
        tap.done()
      end,
    },
  },
}
