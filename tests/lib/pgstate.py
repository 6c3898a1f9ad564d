"""pgstate.py: a throwaway PostgreSQL cluster for the tests of the
PostgreSQL state (tests/state/*.t), on loopback, started through
tests/lib/pg.sh. Standard library only.

    pg = pgstate.Cluster(t, 26820, t.path("pg"), cwd=t.dir)
    pg.start("-c", "fsync=on")        # prints a TAP skip and exits if it cannot
    try:
        pg.engine("state", "init", "--state", pg.url)
        w = pg.worker("a", "--state", pg.url, "--lease", "2")
        t.until(lambda: pg.psql("SELECT ...") == "1", "a row")
    finally:
        pg.stop()                     # kills the workers, stops the cluster
"""
import os
import signal
import subprocess
import sys

import wftest

EXE = os.path.abspath(os.path.join(wftest.ROOT, "wfengine"))


def kill_group(p):
    """SIGKILL p's process group (the machine is gone) and reap p."""
    try:
        os.killpg(p.pid, signal.SIGKILL)
    except ProcessLookupError:
        p.kill()  # not a group leader (started without a session of its own)
    p.wait()


class Cluster:
    def __init__(self, t, port, directory, cwd):
        self.t, self.port, self.dir, self.cwd = t, port, directory, cwd
        self.url = "postgresql://postgres@127.0.0.1:%d/postgres" % port
        self.dsn = "host=127.0.0.1 port=%d user=postgres dbname=postgres" % port
        self.procs = []  # processes stop() kills: workers, and what a test adds

    def sh(self, script):
        """A shell script run from the repository root with pg.sh sourced."""
        return subprocess.run(["sh", "-c", ". tests/lib/pg.sh && " + script], cwd=wftest.ROOT,
                              capture_output=True, text=True)

    def start(self, *options):
        """Starts the cluster, or prints a TAP skip plan and exits."""
        r = self.sh("pg_start %s %d %s" % (self.dir, self.port, " ".join(options)))
        if r.returncode != 0:
            print("1..0 # SKIP cannot start PostgreSQL on port %d: %s"
                  % (self.port, (r.stderr.strip().splitlines() or [""])[-1]))
            sys.exit(0)

    def stop(self):
        for p in self.procs:
            if p.poll() is None:
                kill_group(p)
        self.sh("pg_stop %s" % self.dir)

    def psql(self, query):
        """query's output, unaligned, tuples only, stripped."""
        r = subprocess.run(["psql", "-XAtq", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres",
                            "-d", "postgres", "-c", query], capture_output=True, text=True)
        return r.stdout.strip()

    def engine(self, *argv, cwd=None, wait=True):
        """wfengine ARGV without $WFENGINE_STATE: finished, or (wait=False) its Popen."""
        env = dict(os.environ)
        env.pop("WFENGINE_STATE", None)
        argv = [EXE] + list(argv)
        if not wait:
            return subprocess.Popen(argv, cwd=cwd or self.cwd, env=env, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, text=True)
        return subprocess.run(argv, cwd=cwd or self.cwd, env=env, capture_output=True, text=True,
                              timeout=120)

    def worker(self, name, *extra, cwd=None, env=None, log=None):
        """`wfengine worker --name NAME EXTRA` in a session of its own (stop() kills
        it), its output to log (default: NAME.log in cwd)."""
        cwd = cwd or self.cwd
        out = open(log or os.path.join(cwd, name + ".log"), "w")
        p = subprocess.Popen([EXE, "worker", "--name", name] + list(extra), cwd=cwd, env=env,
                             stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        out.close()
        self.procs.append(p)
        return p
