#!/usr/bin/env bash
# wf.mail SMTP through the sink (what arrived is checked here), and mail in
# dry-run and simulate against Dovecot (nothing changes).
set -u
. tests/mail/lib.sh
smtp_start 26212
imap_start 26213
run() {
  "$WFENGINE" run -q --state "$MAIL_TMP/state" "$@" tests/mail/smtp.lua -p url="$SMTP_URL" -p imap="$IMAP_URL" -p closed_port=26296 2>>"$MAIL_TMP/stderr"
}
real=$(run)
real_rc=$?
dry=$(run --dry-run)
sim=$(run --simulate)
checks=$("$PY" - "$SINK_DIR" "$MAIL_TMP" <<'PY'
import email, email.header, email.policy, glob, json, os, sys
sink, tmp = sys.argv[1], sys.argv[2]
def ok(cond, name):
    print("%sok - %s" % ("" if cond else "not ", name))
files = sorted(glob.glob(sink + "/*.json"), key=lambda p: int(os.path.basename(p).split(".")[0]))
ok(len(files) == 2, "the sink received exactly the two accepted messages (%d)" % len(files))
first = json.load(open(files[0]))
ok(first["from"] == "ops@example.com", "envelope sender is the bare address")
ok(sorted(first["rcpt"]) == sorted(["john.doe_company.com@mailinator.com", "jg@example.com",
   "audit@example.com", "hidden@example.com"]), "envelope recipients: to, cc and bcc")
raw = first["data"]
lf = lambda text: text.replace("\r\n", "\n")
msg = email.message_from_string(lf(raw), policy=email.policy.default)
ok(str(msg["Subject"]) == "Sandbox ready — Grüße aus dem Süden, a long subject that needs more than one encoded word",
   "the UTF-8 subject decodes exactly")
ok("=?UTF-8?B?" in raw and all(len(l) <= 78 for l in raw.split("\r\n")[:12]), "subject as encoded words, header lines within 78")
ok("Bcc" not in raw and "hidden@example.com" not in raw, "Bcc is not in the message")
ok(msg["Message-ID"] is not None and msg["Message-ID"].endswith("@example.com>"), "Message-ID present")
ok(email.utils.parsedate_to_datetime(str(msg["Date"])) is not None, "Date parses as RFC 5322")
ok("Jürgen Groß" in str(msg["To"]), "non-ASCII display name encoded and decodes")
ok(msg.get_content() == "Hello,\n.\n.leading dot line\nbye\n", "body with dot lines arrives intact (dot-stuffing undone)")
ok(msg["X-Run"] is not None, "extra headers")
second = email.message_from_string(lf(json.load(open(files[1]))["data"]), policy=email.policy.default)
ok(second.get_content() == "only ascii\nline 2\n", "CRLF in the body kept as lines")
err = open(tmp + "/stderr").read()
ok("sender-secret" not in err and "not-the-password" not in err, "passwords never shown")
auth = open(sink + "/auth.log").read()
ok("tls-test-secret" not in auth, "the password meant for a non-loopback host never reached the server in clear")
journal = "".join(open(p).read() for p in glob.glob(tmp + "/state/runs/*/events.jsonl"))
ok("STARTTLS is optional, so the password may cross the network in clear" in journal + err,
   "insecure = true on a non-loopback host says so in the run's log")
PY
)
ls "$MAIL_TMP/dovecot/mail/alice/Maildir" >/dev/null 2>&1
ran=$(if [ "$real_rc" = 0 ]; then echo "ok - the SMTP workflow ran every step (exit 0)"
  else echo "not ok - the SMTP workflow ran every step (exit $real_rc)"; fi)
tap_merge "$real" "$dry" "$sim" "$checks" "$ran"
