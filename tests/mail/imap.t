#!/usr/bin/env bash
# wf.mail IMAP against a real Dovecot (tests/lib/dovecot.sh); then the same
# server in dry-run and simulate: nothing changes, dry-run says what would.
set -u
. tests/mail/lib.sh
imap_start 26210
real=$("$WFENGINE" run -q --state "$MAIL_TMP/state" tests/mail/imap.lua -p url="$IMAP_URL" -p closed_port=26297)
real_rc=$?
dry_run() {
  "$WFENGINE" run --state "$MAIL_TMP/state" "$@" tests/mail/imap_dry_run.lua -p url="$IMAP_URL" 2>&1
}
dry=$(dry_run --dry-run)
sim=$(dry_run --simulate)
said() {
  if printf '%s\n' "$dry" | grep -qF "$1"; then echo "ok - dry-run says: $1"; else echo "not ok - dry-run says: $1"; fi
}
reports=$(if [ "$real_rc" = 0 ]; then echo "ok - the IMAP workflow ran every step (exit 0)"
  else echo "not ok - the IMAP workflow ran every step (exit $real_rc)"; fi
  said "would rename mailbox Service/t1/support to Held/t1/dry/support on $IMAP_URL"
  said "would delete mailbox Service/t1/support on $IMAP_URL"
  if printf '%s\n' "$sim" | grep -q "would "; then echo "not ok - simulate reports nothing"; else echo "ok - simulate reports nothing"; fi)
tap_merge "$real" "$dry" "$sim" "$reports"
