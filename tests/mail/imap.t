#!/usr/bin/env bash
# wf.mail IMAP against a real Dovecot (tests/lib/dovecot.sh).
set -u
. tests/mail/lib.sh
imap_start 56210
"$WFENGINE" run -q --state "$MAIL_TMP/state" tests/mail/imap.lua -p url="$IMAP_URL" -p closed_port=56297
