-- sandbox_address.lua: the SQL function sandbox_address() of docs/modules.md
-- (created by sandbox_address.t) against mail.sandbox_address: PostgreSQL
-- must inline it, and it must give the same answer for every value,
-- NULL included, called alone or inside an UPDATE.
local sql = require "wf.sql"
local json = require "wf.json"
local mail = require "wf.mail"
local tap = require "tap"

local DOMAINS = { "mailinator.com", "MailInator.COM", " sbx.example.org\t", "x" }

local VALUES = require "address_edges"

-- The documented function over a batch of values, in order; NULLs travel
-- as JSON nulls.
local function via_sql(conn, values, n, domain)
  local list = json.array {}
  for i = 1, n do list[i] = values[i] == nil and json.null or values[i] end
  local rows = conn:query([[SELECT sandbox_address(v, $2) AS r
    FROM jsonb_array_elements_text($1::jsonb) WITH ORDINALITY AS t(v, i) ORDER BY i]],
    json.encode(list), domain)
  local out = {}
  for i = 1, n do out[i] = rows[i] and rows[i].r end
  return out
end

-- compare(values, n, label): every value at every domain, SQL against Lua.
local function compare(conn, values, n, label)
  for _, domain in ipairs(DOMAINS) do
    local got, differences = via_sql(conn, values, n, domain), 0
    for i = 1, n do
      local want = mail.sandbox_address(values[i], domain)
      if got[i] ~= want then
        differences = differences + 1
        if differences <= 5 then
          tap.diag(string.format("%q at %q: SQL %q, mail.sandbox_address %q",
            tostring(values[i]), domain, tostring(got[i]), tostring(want)))
        end
      end
    end
    tap.is(differences, 0, string.format("%s at %q: same as mail.sandbox_address", label, domain))
  end
end

-- Values made of pieces that hit every rule, seeded so a failure repeats.
local PIECES = { "a", "Z", "q.r", "+tag", "@", "@", "@mailinator.com", "@MAILINATOR.com",
  "@sbx.example.org", "mailinator.com", " ", "\t", "\n", "\v", "\f", "\r", "é", "Å", "_", "x@X" }
local function generated(count)
  math.randomseed(20261126)
  local values = {}
  for i = 1, count do
    local parts = {}
    for j = 1, math.random(0, 6) do parts[j] = PIECES[math.random(#PIECES)] end
    values[i] = table.concat(parts)
  end
  return values
end

local function plan_text(rows)
  local lines = {}
  for _, r in ipairs(rows) do lines[#lines + 1] = r["QUERY PLAN"] end
  return table.concat(lines, "\n")
end

return workflow {
  name = "sql_sandbox_address",
  params = { dsn = { required = true } },
  steps = {
    step "inlined" {
      run = function(ctx)
        local conn <close> = sql.connect(ctx.params.dsn)
        local f = conn:one([[SELECT provolatile, proparallel, proisstrict FROM pg_proc
          WHERE proname = 'sandbox_address']])
        tap.ok(f and f.provolatile == "i" and f.proparallel == "s" and f.proisstrict == false,
          "sandbox_address is IMMUTABLE, PARALLEL SAFE and not STRICT")
        conn:exec("CREATE TABLE persons (id bigint PRIMARY KEY, email text)")
        local custom = plan_text(conn:query(
          "EXPLAIN (VERBOSE, COSTS OFF) UPDATE persons SET email = sandbox_address(email, $1)",
          "mailinator.com"))
        local generic = plan_text(conn:query([[SET plan_cache_mode = force_generic_plan;
          PREPARE rewrite(text) AS UPDATE persons SET email = sandbox_address(email, $1);
          EXPLAIN (VERBOSE, COSTS OFF) EXECUTE rewrite('mailinator.com')]]))
        for _, case in ipairs { { "with the domain as a parameter", custom }, { "in a generic plan", generic } } do
          local label, plan = case[1], case[2]
          if not tap.ok(not plan:find("sandbox_address(", 1, true) and plan:find("split_part(", 1, true),
              "inlined " .. label .. ": the plan shows the expression, not the call") then
            tap.diag(plan)
          end
        end
      end,
    },
    step "compare" {
      run = function(ctx)
        local conn <close> = sql.connect(ctx.params.dsn)
        compare(conn, VALUES, #VALUES, "edge cases")
        compare(conn, generated(3000), 3000, "3000 generated values")
        tap.is(conn:one("SELECT sandbox_address(NULL, 'mailinator.com') AS r").r, nil, "NULL address gives NULL")
        for _, v in ipairs { "a@b.no", "no at sign", "" } do
          tap.is(conn:one("SELECT sandbox_address($1, NULL) AS r", v).r, nil,
            string.format("NULL domain gives NULL (address %q)", v))
        end
      end,
    },
    step "update" {
      run = function(ctx)
        local conn <close> = sql.connect(ctx.params.dsn)
        local values = generated(3000)
        for i, v in ipairs(VALUES) do values[3000 + i] = v end
        local n = #values
        conn:exec([[INSERT INTO persons
          SELECT i, v FROM jsonb_array_elements_text($1::jsonb) WITH ORDINALITY AS t(v, i)]],
          json.encode(json.array(values)))
        conn:exec("INSERT INTO persons VALUES ($1, NULL)", n + 1)
        tap.is(conn:exec("UPDATE persons SET email = sandbox_address(email, $1)", " MailInator.COM "), n + 1,
          "UPDATE persons SET email = sandbox_address(email, $1) runs on every row")
        local rows, differences = conn:query("SELECT id, email FROM persons ORDER BY id"), 0
        for i = 1, n do
          if rows[i].email ~= mail.sandbox_address(values[i], " MailInator.COM ") then differences = differences + 1 end
        end
        tap.is(differences, 0, "the UPDATE gives mail.sandbox_address on each of " .. n .. " rows")
        tap.is(rows[n + 1].email, nil, "the UPDATE keeps NULL")
        tap.done()
      end,
    },
  },
}
