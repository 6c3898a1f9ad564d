# dovecot.sh: throwaway Dovecot IMAP servers for tests and the lab, on loopback.
# Source it, then:
#   dovecot_start DIR PORT            config, users, maildirs and logs under DIR
#   dovecot_add_user DIR USER PASSWORD (before or after start: read per login)
#   dovecot_stop DIR
# IMAP only, on 127.0.0.1:PORT, no TLS, plaintext logins allowed (PLAIN and
# LOGIN), users in the passwd-file DIR/users, mail in DIR/mail/USER/Maildir,
# log in DIR/dovecot.log. The system's /etc/dovecot is never read.
# As root the mail processes run as the unprivileged user "dovecot" (Dovecot
# refuses uid 0 for mail) and the login process as "dovenull"; otherwise
# everything runs as the calling user.

dovecot_binary() {
  for b in /usr/sbin/dovecot "$(command -v dovecot 2>/dev/null)"; do
    [ -n "$b" ] && [ -x "$b" ] && { echo "$b"; return 0; }
  done
  echo "dovecot.sh: no dovecot found: run make deps (dovecot-imapd)" >&2
  return 1
}

# dovecot_start DIR PORT: writes DIR/dovecot.conf, starts the server and waits
# until it accepts connections on PORT.
dovecot_start() {
  dir=$1 port=$2
  bin=$(dovecot_binary) || return 1
  mkdir -p "$dir" || return 1
  dir=$(cd "$dir" && pwd)
  mkdir -p "$dir/run" "$dir/state" "$dir/mail"
  touch "$dir/users"
  if [ "$(id -u)" = 0 ]; then
    internal_user=dovecot login_user=dovenull internal_group=dovecot
    mail_uid=$(id -u dovecot) mail_gid=$(id -g dovecot)
    chown "$mail_uid:$mail_gid" "$dir/mail"
    chmod 0644 "$dir/users"
    # the mail user must reach DIR/mail through its parents.
    p=$dir
    while [ "$p" != / ]; do chmod o+x "$p" 2>/dev/null || true; p=$(dirname "$p"); done
  else
    internal_user=$(id -un) login_user=$(id -un) internal_group=$(id -gn)
    mail_uid=$(id -u) mail_gid=$(id -g)
  fi
  cat >"$dir/dovecot.conf" <<EOF
# Written by tests/lib/dovecot.sh: a throwaway IMAP server.
protocols = imap
listen = 127.0.0.1
base_dir = $dir/run
state_dir = $dir/state
log_path = $dir/dovecot.log
info_log_path = $dir/dovecot.log
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_failure_delay = 0
default_internal_user = $internal_user
default_login_user = $login_user
default_internal_group = $internal_group
first_valid_uid = 1
mail_location = maildir:~/Maildir
namespace inbox {
  inbox = yes
  separator = /
}
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%u $dir/users
}
userdb {
  driver = passwd-file
  args = username_format=%u $dir/users
  default_fields = uid=$mail_uid gid=$mail_gid home=$dir/mail/%u
}
service imap-login {
  chroot =
  inet_listener imap {
    address = 127.0.0.1
    port = $port
  }
  inet_listener imaps {
    port = 0
  }
}
service anvil {
  chroot =
}
service stats {
  inet_listener http {
    port = 0
  }
}
EOF
  if ! "$bin" -c "$dir/dovecot.conf" >"$dir/start.log" 2>&1; then
    cat "$dir/start.log" "$dir/dovecot.log" >&2 2>/dev/null
    return 1
  fi
  # Listening sockets are opened by the master before it writes its pid;
  # still, wait until the port answers (up to 10 s).
  i=0
  while [ $i -lt 100 ]; do
    if [ -f "$dir/run/master.pid" ] && dovecot_port_open "$port"; then return 0; fi
    sleep 0.1
    i=$((i + 1))
  done
  echo "dovecot.sh: dovecot did not start on port $port" >&2
  cat "$dir/dovecot.log" >&2 2>/dev/null
  return 1
}

dovecot_port_open() {
  if command -v ss >/dev/null 2>&1; then
    ss -ltnH "sport = :$1" 2>/dev/null | grep -q .
  else
    /usr/bin/python3 -c 'import socket,sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 1).close()' "$1" 2>/dev/null
  fi
}

# dovecot_add_user DIR USER PASSWORD: adds (or replaces) a user; the password
# must not contain ':' or a newline.
dovecot_add_user() {
  dir=$1 user=$2 password=$3
  mkdir -p "$dir"
  touch "$dir/users"
  grep -v "^$user:" "$dir/users" >"$dir/users.tmp" || true
  printf '%s:{PLAIN}%s::::::\n' "$user" "$password" >>"$dir/users.tmp"
  chmod 0644 "$dir/users.tmp"
  mv "$dir/users.tmp" "$dir/users"
}

# dovecot_stop DIR: stops the server started with DIR and waits for it to exit.
dovecot_stop() {
  dir=$1
  pidfile=$dir/run/master.pid
  [ -f "$pidfile" ] || return 0
  pid=$(cat "$pidfile" 2>/dev/null)
  [ -n "$pid" ] || return 0
  kill "$pid" 2>/dev/null || { rm -f "$pidfile"; return 0; }
  i=0
  while kill -0 "$pid" 2>/dev/null && [ $i -lt 100 ]; do
    sleep 0.1
    i=$((i + 1))
  done
  kill -9 "$pid" 2>/dev/null || true
  rm -f "$pidfile"
}
