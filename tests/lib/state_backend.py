"""The state a durable-run test runs against: files under a directory (the
default) or PostgreSQL when WF_TEST_STATE=postgres (a wrapper such as
tests/state/durable_pg.t starts the cluster, runs `state init` and sets
WF_TEST_PG_PORT). The tests read runs and events through this, so the same
checks hold for both backends."""
import json
import os
import subprocess
import time

KIND = os.environ.get("WF_TEST_STATE", "file")
PG_PORT = os.environ.get("WF_TEST_PG_PORT", "")


def psql(query):
    r = subprocess.run(["psql", "-XAtq", "-h", "127.0.0.1", "-p", PG_PORT, "-U", "postgres", "-d",
                        "postgres", "-c", query], capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError("psql: " + r.stderr)
    return r.stdout


def quote(text):
    return "'" + text.replace("'", "''") + "'"


class Files:
    kind = "file"

    def __init__(self, directory):
        self.state = directory

    def runs(self):
        try:
            return set(os.listdir(os.path.join(self.state, "runs")))
        except FileNotFoundError:
            return set()

    def newest(self):
        runs = sorted(self.runs())
        return runs[-1] if runs else None

    def events(self, run_id):
        out = []
        try:
            with open(os.path.join(self.state, "runs", run_id, "events.jsonl")) as f:
                for line in f:
                    try:
                        out.append(json.loads(line))
                    except ValueError:
                        pass  # a torn last line, which the engine ignores too
        except FileNotFoundError:
            pass
        return out

    def all_events_text(self):
        text = ""
        for r in self.runs():
            path = os.path.join(self.state, "runs", r, "events.jsonl")
            if os.path.exists(path):
                text += open(path).read()
        return text

    def wait_released(self, run_id, timeout=30):
        return True  # the OFD lock goes with the process


class Postgres:
    kind = "postgres"

    def __init__(self, schema_tag=None):
        self.state = "postgresql://postgres@127.0.0.1:%s/postgres" % PG_PORT

    def runs(self):
        return set(psql("SELECT run_id FROM wfengine.runs").split())

    def newest(self):
        return psql("SELECT run_id FROM wfengine.runs ORDER BY started DESC, run_id DESC LIMIT 1").strip() or None

    def events(self, run_id):
        rows = psql("SELECT event FROM wfengine.events WHERE run_id = %s ORDER BY seq" % quote(run_id))
        return [json.loads(line) for line in rows.splitlines() if line.strip()]

    def all_events_text(self):
        return psql("SELECT string_agg(event, E'\\n') FROM wfengine.events")

    def wait_released(self, run_id, timeout=30):
        """Waits until nobody holds the run's lease (a killed holder's runs out)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if psql("SELECT owner IS NULL OR lease_until < now() FROM wfengine.runs WHERE run_id = %s"
                    % quote(run_id)).strip() == "t":
                return True
            time.sleep(0.05)
        return False

    def lease_owner(self, run_id):
        return psql("SELECT coalesce(owner, '') FROM wfengine.runs WHERE run_id = %s" % quote(run_id)).strip()


def open_state(directory):
    """The backend the environment asks for; directory is the file one's."""
    return Postgres() if KIND == "postgres" else Files(directory)
