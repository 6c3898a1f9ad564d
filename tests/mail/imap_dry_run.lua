-- imap_dry_run.lua: wf.mail's mailbox changes in dry-run and simulate
-- against a real Dovecot: reads run, changes are only reported (tests/mail/
-- imap.t runs it after imap.lua, which left "Service/t1/support" with 3
-- messages).
local tap = require "tap"
local mail = require "wf.mail"

local function has(list, name)
  for _, v in ipairs(list) do if v == name then return true end end
  return false
end

return workflow {
  name = "mail_imap_dry_run",
  params = { url = { required = true } },
  steps = {
    step "changes" {
      timeout = 30,
      run = function(ctx)
        local box = mail.imap { url = ctx.params.url, user = "alice", password = "alice-secret" }
        local mode = ctx.mode
        tap.is(box:rename("Service/t1/support", "Held/t1/dry/support"), true, mode .. ": rename() returns true")
        tap.is(box:rename("Nowhere", "Elsewhere"), true, mode .. ": rename() of a missing mailbox asks nothing")
        tap.is(box:delete("Service/t1/support"), true, mode .. ": delete() returns true")
        if mode == "dry-run" then
          local names = box:list()
          tap.ok(has(names, "Service/t1/support") and not has(names, "Held/t1/dry/support"),
            "dry-run: list() reads the server, and the mailbox was neither renamed nor deleted")
          tap.is(box:count("Service/t1/support"), 3, "dry-run: its messages are where they were")
        else
          tap.is(#box:list(), 0, "simulate: list() is empty")
        end
        tap.done()
      end,
    },
  },
}
