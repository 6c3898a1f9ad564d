-- imap.lua: wf.mail's mailbox operations against a real Dovecot.
local tap = require "tap"
local mail = require "wf.mail"

local function catch(fn, ...)
  local ok, err = pcall(fn, ...)
  if ok then return {} end
  return type(err) == "table" and err or { message = tostring(err) }
end

local function has(list, name)
  for _, v in ipairs(list) do if v == name then return true end end
  return false
end

return workflow {
  name = "mail_imap",
  params = { url = { required = true }, closed_port = { required = true } },
  steps = {
    step "mailboxes" {
      timeout = 30,
      run = function(ctx)
        local box = mail.imap { url = ctx.params.url, user = "alice", password = "alice-secret" }
        tap.ok(has(box:list(), "INBOX"), "list() shows INBOX")
        tap.is(box:create("Sandbox"), true, "create() a mailbox")
        tap.is(box:create("Quote \"this\" and \\ that"), true, "create() with quotes and backslash")
        tap.is(box:create("Müller & Søn ✓"), true, "create() with non-ASCII and & (modified UTF-7)")
        local names = box:list()
        tap.ok(has(names, "Sandbox"), "list() shows it")
        tap.ok(has(names, "Quote \"this\" and \\ that"), "list() decodes quoted names")
        tap.ok(has(names, "Müller & Søn ✓"), "list() decodes modified UTF-7")
        tap.is(box:count("Sandbox"), 0, "count() of an empty mailbox is 0")
        box:append("Sandbox", "From: a@example.com\nSubject: raw\n\nhello\n")
        box:append("Sandbox", { from = "ops@example.com", to = "x@example.com", subject = "Grüße", body = "Hallo Welt" })
        box:append("Müller & Søn ✓", { from = "ops@example.com", to = "x@example.com", subject = "s", body = "b" })
        tap.is(box:count("Sandbox"), 2, "append() twice, count() is 2")
        tap.is(math.type(box:count("Sandbox")), "integer", "count() is an integer")
        tap.is(box:count("Müller & Søn ✓"), 1, "append and count on a non-ASCII mailbox")
        tap.is(box:delete("Sandbox"), true, "delete() a mailbox")
        tap.ok(not has(box:list(), "Sandbox"), "it is gone")
      end,
    },
    step "rename" {
      timeout = 30,
      run = function(ctx)
        local box = mail.imap { url = ctx.params.url, user = "alice", password = "alice-secret" }
        box:create("Service/t1/support")
        box:create("Service/t1/support/sub")
        for i = 1, 3 do box:append("Service/t1/support", "Subject: m" .. i .. "\n\nbody\n") end
        box:append("Service/t1/support/sub", "Subject: child\n\nbody\n")
        tap.is(box:rename("Service/t1/support", "Held/t1/run_1/support"), true, "rename() a mailbox holding messages")
        local names = box:list()
        tap.ok(not has(names, "Service/t1/support"), "the old name is gone")
        tap.ok(has(names, "Held/t1/run_1/support"), "the new name is listed (missing parents created)")
        tap.is(box:count("Held/t1/run_1/support"), 3, "its 3 messages moved with it")
        tap.is(box:count("Held/t1/run_1/support/sub"), 1, "a child folder moved with it, messages and all")
        box:rename("Held/t1/run_1/support", "Service/t1/support")
        tap.is(box:count("Service/t1/support"), 3, "renamed back: the 3 messages are back")
        tap.ok(not has(box:list(), "Held/t1/run_1/support"), "and nothing is left in the holding place")
        tap.is(box:rename("Müller & Søn ✓", "Entwürfe & Co"), true, "rename() between non-ASCII names (modified UTF-7)")
        names = box:list()
        tap.ok(has(names, "Entwürfe & Co") and not has(names, "Müller & Søn ✓"), "list() shows the new non-ASCII name only")
        tap.is(box:count("Entwürfe & Co"), 1, "its message moved with it")
        local missing = catch(box.rename, box, "Nowhere", "Elsewhere")
        tap.is(missing.kind, "mail", "renaming a missing mailbox: kind mail")
        tap.is(missing.code, "NONEXISTENT", "... code NONEXISTENT from the server's reply")
        tap.is(missing.retryable, false, "... not retryable")
        tap.like(tostring(missing.message), "^rename mailbox Nowhere to Elsewhere on imap://", "... message says what was attempted")
        local taken = catch(box.rename, box, "Service/t1/support", "INBOX")
        tap.is(taken.code, "ALREADYEXISTS", "renaming onto an existing mailbox: ALREADYEXISTS")
        tap.is(box:count("Service/t1/support"), 3, "... and the mailbox is untouched")
        local usage = catch(box.rename, box, "Service/t1/support", "bad\nname")
        tap.like(tostring(usage.message), "line breaks", "a new name with a line break is refused")
        usage = catch(box.rename, box, nil, "x")
        tap.like(tostring(usage.message), "mailbox name is required", "a missing name is refused")
      end,
    },
    step "errors" {
      timeout = 30,
      run = function(ctx)
        local box = mail.imap { url = ctx.params.url, user = "alice", password = "alice-secret" }
        local exists = catch(box.create, box, "INBOX")
        tap.is(exists.kind, "mail", "creating an existing mailbox: kind mail")
        tap.is(exists.retryable, false, "... not retryable")
        tap.like(exists.message or "", "create mailbox INBOX", "... message says what was attempted")
        local missing = catch(box.count, box, "Nowhere")
        tap.like(tostring(missing.code), "^NO", "count() of a missing mailbox: code from the server reply (" .. tostring(missing.code) .. ")")
        tap.is(missing.retryable, false, "... not retryable")
        local gone = catch(box.delete, box, "Nowhere")
        tap.is(gone.retryable, false, "delete() of a missing mailbox: not retryable")
        local nobox = catch(box.append, box, "Nowhere", "Subject: x\n\ny\n")
        tap.is(nobox.retryable, false, "append() to a missing mailbox: not retryable")
        local bad = mail.imap { url = ctx.params.url, user = "alice", password = "wrong-password" }
        local auth = catch(bad.list, bad)
        tap.is(auth.kind, "mail", "wrong password: kind mail")
        tap.is(auth.code, "auth_failed", "... code auth_failed")
        tap.is(auth.retryable, false, "... not retryable")
        tap.ok(not tostring(auth.message):find("wrong%-password"), "... the password is not in the message")
        local down = mail.imap { url = "imap://127.0.0.1:" .. ctx.params.closed_port, user = "alice", password = "xxxx" }
        local refused = catch(down.list, down)
        tap.is(refused.kind, "mail", "no server: kind mail")
        tap.is(refused.retryable, true, "... retryable")
        tap.like(tostring(refused.message), "onnect", "... curl's message")
        local usage = catch(box.create, box, "bad\r\nname")
        tap.like(tostring(usage.message), "line breaks", "a name with a line break is refused")
        tap.is(mail._utf7_encode("Entwürfe & Co"), "Entw&APw-rfe &- Co", "modified UTF-7 as RFC 3501 spells it")
        tap.is(mail._utf7_decode("&ZeVnLIqe-"), "日本語", "modified UTF-7 decodes")
      end,
    },
    step "concurrent" {
      timeout = 30,
      run = function(ctx)
        -- two steps' worth of work in one: the loop stays free while IMAP works
        local box = mail.imap { url = ctx.params.url, user = "alice", password = "alice-secret" }
        for i = 1, 5 do box:create("Bulk" .. i) end
        local n = 0
        for _, name in ipairs(box:list()) do if name:match("^Bulk%d$") then n = n + 1 end end
        tap.is(n, 5, "five mailboxes created one after the other on a reused connection")
        for i = 1, 5 do box:delete("Bulk" .. i) end
        tap.done()
      end,
    },
  },
}
