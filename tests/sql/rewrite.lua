-- rewrite.lua: run by rewrite.t (which fills the source). Copies src to dst
-- with the rewrite, then checks each type's values, the fit rule, the
-- masking operations, and compares every generated value with
-- mail.sandbox_address (followed by the free-text rule when the value holds
-- several addresses), a Lua reference of the free-text rule and step 13's
-- SQL expressions (workflows/lib/addresses.lua).
package.path = "workflows/?.lua;" .. package.path
local sql = require "wf.sql"
local mail = require "wf.mail"
local copy = require "wf.sql.copy"
local rewriting = require "wf.sql_rewrite"
local addresses = require "lib.addresses"
local tap = require "tap"

local DOMAIN = " MailInator.COM "
local D = "mailinator.com"

-- The free-text rule written again in Lua, independently of the C code:
-- each '@' followed by labels of [A-Za-z0-9-] joined by single dots.
local function lua_scan(x, d)
  if x == nil then return nil end
  local out, i = {}, 1
  while true do
    local a = x:find("@", i, true)
    if not a then break end
    local j = a + 1
    local function label()
      local s, e = x:find("^[%w%-]+", j)
      if s then j = e + 1 end
      return s ~= nil
    end
    if label() then
      while x:sub(j, j) == "." and x:sub(j + 1, j + 1):match("[%w%-]") do j = j + 1; label() end
      local dom = x:sub(a + 1, j - 1)
      out[#out + 1] = x:sub(i, a - 1)
      if dom:lower() == d then out[#out + 1] = "@" .. dom
      else out[#out + 1] = "_" .. dom:lower() .. "@" .. d end
      i = j
    else
      out[#out + 1] = x:sub(i, a)
      i = a + 1
    end
  end
  out[#out + 1] = x:sub(i)
  return table.concat(out)
end

-- The whole-value rule, composed from its references: mail.sandbox_address,
-- then the free-text rule over its result when that still holds more than
-- one '@' (a value holding several addresses). With a domain of
-- [A-Za-z0-9-] labels like D, the free-text rule leaves a value with one
-- '@' as it is, so this is lua_scan(mail.sandbox_address(x)) everywhere.
local function lua_address(x)
  local a = mail.sandbox_address(x, DOMAIN)
  if a and select(2, a:gsub("@", "")) > 1 then return lua_scan(a, D) end
  return a
end

-- the edge cases of sandbox_address.lua, addresses inside free text, then
-- whole values holding several addresses
local EDGES = {}
for _, list in ipairs {
  require "address_edges",
  { "Prefers mail to Ole.Hansen@Acme.NO; assistant: KARI@acme.no.", "tail dot a@b.no. next",
    "x@MAILINATOR.COM y@mailinator.com.evil.org", "a@b.no@C.NO", "edge@end" },
  { "a@x.no, b@y.no", "a@x.no b@Y.NO", "A@X.no;b@y.no", " a@x.no ; b@mailinator.com ",
    "x@mailinator.com, y@MailInator.COM", "Kari <kari@firma.no>, Ole <ole@x.no>", "a@x.no,,b@" },
} do
  table.move(list, 1, #list, #EDGES + 1, EDGES)
end

local function dsn(ctx, which, db)
  return string.format("host=127.0.0.1 port=%s user=postgres dbname=%s", ctx.params[which .. "_port"], db)
end

-- a session that refuses every write (sql.rewrite_count and rewriting.scan
-- must work in a dry-run's read-only transaction)
local function read_only(ctx, which, db)
  return dsn(ctx, which, db) .. " options='-c default_transaction_read_only=on'"
end

-- equal(a, b) -> whether two {name = n} maps are equal, and the differences
local function equal(a, b)
  local diffs = {}
  for k, v in pairs(a) do if b[k] ~= v then diffs[#diffs + 1] = string.format("%s: %s vs %s", k, v, b[k]) end end
  for k, v in pairs(b) do if a[k] == nil then diffs[#diffs + 1] = string.format("%s: nil vs %s", k, v) end end
  table.sort(diffs)
  return #diffs == 0, table.concat(diffs, "; ")
end

local REWRITE = { domain = DOMAIN, exclude = { "vals.orig_email", "crm.vals.orig_v", "person.kept" },
  columns = { ["person.secret"] = "null", ["person.token"] = "hash",
    ["crm.person.motto"] = { "constant", value = "masked" } } }

return workflow {
  name = "sql_rewrite",
  params = { source_port = { required = true }, target_port = { required = true } },
  steps = {
    step "edges" {
      run = function(ctx)
        local conn <close> = sql.connect(dsn(ctx, "source", "src"))
        for i, v in ipairs(EDGES) do
          conn:exec("INSERT INTO crm.vals VALUES ($1, $2, $2, $2, $2, ARRAY[$2], jsonb_build_object('to', $2::text))",
            100000000 + i, v)
        end
      end,
    },
    step "copy" {
      run = function(ctx)
        local stats = sql.copy_database { from = dsn(ctx, "source", "src"), to = dsn(ctx, "target", "dst"),
          jobs = 2, rewrite = REWRITE }
        local ops = {}
        for _, c in ipairs(stats.rewrite.columns) do ops[c.name] = c.op .. " " .. c.kind end
        tap.is(ops["crm.person.email"], "address text", "person.email: whole address (its name)")
        tap.is(ops["crm.person.short_email"], "address text", "person.short_email: whole address")
        tap.is(ops["crm.person.extra"], "scan jsonb", "person.extra: jsonb, free text")
        tap.is(ops["crm.person.grid"], "scan array", "person.grid: array")
        tap.is(ops["crm.person.contact"], "scan record", "person.contact: composite")
        tap.is(ops["crm.person.dom"], "scan text", "person.dom: a domain over varchar")
        tap.is(ops["crm.person.ci"], "scan text", "person.ci: citext")
        tap.is(ops["crm.person.secret"], "null text", "person.secret: null (option)")
        tap.is(ops["crm.person.kept"], nil, "person.kept: excluded")
        tap.is(ops["crm.vals.orig_v"], nil, "vals.orig_v: excluded by schema.table.column")
        tap.is(ops["crm.person.moods"], nil, "person.moods (enum array): not rewritten")
        tap.ok(stats.rewrite.values > 0, "values rewritten are counted: " .. stats.rewrite.values)
        local changed, sum = stats.rewrite.changed or {}, 0
        for _, n in pairs(changed) do sum = sum + n end
        tap.is(sum, stats.rewrite.values, "stats.rewrite.changed: the values per column add up to values")
        local function some(name) return (changed[name] or 0) > 0 end
        tap.ok(some("crm.person.extra") and some("crm.person.contact") and some("crm.person.cc")
          and some("crm.person.email") and some("crm.person.secret") and some("crm.vals.v")
          and not changed["crm.person.kept"], "changed per column: jsonb, composite, whole address, null, "
          .. "free text; excluded columns absent")
        -- the dry-run's count: the same plan and C rule, read-only, no copy
        local counted = sql.rewrite_count { from = read_only(ctx, "source", "src"), rewrite = REWRITE, jobs = 2 }
        local same, diffs = equal(counted.changed, changed)
        tap.ok(same and counted.values == stats.rewrite.values and #counted.columns == #stats.rewrite.columns,
          string.format("sql.rewrite_count in a read-only session = the copy's counts, per column (%d values)",
            counted.values))
        if diffs ~= "" then tap.diag(diffs) end
        -- a table copied in several parts (split_bytes): its parts' counts summed
        local split = sql.copy_database { from = dsn(ctx, "source", "src"), to = dsn(ctx, "target", "dst_dry"),
          jobs = 2, rewrite = REWRITE, split_bytes = 1 }
        same, diffs = equal(split.rewrite.changed, changed)
        tap.ok(same and split.rewrite.values == stats.rewrite.values,
          "copied in ctid ranges, the per-column counts are the parts' sums")
        if diffs ~= "" then tap.diag(diffs) end
      end,
    },
    step "person" {
      run = function(ctx)
        local conn <close> = sql.connect(dsn(ctx, "target", "dst"))
        local r = conn:one([[SELECT email, notes, short_email, long_email, rtrim(padded) AS padded, length(padded) AS padlen,
          ci::text, dom::text, cc::text, grid::text, j::text, extra::text, contact::text, contacts::text,
          moods::text, secret, token, motto, kept FROM crm.person WHERE id = 1]])
        tap.is(r.email, "Per.Olsen_kunde.no@mailinator.com", "text, whole address")
        tap.is(r.notes, "ring kari_firma.no@mailinator.com or Ole_x.no@mailinator.com.", "text, free text")
        tap.is(r.short_email, copy.rewrite_text("hash", "a.very.long.name@company.no", D):sub(1, 15) .. "@mailinator.com",
          "varchar(30) overflowing, no room for a prefix: hash cut to fit @ domain, 30 characters")
        tap.is(r.long_email, "averyver." .. copy.rewrite_text("hash", "averyverylongname@company.example.com", D)
          .. "@mailinator.com", "varchar(40) overflowing: prefix . FNV-1a 64 hash @ domain, 40 characters")
        tap.is(r.padded, "kari_firma.no@mailinator.com", "char(40): trailing spaces past the limit dropped")
        tap.is(r.ci, "CI.User_example.com@mailinator.com", "citext")
        tap.is(r.dom, "dom_kunde.no@mailinator.com", "domain over varchar(40) with a check")
        tap.is(r.cc, "{ola_nordmann.no@mailinator.com,x_y.com@mailinator.com}", "text[]")
        tap.is(r.grid, '{{a_b.no@mailinator.com,"c d_e.no@mailinator.com"},{NULL,f_g.no@mailinator.com}}',
          "varchar(50)[][] with NULL")
        tap.is(r.j, '{"to": "J_json.no@mailinator.com", "k_x.no@mailinator.com": ["esc_aped.no@mailinator.com", 1]}',
          "json: values, keys and \\u0040 escapes")
        tap.is(r.extra, '{"notes": "ring kari_firma.no@mailinator.com", "contact": {"mail": "Per.Olsen_kunde.no@mailinator.com"}, "kari_keys.no@mailinator.com": true}',
          "jsonb at any depth, keys too")
        tap.is(r.contact, '(Ann,Ann_comp.no@mailinator.com,{t_tags.no@mailinator.com},7,busy)', "composite")
        tap.is(r.contacts, '{"(Bo,bo_x.no@mailinator.com,,1,calm)",NULL}', "array of composites")
        tap.is(r.moods, "{calm,busy}", "array of an enum: its OID mapped to the target's")
        tap.is(r.secret, nil, "null")
        tap.is(r.token, copy.rewrite_text("hash", "tok", D), "hash")
        tap.ok(r.token:match("^%x+$") and #r.token == 16, "hash: 16 hex digits")
        tap.is(r.motto, "masked", "constant")
        tap.is(r.kept, "keep@me.no", "excluded column unchanged")
        local three = conn:one("SELECT short_email, j::text, extra::text FROM crm.person WHERE id = 3")
        tap.is(three.short_email, "a_b.no@mailinator.com", "varchar(30) that fits: plain rewrite")
        local two = conn:one("SELECT count(*) AS n FROM crm.person WHERE id = 2 AND num_nulls(email, notes, cc, extra, contact) = 5")
        tap.is(two.n, 1, "NULLs stay NULL")
      end,
    },
    step "property" {
      run = function(ctx)
        local conn <close> = sql.connect(dsn(ctx, "target", "dst"))
        addresses.prepare(conn)
        local n = conn:scalar("SELECT count(*) FROM crm.vals")
        -- the whole-value rule as stream + step 13's in-place pass gave it:
        -- the address rule, then the free-text rule over its result
        local whole = conn:scalar(string.format("SELECT count(*) FROM crm.vals WHERE email IS DISTINCT FROM %s",
          addresses.text_sql(addresses.address_sql("orig_email", "$1"), "$1")), D)
        tap.is(whole, 0, string.format("C stream = step 13's SQL free-text rule over its address rule on %d values", n))
        local several = conn:scalar(string.format([[SELECT count(*) FROM crm.vals
          WHERE orig_email ~ '@.*@' AND %s]], addresses.leak_sql("email", D)))
        tap.is(several, 0, "no whole value holding several addresses keeps a production address")
        local nested = conn:scalar([[SELECT count(*) FROM crm.vals
          WHERE email_a IS DISTINCT FROM ARRAY[email] OR email_j->>'to' IS DISTINCT FROM email]])
        tap.is(nested, 0, "an array element and a jsonb string are rewritten as the same value in a text column")
        local text = conn:scalar(string.format("SELECT count(*) FROM crm.vals WHERE v IS DISTINCT FROM %s",
          addresses.text_sql("orig_v", "$1")), D)
        tap.is(text, 0, string.format("C stream = step 13's SQL free-text rule on %d values", n))
        local last, diff_mail, diff_single, multi, diff_scan, diff_c, seen = -1, 0, 0, 0, 0, 0, 0
        while true do
          local rows = conn:query([[SELECT id, email, v, orig_email, orig_v FROM crm.vals
            WHERE id > $1 ORDER BY id LIMIT 100000]], last)
          if #rows == 0 then break end
          for _, r in ipairs(rows) do
            seen = seen + 1
            local sandboxed = mail.sandbox_address(r.orig_email, DOMAIN)
            if r.email ~= lua_address(r.orig_email) then
              diff_mail = diff_mail + 1
              if diff_mail <= 3 then tap.diag(string.format("%q: %q, Lua %q", r.orig_email, r.email, lua_address(r.orig_email))) end
            end
            if r.orig_email and not r.orig_email:find("@.*@") then
              if r.email ~= sandboxed then diff_single = diff_single + 1 end
            elseif r.email ~= sandboxed then
              multi = multi + 1
            end
            if r.orig_email and r.email ~= copy.rewrite_text("address", r.orig_email, DOMAIN) then diff_c = diff_c + 1 end
            if r.v ~= lua_scan(r.orig_v, D) then
              diff_scan = diff_scan + 1
              if diff_scan <= 3 then tap.diag(string.format("%q: %q, Lua %q", r.orig_v, r.v, lua_scan(r.orig_v, D))) end
            end
            if r.orig_v and r.v ~= copy.rewrite_text("scan", r.orig_v, DOMAIN) then diff_c = diff_c + 1 end
            last = r.id
          end
        end
        tap.is(diff_mail, 0, string.format("C stream = mail.sandbox_address, then the Lua free-text reference "
          .. "when several '@', on %d values", seen))
        tap.is(diff_single, 0, "C stream = mail.sandbox_address byte for byte on every value with one '@' or none")
        tap.ok(multi > seen // 20, string.format("%d values holding several '@' differ from mail.sandbox_address "
          .. "(the addresses it leaves, rewritten)", multi))
        tap.is(diff_scan, 0, string.format("C stream = the Lua free-text reference on %d values", seen))
        tap.is(diff_c, 0, "C stream = copy.rewrite_text(\"address\" and \"scan\") (the same C outside the stream)")
      end,
    },
    step "leaks" {
      run = function(ctx)
        local conn <close> = sql.connect(dsn(ctx, "target", "dst"))
        local columns = rewriting.text_bearing(conn)
        for _, c in ipairs(columns) do c.name = c.table .. "." .. c.column end
        local leaks = addresses.find_leaks(conn, columns, DOMAIN)
        local names = {}
        for _, l in ipairs(leaks) do names[#names + 1] = l.column.name end
        -- vals.email, email_a, email_j: whole values, several addresses in
        -- many, none left by the stream (step 13 has nothing to do there)
        tap.is(table.concat(names, " "), "person.kept vals.orig_email vals.orig_v",
          "the scan finds production addresses in the excluded columns only (none in whole-value ones holding several)")
        local scanned, n = rewriting.scan(function() return sql.connect(read_only(ctx, "target", "dst")) end, D, 2)
        local same = #scanned == #leaks
        for i, l in ipairs(scanned) do
          same = same and l.column.table == leaks[i].column.table and l.column.column == leaks[i].column.column
            and l.values == leaks[i].values
        end
        tap.ok(same and n == #columns, string.format("rewriting.scan (binary COPY, C check, read-only "
          .. "session) finds the same columns and counts as the SQL scan (%d columns)", n))
        local fixed = addresses.fix_leaks(conn, { leaks[2] }, DOMAIN)
        tap.ok(fixed > 0, "fix_leaks rewrites them in place: " .. fixed)
        local again = addresses.find_leaks(conn, columns, DOMAIN)
        tap.is(#again, 2, "after it, only the other excluded columns hold production addresses")
        local src <close> = sql.connect(dsn(ctx, "source", "src"))
        local scols = rewriting.text_bearing(src)
        for _, c in ipairs(scols) do c.name = c.table .. "." .. c.column end
        tap.ok(#addresses.find_leaks(src, scols, DOMAIN) >= 14, "the scan finds them in the source's columns")
        tap.done()
      end,
    },
  },
}
