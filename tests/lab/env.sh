# env.sh: the lab's settings, sourced by up, down, status, seed and lab.t.
# Every port, path and credential can be overridden from the environment;
# tests/lab/lab.yaml reads the same variables with the same defaults.
LAB_ROOT=$(cd "$(dirname "$0")/../.." && pwd)
LAB_DATA=${LAB_DATA:-$LAB_ROOT/tests/lab/data}
LAB_PG_SOURCE_PORT=${LAB_PG_SOURCE_PORT:-15432}
LAB_PG_SANDBOX_PORT=${LAB_PG_SANDBOX_PORT:-15433}
LAB_IMAP_PORT=${LAB_IMAP_PORT:-11143}
LAB_EMULATOR_PORT=${LAB_EMULATOR_PORT:-18080}
LAB_EMULATOR_TOKEN=${LAB_EMULATOR_TOKEN:-lab-token}
LAB_IMAP_ADMIN_USER=${LAB_IMAP_ADMIN_USER:-mailadmin}
LAB_IMAP_ADMIN_PASSWORD=${LAB_IMAP_ADMIN_PASSWORD:-lab-mailadmin}
LAB_IMAP_TESTER_PASSWORD=${LAB_IMAP_TESTER_PASSWORD:-lab-tester}
LAB_DB_APP_PASSWORD=${LAB_DB_APP_PASSWORD:-lab-app}
LAB_SANDBOX_DOMAIN=${LAB_SANDBOX_DOMAIN:-sbx2001.sandbox.lab}
# Seconds the emulator's tasks and IIS operations take (steps 1-2, 31).
LAB_TASK_SECONDS=${LAB_TASK_SECONDS:-3}
LAB_IIS_SECONDS=${LAB_IIS_SECONDS:-2}
SCALE=${SCALE:-1}
export LAB_ROOT LAB_DATA

# The python3 on PATH (may be a pyenv build), else the system's.
LAB_PYTHON=$(command -v python3 2>/dev/null || echo /usr/bin/python3)
"$LAB_PYTHON" -c 'import http.server' 2>/dev/null || LAB_PYTHON=/usr/bin/python3

lab_psql() { # lab_psql PORT [psql args...]: as superuser postgres over loopback TCP
  port=$1
  shift
  PGCONNECT_TIMEOUT=5 "$(pg_bindir)/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$port" -U postgres "$@"
}

lab_port_open() { # lab_port_open PORT: something listens on 127.0.0.1:PORT
  "$LAB_PYTHON" -c 'import socket,sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 1).close()' "$1" 2>/dev/null
}

lab_pg_running() { # lab_pg_running DIR
  [ -f "$1/data/postmaster.pid" ] && pg_as "$(pg_bindir)/pg_ctl" -D "$1/data" status >/dev/null 2>&1
}

lab_pid_alive() { # lab_pid_alive PIDFILE
  [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null
}

lab_emulator_health() {
  "$LAB_PYTHON" - "$LAB_EMULATOR_PORT" <<'PY' 2>/dev/null
import json, sys, urllib.request
with urllib.request.urlopen("http://127.0.0.1:%s/_health" % sys.argv[1], timeout=2) as r:
    sys.exit(0 if json.load(r).get("ok") else 1)
PY
}
