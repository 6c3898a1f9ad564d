# lib.sh: sourced by the tests/http/*.t scripts (run from the repository
# root): starts tests/http/server.py on a loopback port and stops it on exit.
WFENGINE=${WFENGINE:-./wfengine}
export WFENGINE_PATH="$PWD/tests/lib"
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3

# http_server_start PORT: starts the server, waits until it answers.
http_server_start() {
  HTTP_PORT=$1
  HTTP_URL="http://127.0.0.1:$HTTP_PORT"
  "$PY" tests/http/server.py "$HTTP_PORT" &
  HTTP_PID=$!
  trap http_server_stop EXIT
  for _ in $(seq 1 100); do
    "$PY" -c 'import socket,sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 1).close()' \
      "$HTTP_PORT" 2>/dev/null && return 0
    sleep 0.05
  done
  echo "Bail out! tests/http/server.py did not start on port $HTTP_PORT"
  exit 1
}

http_server_stop() {
  [ -n "${HTTP_PID:-}" ] && kill "$HTTP_PID" 2>/dev/null && wait "$HTTP_PID" 2>/dev/null
  HTTP_PID=
}
