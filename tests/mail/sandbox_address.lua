-- sandbox_address.lua: the Lua face of mail.sandbox_address (the rules are
-- tested row by row in tests/unit/test_sandbox_address.c).
local tap = require "tap"
local mail = require "wf.mail"

return workflow {
  name = "mail_sandbox_address",
  steps = {
    step "lua" {
      run = function()
        tap.is(mail.sandbox_address("john.doe@company.com", "mailinator.com"), "john.doe_company.com@mailinator.com", "contract example")
        tap.is(mail.sandbox_address(nil, "mailinator.com"), nil, "nil stays nil (NULL in SQL)")
        tap.is(mail.sandbox_address("", "mailinator.com"), "", "empty stays empty")
        tap.raises(function() mail.sandbox_address("a@b", "") end, "empty domain is refused")
        tap.raises(function() mail.sandbox_address("a@b", "x@y") end, "domain with @ is refused")
        tap.raises(function() mail.sandbox_address({}, "x.y") end, "a table is refused")
        tap.is(mail.sandbox_address(42, "x.y"), "42", "a number is taken as its text")
        tap.done()
      end,
    },
  },
}
