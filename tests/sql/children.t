#!/usr/bin/env python3
# The child processes of sql.copy_database (pg_dump, psql) die with the
# engine. A fake pg_dump (opts.pg_bin) notes its pid, hands psql one
# statement and sleeps, so the copy hangs in its schema phase with a pg_dump
# and a real psql inside a transaction on the target. Then:
#   1. kill -9 of the engine: every child is gone within seconds (the kernel
#      kills them: PR_SET_PDEATHSIG, engine/child.c and tie.c), and psql's
#      transaction is rolled back (the target holds nothing of the half-run
#      copy); again with the binary alone, without wfengine-tie beside it;
#   2. a step timeout cancels the copy: the children are stopped at once,
#      while the engine still runs (SIGTERM from the binding's cancel hook).
import os
import shutil
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import wftest  # noqa: E402

PORT = 26150
t = wftest.Tap()
ROOT = wftest.ROOT
WFENGINE = os.path.abspath(os.path.join(ROOT, wftest.WFENGINE)) if not os.path.isabs(
    wftest.WFENGINE) else wftest.WFENGINE
PG_DIR = t.path("pg")
os.chmod(t.dir, 0o755)  # the server runs as postgres when we are root


def sh(script, *args):
    return subprocess.run(["sh", "-c", '. "$1/tests/lib/pg.sh" && ' + script, "sh", ROOT, *args],
                          capture_output=True, text=True)


def pg_stop():
    sh('pg_stop "$2"', PG_DIR)


def psql(db, query):
    r = sh('"$(pg_bindir)/psql" -X -q -At -h 127.0.0.1 -p "$2" -U postgres -d "$3" -c "$4"',
           str(PORT), db, query)
    return r.stdout.strip() if r.returncode == 0 else None


def alive(pid):
    """Running (a zombie has died: only its parent has not reaped it yet)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def children_of(parent):
    """{pid: command name} of the processes whose parent is parent."""
    found = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % name) as f:
                stat = f.read()
        except OSError:
            continue
        comm = stat[stat.index("(") + 1:stat.rindex(")")]
        if int(stat.rsplit(")", 1)[1].split()[1]) == parent:
            found[int(name)] = comm
    return found


def wait_for(predicate, seconds):
    deadline = time.monotonic() + seconds
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.05)


leftovers = set()


def cleanup():
    for pid in leftovers:
        if alive(pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
    pg_stop()


start = sh('pg_start "$2" "$3"', PG_DIR, str(PORT))
if start.returncode != 0:
    print("1..0 # SKIP cannot start PostgreSQL on port %d: %s" % (PORT, start.stderr[-300:]))
    pg_stop()
    sys.exit(0)

try:
    psql("postgres", "CREATE DATABASE src")
    psql("src", "CREATE TABLE t (i int); INSERT INTO t SELECT generate_series(1, 10)")

    # pg_bin: a fake pg_dump next to the real psql
    bin_dir = t.path("bin")
    os.makedirs(bin_dir)
    pids_file = t.path("pids")
    with open(os.path.join(bin_dir, "pg_dump"), "w") as f:
        f.write("""#!/bin/sh
section=
for arg; do case $arg in --section=*) section=${arg#--section=} ;; esac; done
echo "$$ $section" >>'%s'
[ "$section" = pre-data ] && echo 'CREATE TABLE public.half_copied (i int);'
exec sleep 300
""" % pids_file)
    os.chmod(os.path.join(bin_dir, "pg_dump"), 0o755)
    os.symlink(sh('echo "$(pg_bindir)/psql"').stdout.strip(), os.path.join(bin_dir, "psql"))

    workflow = """
local sql = require "wf.sql"
return workflow {
  name = "children",
  params = { port = { required = true }, bin = { required = true }, db = { required = true } },
  steps = {
    step "copy" {
      retry = { attempts = 2, delay = 10 },
      timeout = TIMEOUT,
      run = function(ctx)
        local dsn = "host=127.0.0.1 user=postgres port=" .. ctx.params.port .. " dbname="
        return sql.copy_database { from = dsn .. "src", to = dsn .. ctx.params.db,
                                   pg_bin = ctx.params.bin }
      end,
    },
  },
}
"""

    def start_copy(db, timeout=None, exe=WFENGINE):
        """Starts the engine; returns it and its children once the copy hangs."""
        psql("postgres", "CREATE DATABASE " + db)
        open(pids_file, "w").close()
        wf = t.workflow(workflow.replace("TIMEOUT", str(timeout or "nil")))
        argv = [exe, "run", wf, "-q", "--state", t.fresh_state(), "-p", "port=%d" % PORT,
                "-p", "bin=" + bin_dir, "-p", "db=" + db]
        engine = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.PIPE, start_new_session=True)

        def hanging():
            # both pg_dumps started, psql inside its transaction on the target
            with open(pids_file) as f:
                dumps = [int(line.split()[0]) for line in f if line.strip()]
            busy = psql(db, "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                        " AND state = 'idle in transaction'")
            return len(dumps) == 2 and busy == "1" and dumps
        dumps = wait_for(hanging, 20)
        children = children_of(engine.pid)
        leftovers.update(children)
        leftovers.update(dumps or [])
        return engine, dumps, children

    # 1. kill -9
    engine, dumps, children = start_copy("dst_killed")
    ok = t.ok(dumps, "the copy hangs in its schema phase (2 fake pg_dumps, psql in a transaction)",
              diag=lambda: [engine.stderr.read().decode() if engine.poll() is not None else
                            "engine still running"])
    # the fake pg_dumps have become `sleep` in the same process
    t.is_(sorted(children.values()), ["psql", "sleep", "sleep"],
          "the engine's children: psql and the two pg_dumps")
    t.ok(dumps and set(dumps) <= set(children), "the pids the pg_dumps noted are those children")
    engine.kill()
    engine.wait()
    killed_at = time.monotonic()
    gone = wait_for(lambda: not any(alive(pid) for pid in children), 5)
    t.ok(ok and gone, "kill -9 of the engine: its children are gone within 5 s (%.1f s)" % (
        time.monotonic() - killed_at),
        diag=lambda: ["still alive: %s" % {p: c for p, c in children.items() if alive(p)}])
    ended = wait_for(lambda: psql("dst_killed", "SELECT count(*) FROM pg_stat_activity WHERE "
                                  "datname = current_database() AND pid <> pg_backend_pid()") == "0", 5)
    t.ok(ok and ended, "psql's session on the target has ended")
    t.is_(psql("dst_killed", "SELECT count(*) FROM pg_class WHERE relname = 'half_copied'"), "0",
          "psql's transaction was rolled back: the target holds nothing of the copy")

    # 1b. the same without wfengine-tie beside the binary: the children are
    # tied by the binary itself (wfengine --exec-tied-child)
    alone = t.path("alone")
    os.makedirs(alone)
    shutil.copy(WFENGINE, os.path.join(alone, "wfengine"))
    t.ok(os.access(os.path.join(os.path.dirname(WFENGINE), "wfengine-tie"), os.X_OK),
         "the build puts wfengine-tie beside the binary (the case above)")
    engine, dumps, children = start_copy("dst_alone", exe=os.path.join(alone, "wfengine"))
    t.is_(sorted(children.values()), ["psql", "sleep", "sleep"],
          "a binary without wfengine-tie beside it starts the same children")
    engine.kill()
    engine.wait()
    gone = wait_for(lambda: not any(alive(pid) for pid in children), 5)
    t.ok(dumps and gone, "kill -9 of that engine: its children are gone within 5 s too",
         diag=lambda: ["still alive: %s" % {p: c for p, c in children.items() if alive(p)}])

    # 2. a step timeout cancels the copy: SIGTERM, the engine alive
    engine, dumps, children = start_copy("dst_cancelled", timeout=3)
    t.ok(dumps, "second copy hangs too")
    gone = wait_for(lambda: not any(alive(pid) for pid in children), 8)
    t.ok(dumps and gone and engine.poll() is None,
         "a step timeout stops the copy's children while the engine runs on (retry delay)",
         diag=lambda: ["still alive: %s" % {p: c for p, c in children.items() if alive(p)},
                      "engine exit: %r" % engine.poll()])
    engine.kill()
    engine.wait()

    # 3. a program that cannot be run is named in the error (exit 127 from
    # the tied child, no longer a uv_spawn error)
    no_psql = t.path("no_psql")
    os.makedirs(no_psql)
    for program in ("pg_dump", "pg_restore"):
        os.symlink(sh('echo "$(pg_bindir)/%s"' % program).stdout.strip(), os.path.join(no_psql, program))
    psql("postgres", "CREATE DATABASE dst_no_psql")
    r = t.run(t.workflow(workflow.replace("TIMEOUT", "nil").replace("attempts = 2", "attempts = 1")),
              "-p", "port=%d" % PORT, "-p", "bin=" + no_psql, "-p", "db=dst_no_psql", timeout=60)
    failed = r.one("step_failed", "copy") or {}
    message = (failed.get("error") or {}).get("message", "")
    t.is_(r.rc, wftest.COMPENSATED, "without psql the copy fails", result=r)
    t.like(message, "psql failed (exit status 127): wfengine: cannot run %s/psql: No such file"
           % no_psql, "the error names psql and why it could not run", result=r)
finally:
    cleanup()
t.done()
