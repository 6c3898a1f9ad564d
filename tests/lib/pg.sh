# pg.sh: throwaway PostgreSQL clusters for tests and the lab, on loopback.
# Source it, then: pg_start DIR PORT  /  pg_stop DIR.
# As root the cluster runs as the postgres user (initdb refuses root);
# otherwise as the calling user. Superuser "postgres", trust on loopback.

pg_bindir() {
  for d in /usr/lib/postgresql/*/bin; do [ -x "$d/initdb" ] && last=$d; done
  echo "${last:?no PostgreSQL server found: run make deps}"
}

pg_as() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

# pg_start DIR PORT [extra postgres options]: initdb if needed, start, wait.
pg_start() {
  dir=$1 port=$2
  shift 2
  bin=$(pg_bindir)
  mkdir -p "$dir"
  if [ "$(id -u)" = 0 ]; then
    chown postgres "$dir"
    # postgres must be able to reach the directory through its parents.
    p=$(dirname "$dir")
    while [ "$p" != / ]; do chmod o+x "$p" 2>/dev/null || true; p=$(dirname "$p"); done
  fi
  if [ ! -f "$dir/data/PG_VERSION" ]; then
    pg_as "$bin/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 ||
      { cat "$dir/initdb.log" >&2; return 1; }
  fi
  pg_as "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
    -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off $*" start >/dev/null ||
    { cat "$dir/server.log" >&2; return 1; }
}

pg_stop() {
  dir=$1
  [ -f "$dir/data/postmaster.pid" ] || return 0
  pg_as "$(pg_bindir)/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true
}
