# lib.sh: sourced by the tests/mail/*.t scripts (run from the repository
# root): a throwaway Dovecot (tests/lib/dovecot.sh) and the SMTP sink, both
# on loopback, stopped on exit.
WFENGINE=${WFENGINE:-./wfengine}
export WFENGINE_PATH="$PWD/tests/lib"
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3
. tests/lib/dovecot.sh
MAIL_TMP=$(mktemp -d)
trap mail_stop EXIT

mail_stop() {
  [ -n "${SINK_PID:-}" ] && kill "$SINK_PID" 2>/dev/null && wait "$SINK_PID" 2>/dev/null
  SINK_PID=
  [ -n "${IMAP_DIR:-}" ] && dovecot_stop "$IMAP_DIR"
  IMAP_DIR=
  rm -rf "$MAIL_TMP"
}

wait_port() {
  for _ in $(seq 1 100); do
    "$PY" -c 'import socket,sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 1).close()' \
      "$1" 2>/dev/null && return 0
    sleep 0.05
  done
  return 1
}

# imap_start PORT: Dovecot with user alice / password alice-secret.
imap_start() {
  IMAP_DIR=$MAIL_TMP/dovecot
  IMAP_URL="imap://127.0.0.1:$1"
  dovecot_add_user "$IMAP_DIR" alice alice-secret
  dovecot_start "$IMAP_DIR" "$1" || { echo "Bail out! dovecot did not start"; exit 1; }
}

# smtp_start PORT: the sink, user sender / password sender-secret, mail in $SINK_DIR.
smtp_start() {
  SINK_DIR=$MAIL_TMP/sink
  SMTP_URL="smtp://127.0.0.1:$1"
  "$PY" tests/mail/smtp_sink.py "$1" "$SINK_DIR" sender sender-secret &
  SINK_PID=$!
  wait_port "$1" || { echo "Bail out! the SMTP sink did not start"; exit 1; }
}

# Prints the TAP lines of several outputs as one plan (numbers left out).
tap_merge() {
  all=$(printf '%s\n' "$@" | grep -E '^(not )?ok|^#' | sed -E 's/^(not )?ok [0-9]+ /\1ok /')
  printf '%s\n' "$all"
  echo "1..$(printf '%s\n' "$all" | grep -cE '^(not )?ok')"
}
