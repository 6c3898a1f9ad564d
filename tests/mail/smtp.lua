-- smtp.lua: wf.mail sending through tests/mail/smtp_sink.py; the .t reads
-- what the sink received. Also the message builder and the modes.
local tap = require "tap"
local mail = require "wf.mail"

local function catch(fn, ...)
  local ok, err = pcall(fn, ...)
  if ok then return {} end
  return type(err) == "table" and err or { message = tostring(err) }
end

return workflow {
  name = "mail_smtp",
  params = { url = { required = true }, imap = { required = true }, closed_port = { required = true } },
  steps = {
    step "send" {
      timeout = 30,
      run = function(ctx)
        if ctx.mode ~= "run" then
          local sender = mail.smtp { url = ctx.params.url, user = "sender", password = "sender-secret" }
          local r = sender:send { from = "ops@example.com", to = "dry@example.com", subject = "not sent", body = "x" }
          tap.ok(r.dry_run or r.simulated, ctx.mode .. ": send reports instead of sending")
          local box = mail.imap { url = ctx.params.imap, user = "alice", password = "alice-secret" }
          tap.is(box:create("DryRunBox"), true, ctx.mode .. ": create returns true")
          box:append("INBOX", "Subject: x\n\ny\n")
          local listed = box:list()
          if ctx.mode == "dry-run" then
            local found = false
            for _, n in ipairs(listed) do found = found or n == "DryRunBox" end
            tap.ok(not found, "dry-run: list() reads the server, and the mailbox was not created")
            tap.is(box:count("INBOX"), 0, "dry-run: count() reads, nothing was appended")
          else
            tap.is(#listed, 0, "simulate: list() is empty")
            tap.is(box:count("INBOX"), 0, "simulate: count() is 0")
          end
          tap.done()
          return
        end
        local sender = mail.smtp { url = ctx.params.url, user = "sender", password = "sender-secret" }
        local r = sender:send {
          from = "Ops Team <ops@example.com>",
          to = { "john.doe_company.com@mailinator.com", "Jürgen Groß <jg@example.com>" },
          cc = "audit@example.com",
          bcc = "hidden@example.com",
          subject = "Sandbox ready — Grüße aus dem Süden, a long subject that needs more than one encoded word",
          body = "Hello,\n.\n.leading dot line\nbye\n",
          headers = { ["X-Run"] = ctx.run_id },
        }
        tap.like(r.message_id, "^<.+@example%.com>$", "send returns the Message-ID")
        local ascii = sender:send { from = "ops@example.com", to = "plain@example.com", subject = "Plain", body = "only ascii\r\nline 2" }
        tap.ok(ascii.message_id ~= r.message_id, "every message gets its own Message-ID")
        local rejected = catch(sender.send, sender, { from = "ops@example.com", to = "reject@example.com", subject = "x", body = "y" })
        tap.is(rejected.kind, "mail", "a rejected recipient: kind mail")
        tap.is(rejected.code, "550", "... code is the SMTP reply")
        tap.is(rejected.retryable, false, "... 5xx not retryable")
        local later = catch(sender.send, sender, { from = "ops@example.com", to = "later@example.com", subject = "x", body = "y" })
        tap.is(later.code, "451", "a 4xx reply")
        tap.is(later.retryable, true, "... retryable")
        local bad = mail.smtp { url = ctx.params.url, user = "sender", password = "not-the-password" }
        local auth = catch(bad.send, bad, { from = "ops@example.com", to = "a@example.com", subject = "x", body = "y" })
        tap.is(auth.code, "auth_failed", "wrong SMTP password: auth_failed")
        tap.is(auth.retryable, false, "... not retryable")
        local down = mail.smtp { url = "smtp://127.0.0.1:" .. ctx.params.closed_port }
        local refused = catch(down.send, down, { from = "ops@example.com", to = "a@example.com", subject = "x", body = "y" })
        tap.is(refused.retryable, true, "no SMTP server: retryable")
        local none = catch(sender.send, sender, { from = "ops@example.com", subject = "x", body = "y" })
        tap.like(tostring(none.message), "no recipient", "no recipient is a usage error")
        local inject = catch(sender.send, sender, { from = "ops@example.com", to = "a@example.com", subject = "x\r\nBcc: evil@example.com", body = "y" })
        tap.like(tostring(inject.message), "subject contains a line break", "header injection through the subject is refused")
        -- Every value that lands in a header or an SMTP command: refused
        -- before anything is sent (the sink's count above shows nothing
        -- arrived), with the field named.
        local base = { from = "ops@example.com", to = "a@example.com", subject = "x", body = "y" }
        local injections = {
          { "from", { from = "ops@example.com>\r\nRCPT TO:<evil@example.com" } },
          { "reply_to", { reply_to = "r@example.com\r\nBcc: evil@example.com" } },
          { "to", { to = { "a@example.com", "b@example.com\r\nBcc: evil@example.com" } } },
          { "cc", { cc = "c@example.com\nBcc: evil@example.com" } },
          { "bcc", { bcc = "d@example.com>\r\nRCPT TO:<evil@example.com" } },
          { "subject", { subject = "x\0y" } },
          { "headers.X%-Note", { headers = { ["X-Note"] = "n\r\nBcc: evil@example.com" } } },
          { "date", { date = "Mon, 01 Jan 2024 00:00:00 +0000\r\nBcc: evil@example.com" } },
          { "message_id", { message_id = "<id@example.com>\r\nBcc: evil@example.com" } },
        }
        for _, case in ipairs(injections) do
          local m = {}
          for k, v in pairs(base) do m[k] = v end
          for k, v in pairs(case[2]) do m[k] = v end
          local e = catch(sender.send, sender, m)
          tap.ok(e.kind == "usage" and e.retryable == false, case[1] .. ": injection refused as a usage error")
          tap.like(tostring(e.message), "mail: " .. case[1] .. " contains a line break", case[1] .. ": the error names the field")
        end
        local imap_user = catch(mail.imap, { url = ctx.params.imap, user = "alice\r\nA1 DELETE INBOX", password = "x" })
        tap.like(tostring(imap_user.message), "imap user contains a line break", "a line break in an IMAP user is refused")
        -- TLS for logins: 0.0.0.0 reaches the loopback servers but is not a
        -- loopback host, so AUTH in clear is refused (neither server offers
        -- STARTTLS) unless insecure = true; localhost is loopback.
        local far_smtp = ctx.params.url:gsub("127%.0%.0%.1", "0.0.0.0")
        local far_imap = ctx.params.imap:gsub("127%.0%.0%.1", "0.0.0.0")
        local far = mail.smtp { url = far_smtp, user = "sender", password = "tls-test-secret" }
        local clear = catch(far.send, far, { from = "ops@example.com", to = "a@example.com", subject = "x", body = "y" })
        tap.is(clear.code, "tls_required", "smtp to a non-loopback host without STARTTLS: tls_required")
        tap.is(clear.retryable, false, "... not retryable")
        tap.like(tostring(clear.message), "no STARTTLS", "... saying why")
        local far_box = mail.imap { url = far_imap, user = "alice", password = "alice-secret" }
        local imap_clear = catch(far_box.count, far_box, "INBOX")
        tap.is(imap_clear.code, "tls_required", "imap to a non-loopback host without STARTTLS: tls_required")
        local plain = catch(mail.smtp, { url = far_smtp, user = "sender", password = "xxxx", tls = "none" })
        tap.like(tostring(plain.message), 'tls = "none" would send the password in clear', "tls = none with a password to a non-loopback host is refused")
        local allowed = mail.smtp { url = far_smtp, user = "sender", password = "sender-secret", insecure = true }
        local through = catch(allowed.send, allowed, { from = "ops@example.com", to = "reject@example.com", subject = "x", body = "y" })
        tap.is(through.code, "550", "insecure = true: logged in over plaintext (the recipient's 550 came after AUTH)")
        local insecure_box = mail.imap { url = far_imap, user = "alice", password = "alice-secret", insecure = true }
        tap.ok(math.type(insecure_box:count("INBOX")) == "integer", "insecure = true: imap login in clear works")
        local near = mail.smtp { url = ctx.params.url:gsub("127%.0%.0%.1", "localhost"), user = "sender", password = "sender-secret" }
        local local_send = catch(near.send, near, { from = "ops@example.com", to = "reject@example.com", subject = "x", body = "y" })
        tap.is(local_send.code, "550", "localhost is loopback: AUTH without STARTTLS allowed")
        local text = mail.message { from = "a@example.com", to = "b@example.com", subject = "Hi", body = "x", date = "Mon, 01 Jan 2024 00:00:00 +0000", message_id = "<fixed@example.com>" }
        tap.is(text, "Date: Mon, 01 Jan 2024 00:00:00 +0000\r\nFrom: a@example.com\r\nTo: b@example.com\r\nSubject: Hi\r\nMessage-ID: <fixed@example.com>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=UTF-8\r\nContent-Transfer-Encoding: 7bit\r\n\r\nx\r\n",
          "mail.message builds the exact RFC 5322 text")
        tap.done()
      end,
    },
  },
}
