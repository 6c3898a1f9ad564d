-- addresses_check.lua: run by clone.t. Evaluates lib.addresses' SQL rewrite
-- on the sandbox cluster for a table of tricky values and compares every
-- answer with mail.sandbox_address; also the free-text rewrite against the
-- same function applied to each address. Fails the step on any difference.
package.path = "workflows/?.lua;" .. package.path
local sql = require "wf.sql"
local mail = require "wf.mail"
local addresses = require "lib.addresses"

local DOMAINS = { "mailinator.com", "MailInator.COM", " sbx.example.org " }

local VALUES = {
  "john.doe@company.com", "John.Doe@Company.COM", "ANNA@X.NO", "kari+crm@x.no",
  "a@mail.x.no", "a@sales.eu.x.no", "@gmail.com", "x@Hotmail.COM", "n/a", "", "@", "a@",
  "a@b@c.no", "a@@b.no", "  spaced@x.no  ", "\tTab@X.no\n", "in side@x.no", "no at sign",
  "john.doe_company.com@mailinator.com", "JOHN@MAILINATOR.COM", "x@mailinator.com.evil.org",
  "x@sub.mailinator.com", "æøå@ÆØÅ.no", "o'brien@x.ie", "a.b-c_d%e@x-y.z",
  string.rep("l", 300) .. "@" .. string.rep("d", 200) .. ".COM",
}

local TEXTS = {
  "Prefers mail to Ole.Hansen@Acme.NO; assistant: KARI@acme.no.",
  "Anna Berg <anna.berg@acme-industries.com>, Per <per+x@Sales.EU.acme.com>",
  "no addresses here", "", "mail @ the fair", "twice: a@x.no a@x.no, done@mailinator.com",
  "edge@end", "x_y.no@mailinator.com already", "x@mailinator.com@foo.no", "a@b.no then B@C.no", "a@b.no@C.NO",
  "tail dot a@b.no. next", "Mixed <Ole@Acme.no> and <kari@acme.no>", "only lower <p@q.r>, <s@t.u>",
  "x@MAILINATOR.COM y@mailinator.com.evil.org",
}

return workflow {
  name = "addresses_check",
  -- lab.yaml's params: are the clone's; a config naming parameters the
  -- workflow does not take is refused, so they are declared here.
  params = { source = { doc = "unused here" }, target = { doc = "unused here" } },
  steps = {
    step "compare" {
      run = function(ctx)
        local conn <close> = sql.connect { dsn = ctx.config.clusters.sandbox.dsn }
        addresses.prepare(conn)
        local failures, checked = 0, 0
        for _, domain in ipairs(DOMAINS) do
          local d = addresses.normal_domain(domain)
          for _, v in ipairs(VALUES) do
            local got = conn:scalar("SELECT " .. addresses.address_sql("$1::text", "$2::text"), v, d)
            local want = mail.sandbox_address(v, domain)
            checked = checked + 1
            if got ~= want then
              failures = failures + 1
              ctx:warn("address %q at %q: SQL %q, mail.sandbox_address %q", v, domain, tostring(got), want)
            end
          end
          local null = conn:one("SELECT " .. addresses.address_sql("$1::text", "$2::text") .. " AS v", nil, d)
          if null.v ~= nil then failures = failures + 1; ctx:warn("NULL is not kept") end
          for _, text in ipairs(TEXTS) do
            local got = conn:scalar("SELECT " .. addresses.text_sql("$1::text", "$2::text"), text, d)
            local want = text:gsub("[%w%._%%%+'%-]*@[%w%-]+[%w%-%.]*", function(a)
              local tail = a:match("%.+$") or ""
              a = a:sub(1, #a - #tail)
              return mail.sandbox_address(a, domain) .. tail
            end)
            checked = checked + 1
            if got ~= want then
              failures = failures + 1
              ctx:warn("text %q at %q: SQL %q, expected %q", text, domain, tostring(got), want)
            end
          end
        end
        ctx:log("checked %d values, %d differences", checked, failures)
        if failures > 0 then ctx:fail(failures .. " differences", { retryable = false }) end
        return { checked = checked }
      end,
    },
  },
}
