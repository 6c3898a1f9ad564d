-- state_pg.lua: the PostgreSQL backend of the state interface (state.lua),
-- for a team. Tables live in the schema wfengine (SCHEMA below, created by
-- `wfengine state init`; every open checks schema_version). It talks libpq
-- through wf.sql, on the engine's loop: never blocking it.
--
-- Fencing: each claim of a run (run_lock, claim) adds one to its epoch, and
-- every append is one statement that updates the run's row only where the
-- epoch is still the claimer's and inserts the event only from that row: a
-- process whose run was taken over appends nothing (docs/architecture.md).
local core = require "wfengine.core"
local sched = require "wfengine.sched"
local journal = require "wfengine.journal"

-- 2: wfengine.runs.progress (a console's progress bar). A version 1 state
-- still works (without the bar) until `state init` migrates it.
-- 3: no trigger on wfengine.events: the append statement notifies (once
-- per statement, not per row). A version 2 state still works (its trigger
-- notifies too; PostgreSQL folds the duplicates of one transaction).
local SCHEMA_VERSION = 3

local SCHEMA = [[
CREATE SCHEMA IF NOT EXISTS wfengine;
CREATE TABLE IF NOT EXISTS wfengine.meta (schema_version integer NOT NULL);
CREATE TABLE IF NOT EXISTS wfengine.runs (
  run_id text PRIMARY KEY,
  workflow text,
  mode text,
  status text NOT NULL,
  started timestamptz NOT NULL DEFAULT now(),
  updated timestamptz NOT NULL DEFAULT now(),
  epoch bigint NOT NULL DEFAULT 0,
  owner text,
  lease_until timestamptz,
  pooled boolean NOT NULL DEFAULT false,
  lease_seconds integer NOT NULL DEFAULT 30,
  snapshot text,
  request text,
  note text);
ALTER TABLE wfengine.runs ADD COLUMN IF NOT EXISTS progress jsonb;
CREATE INDEX IF NOT EXISTS runs_status ON wfengine.runs (status, started DESC);
CREATE INDEX IF NOT EXISTS runs_workflow ON wfengine.runs (workflow, started DESC);
CREATE INDEX IF NOT EXISTS runs_started ON wfengine.runs (started DESC);
CREATE INDEX IF NOT EXISTS runs_claimable ON wfengine.runs (started)
  WHERE pooled AND status IN ('queued', 'running', 'interrupted');
CREATE TABLE IF NOT EXISTS wfengine.events (
  run_id text NOT NULL REFERENCES wfengine.runs ON DELETE CASCADE,
  seq integer NOT NULL,
  event text NOT NULL,
  PRIMARY KEY (run_id, seq));
CREATE TABLE IF NOT EXISTS wfengine.locks (
  key text PRIMARY KEY,
  run_id text NOT NULL,
  status text NOT NULL,
  taken timestamptz NOT NULL DEFAULT now());
CREATE TABLE IF NOT EXISTS wfengine.answers (
  run_id text NOT NULL,
  step text NOT NULL,
  yes boolean NOT NULL,
  answered timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (run_id, step));
DROP TRIGGER IF EXISTS events_notify ON wfengine.events;
DROP FUNCTION IF EXISTS wfengine.notify_event();
]]

-- The status a run's row takes with each event (nil: unchanged).
local STATUS_OF = {
  run_started = "running", run_resumed = "running", run_succeeded = "succeeded",
  run_failed = "failed", run_compensated = "compensated", run_paused = "paused",
  run_interrupted = "interrupted",
}

-- One statement: the run's row is updated only under the caller's epoch,
-- and the events ($2 seqs, $3 lines: the ones held since the last append
-- and this one) are inserted only from the updated row (fencing); followers
-- hear of it (wfengine_events, the run id). No row back: fenced.
local APPEND = [[
WITH r AS (UPDATE wfengine.runs SET status = coalesce($4::text, status), updated = now()
           WHERE run_id = $1 AND epoch = $5 RETURNING run_id),
  i AS (INSERT INTO wfengine.events (run_id, seq, event)
        SELECT r.run_id, e.seq, e.event FROM r, unnest($2::int[], $3::text[]) AS e(seq, event) RETURNING seq)
SELECT (SELECT count(*) FROM i) AS n, pg_notify('wfengine_events', run_id) FROM r]]

-- Takes a run whose lease is free or expired, by id; one more epoch.
local TAKE = [[
UPDATE wfengine.runs SET epoch = epoch + 1, owner = $2, lease_seconds = $3::int,
  lease_until = now() + make_interval(secs => $3::int)
WHERE run_id = $1 AND (owner IS NULL OR lease_until < now())
RETURNING epoch]]

-- A worker's claim: the oldest queued run, or one whose owner's lease
-- expired; SKIP LOCKED so that workers never wait on each other.
local CLAIM = [[
UPDATE wfengine.runs SET epoch = epoch + 1, owner = $1, lease_seconds = $2::int,
  lease_until = now() + make_interval(secs => $2::int)
WHERE run_id = (SELECT run_id FROM wfengine.runs
                WHERE pooled AND status IN ('queued', 'running', 'interrupted')
                  AND (owner IS NULL OR lease_until < now())
                ORDER BY started LIMIT 1 FOR UPDATE SKIP LOCKED)
RETURNING run_id, epoch]]

local RENEW = [[
UPDATE wfengine.runs SET lease_until = now() + make_interval(secs => lease_seconds)
WHERE run_id = $1 AND epoch = $2 RETURNING epoch]]

-- The lease given back; workers hear of it (wfengine_queue) and may take
-- the run at once if it is not over.
local RELEASE = [[
WITH r AS (UPDATE wfengine.runs SET owner = NULL, lease_until = NULL WHERE run_id = $1 AND epoch = $2
           RETURNING run_id, status)
SELECT pg_notify('wfengine_queue', run_id) FROM r WHERE status IN ('queued', 'running', 'interrupted')]]

local Store = {}
Store.__index = Store

local state_pg = {}

local function owner_name()
  local host = os.getenv("HOSTNAME")
  if not host then
    local f = io.open("/etc/hostname")
    host = f and f:read("l") or "localhost"
    if f then f:close() end
  end
  return host .. ":" .. core.getpid()
end

-- The URL without its password, for messages.
local function display(url)
  return (url:gsub("^(postgres%a*://[^:/@]*):[^@]*@", "%1:***@"))
end

-- Whether a failure is the connection's (class 08, a server shutting down):
-- worth a new connection and another try.
local function connection_lost(err)
  local code = type(err) == "table" and tostring(err.code or "") or ""
  return code:sub(1, 2) == "08" or code == "57P01" or code == "57P02" or code == "57P03"
    or (type(err) == "table" and err.message and tostring(err.message):find("connection is closed"))
end

-- The state's own connection is made in run mode whatever the run's mode
-- (a dry-run's connections are read-only; a simulation's touch nothing).
local function connect(self)
  local sql = require "wf.sql"
  if self.mode and self.mode ~= "run" then core.set_mode("run") end
  local ok, conn = pcall(sched.await, sql.connect, self.url)
  if self.mode and self.mode ~= "run" then core.set_mode(self.mode) end
  if not ok then error(conn, 0) end
  return conn
end

function Store:connect()
  self.conn = nil
  self.conn = connect(self)
end

-- Runs fn(conn) after every call before it (one connection, one statement
-- at a time, in order), reconnecting while PostgreSQL is away for up to
-- self.patience seconds. Returns fn's results or raises.
function Store:call(fn)
  local previous = self.tail
  local function op()
    if previous and previous.status ~= "done" then sched.join(previous) end
    local deadline = core.now() + self.patience
    while true do
      local ok, a, b = pcall(function()
        if not self.conn then self:connect() end
        return fn(self.conn)
      end)
      if ok then return a, b end
      if not connection_lost(a) or core.now() > deadline then error(a, 0) end
      if self.conn then pcall(self.conn.close, self.conn) end
      self.conn = nil
      sched.sleep(0.5)
    end
  end
  local task = sched.spawn_free(op)
  self.tail = task
  return sched.finish(task)
end

function Store:query(text, ...)
  local args = table.pack(...)
  return self:call(function(conn) return conn:query(text, table.unpack(args, 1, args.n)) end)
end

-- A hot statement (APPEND, RENEW), prepared once per connection: parsed
-- and planned once, not at every step. A new connection prepares again.
function Store:execute(name, text, ...)
  local args = table.pack(...)
  return self:call(function(conn)
    local done = self.prepared[conn]
    if not done then
      done = {}
      self.prepared[conn] = done
    end
    if not done[name] then
      conn:_prepare(name, text)
      done[name] = true
    end
    return conn:_execute(name, table.unpack(args, 1, args.n))
  end)
end

function Store:one(text, ...)
  local args = table.pack(...)
  return self:call(function(conn) return conn:one(text, table.unpack(args, 1, args.n)) end)
end

-- A query that answers with rows, called from code that must not raise:
-- the rows, or nil and the error's text.
local function try(fn, ...)
  local ok, result = pcall(fn, ...)
  if ok then return result end
  return nil, tostring(type(result) == "table" and result.message or result)
end

-- Opens the store and checks the schema (init: create or migrate it).
function state_pg.open(url, init)
  local store = setmetatable({ kind = "pg", url = url, where = display(url), epochs = {},
    prepared = setmetatable({}, { __mode = "k" }), owner = owner_name(), lease = 30, patience = 60 }, Store)
  local ok, err = pcall(store.connect, store)
  if not ok then
    return nil, string.format("cannot reach the state at %s: %s", store.where,
      tostring(type(err) == "table" and err.message or err))
  end
  store.patience = tonumber(os.getenv("WFENGINE_STATE_PATIENCE") or "") or 60
  -- a foreground run's lease (a worker's is its --lease): how long a run
  -- whose process died stays held before another may resume it
  local lease = math.tointeger(tonumber(os.getenv("WFENGINE_STATE_LEASE") or ""))
  if lease and lease >= 1 then store.lease = lease end
  if init then return store end
  local version = try(store.one, store, [[SELECT (SELECT max(schema_version) FROM wfengine.meta) AS v
    WHERE to_regclass('wfengine.meta') IS NOT NULL]])
  local v = version and version.v
  if not v then
    return nil, string.format("%s has no wfengine tables: run `wfengine state init --state %s` first",
      store.where, store.where)
  end
  store.version = v
  if v > SCHEMA_VERSION then
    return nil, string.format("%s has wfengine schema version %d, newer than this wfengine "
      .. "understands (%d): upgrade wfengine", store.where, v, SCHEMA_VERSION)
  end
  return store
end

-- `wfengine state init`: creates or migrates the tables. Returns a line.
function state_pg.init(url)
  local store, err = state_pg.open(url, true)
  if not store then return nil, err end
  local found = try(store.one, store, [[SELECT (SELECT max(schema_version) FROM wfengine.meta) AS v
    WHERE to_regclass('wfengine.meta') IS NOT NULL]])
  if found and found.v and found.v > SCHEMA_VERSION then
    return nil, string.format("%s has wfengine schema version %d, newer than this wfengine (%d)",
      store.where, found.v, SCHEMA_VERSION)
  end
  local ok, problem = pcall(store.call, store, function(conn)
    return conn:tx(function(c)
      c:_run("SET LOCAL client_min_messages = warning")
      c:_run("SELECT pg_advisory_xact_lock(7263541)")
      c:_run(SCHEMA)
      c:_run("DELETE FROM wfengine.meta")
      c:query("INSERT INTO wfengine.meta (schema_version) VALUES ($1)", SCHEMA_VERSION)
    end)
  end)
  if not ok then return nil, "cannot create the tables: " .. tostring(problem) end
  store.version = SCHEMA_VERSION
  return string.format("state ready at %s (schema version %d)", store.where, SCHEMA_VERSION), store
end

function Store:run_path(run_id)
  return "run " .. run_id .. " in " .. self.where
end

local function no_run(self, run_id)
  return "no run " .. run_id .. " in " .. self.where
end

-- Renews the lease of a run this process holds until it ends; a renewal
-- refused (another took the run over) drops the run at once.
function Store:keep_lease(run_id)
  if self.renewing and self.renewing[run_id] then return end
  self.renewing = self.renewing or {}
  local task = sched.spawn(function()
    while self.epochs[run_id] do
      sched.sleep(self.lease / 3)
      local epoch = self.epochs[run_id]
      if not epoch then return end
      local ok, count = pcall(self.execute, self, "wfengine_renew", RENEW, run_id, epoch)
      if ok and #count == 0 and self.epochs[run_id] == epoch then
        local row = self:one("SELECT epoch FROM wfengine.runs WHERE run_id = $1", run_id)
        if not row or row.epoch ~= epoch then
          io.stderr:write(string.format("wfengine: run %s: taken over by another process "
            .. "(epoch %s, ours %d): this process drops the run\n", run_id, tostring(row and row.epoch), epoch))
          io.stderr:flush()
          os.exit(core.EXIT.INTERRUPTED, false)
        end
      end
    end
  end)
  task.daemon = true
  self.renewing[run_id] = task
end

-- One process per run: a new run's row, or the lease of an existing run
-- when nobody holds it (its holder ended or its lease expired).
function Store:run_lock(run_id, create, durable, started)
  if create then
    local ok, err = pcall(self.query, self, [[INSERT INTO wfengine.runs
      (run_id, workflow, mode, status, epoch, owner, lease_seconds, lease_until)
      VALUES ($1, $2, $3, 'running', 1, $4, $5::int, now() + make_interval(secs => $5::int))]],
      run_id, started and started.workflow or "?", started and started.mode or "run", self.owner, self.lease)
    if not ok then return nil, "cannot record run " .. run_id .. ": " .. tostring(err) end
    self.epochs[run_id] = 1
  else
    local rows, err = try(self.query, self, TAKE, run_id, self.owner, self.lease)
    if not rows then return nil, "cannot take run " .. run_id .. ": " .. err end
    if #rows == 0 then
      local row = self:one("SELECT owner FROM wfengine.runs WHERE run_id = $1", run_id)
      if not row then return nil, no_run(self, run_id) end
      return nil, string.format("run %s is running in another process right now (%s): wait for it "
        .. "or stop it", run_id, tostring(row.owner))
    end
    self.epochs[run_id] = rows[1].epoch
  end
  if durable ~= false then self:keep_lease(run_id) end
  return true
end

-- A run claimed by this process elsewhere (a worker's claim): its epoch.
function Store:adopt(run_id, epoch)
  self.epochs[run_id] = epoch
  self:keep_lease(run_id)
end

function Store:live(run_id)
  local row = self:one([[SELECT owner IS NOT NULL AND lease_until > now() AS live
    FROM wfengine.runs WHERE run_id = $1]], run_id)
  return row ~= nil and row.live == true
end

-- A pooled run no process holds that a worker will take: queued, or
-- claimable again (interrupted, or its worker's lease ran out).
function Store:waiting(run_id)
  local row = self:one([[SELECT pooled AND status IN ('queued', 'running', 'interrupted')
      AND (owner IS NULL OR lease_until <= now()) AS waiting
    FROM wfengine.runs WHERE run_id = $1]], run_id)
  return row ~= nil and row.waiting == true
end

local Writer = {}
Writer.__index = Writer

-- How long an event after which the engine does not act (a step's result,
-- a log line) waits for the next one it acts on, to go in the same
-- statement; then it goes alone (a follower sees it by then).
local HOLD = 0.02

-- A PostgreSQL array literal of texts.
local function text_array(items)
  local quoted = {}
  for i, text in ipairs(items) do quoted[i] = '"' .. text:gsub('[\\"]', "\\%0") .. '"' end
  return "{" .. table.concat(quoted, ",") .. "}"
end

-- Sends the events held so far in one committed statement (synchronous
-- commit), with status for the run's row. Returns true, or nil and why
-- (fenced); raises when the state stays unreachable.
function Writer:flush(status)
  local held = self.held
  if #held == 0 then return true end
  self.held = {}
  local store, run_id = self.store, self.run_id
  local epoch = store.epochs[run_id]
  local seqs, lines = {}, {}
  for i, item in ipairs(held) do seqs[i], lines[i] = tostring(item.seq), item.line end
  local ok, rows = pcall(store.execute, store, "wfengine_append", APPEND, run_id, "{" .. table.concat(seqs, ",")
    .. "}", text_array(lines), status, epoch)
  if not ok then
    -- committed before a lost connection
    if type(rows) == "table" and tostring(rows.code) == "23505" then return true end
    error(rows, 0)
  end
  if #rows == 0 then
    store.epochs[run_id] = nil
    self.fenced = string.format("fenced: another process took the run over (our epoch %s is stale)",
      tostring(epoch))
    return nil, self.fenced
  end
  return true
end

-- Holds an event the engine does not act on for the next append (one
-- statement, one commit, for both), or HOLD seconds at most.
function Writer:hold(item)
  self.held[#self.held + 1] = item
  if self.flushing then return end
  self.flushing = true
  sched.spawn_free(function()
    sched.sleep(HOLD)
    self.flushing = false
    local ok, err = pcall(self.flush, self)
    if not ok then self.failure = err end
  end)
end

-- Appends one event. One the engine acts on (journal.synced) is committed
-- (synchronous commit) before it returns, with every event held before
-- it; the others are held (Writer:hold): as the file backend writes them
-- unsynced, made durable by the next synced one. Returns the line, or
-- nil, "fenced: ..." when the run was taken over.
function Writer:append(event)
  if self.fenced then return nil, self.fenced end
  if self.failure then
    local failure = self.failure
    self.failure = nil
    error(failure, 0)
  end
  local line = journal.encode(event)
  local item = { seq = event.seq, line = line }
  if not journal.synced(event.type) then
    self:hold(item)
    return line
  end
  self.held[#self.held + 1] = item
  local ok, why = self:flush(STATUS_OF[event.type])
  if not ok then return nil, why end
  return line
end

function Store:writer(run_id)
  return setmetatable({ store = self, run_id = run_id, held = {} }, Writer)
end

function Store:events(run_id)
  local rows, err = try(self.query, self,
    "SELECT seq, event FROM wfengine.events WHERE run_id = $1 ORDER BY seq", run_id)
  if not rows then return nil, err end
  if #rows == 0 then
    local row = self:one("SELECT status, note FROM wfengine.runs WHERE run_id = $1", run_id)
    if not row then return nil, no_run(self, run_id) end
    if row.note then return nil, string.format("run %s %s: %s", run_id, row.status, row.note) end
  end
  local events = {}
  for i, row in ipairs(rows) do
    local event = journal.decode(row.event)
    if not event then
      return nil, string.format("%s: event %d is garbled", self:run_path(run_id), row.seq)
    end
    events[i] = event
  end
  return events
end

-- Run ids newest first, filtered in SQL (the indexes): a crashed run's row
-- says running (history tells them apart by the lease).
function Store:list(filter)
  filter = filter or {}
  local status = filter.status
  if status == "crashed" then status = "running" end
  local rows = self:query([[SELECT run_id FROM wfengine.runs
    WHERE ($1::text IS NULL OR status = $1) AND ($2::text IS NULL OR workflow = $2)
      AND ($3::float8 IS NULL OR started >= to_timestamp($3))
    ORDER BY started DESC, run_id DESC]], status, filter.workflow,
    filter.since)
  local ids = {}
  for i, row in ipairs(rows) do ids[i] = row.run_id end
  return ids
end

-- Finished: the lease is given back at once (another may take the run).
function Store:finished(run_id)
  local epoch = self.epochs[run_id]
  self.epochs[run_id] = nil
  if epoch then pcall(self.query, self, RELEASE, run_id, epoch) end
end

-- ---- lock keys: the same rules as locks.lua, in wfengine.locks ----

local function holder_row(self, key)
  return self:one("SELECT run_id, status FROM wfengine.locks WHERE key = $1", key)
end

function Store:lock_key(key, run_id)
  local locks = require "wfengine.locks"
  for _ = 1, 5 do
    local row = holder_row(self, key)
    if not row then
      local taken = self:query([[INSERT INTO wfengine.locks (key, run_id, status) VALUES ($1, $2, 'running')
        ON CONFLICT DO NOTHING RETURNING key]], key, run_id)
      if #taken == 1 then return true end
    elseif row.run_id == run_id then
      self:query("UPDATE wfengine.locks SET status = 'running' WHERE key = $1", key)
      return true
    else
      if self:live(row.run_id) then return nil, locks.refusal(key, row.run_id, "running") end
      local status = locks.still_held_by(self, { run_id = row.run_id })
      if status then return nil, locks.refusal(key, row.run_id, status) end
      local taken = self:query([[UPDATE wfengine.locks SET run_id = $2, status = 'running', taken = now()
        WHERE key = $1 AND run_id = $3 RETURNING key]], key, run_id, row.run_id)
      if #taken == 1 then return true end
    end
  end
  return nil, "lock '" .. key .. "' is contended: try again"
end

function Store:release_key(key, run_id, code)
  if not key then return end
  local status = require("wfengine.locks").kept_status(code)
  if not status then
    pcall(self.query, self, "DELETE FROM wfengine.locks WHERE key = $1 AND run_id = $2", key, run_id)
  else
    pcall(self.query, self, "UPDATE wfengine.locks SET status = $3 WHERE key = $1 AND run_id = $2", key,
      run_id, status)
  end
end

function Store:holder(key)
  local row = holder_row(self, key)
  return row and row.run_id
end

function Store:unlock(key, confirm)
  local locks = require "wfengine.locks"
  local row = holder_row(self, key)
  if not row then return nil, string.format("lock '%s' is not held: nothing to release", key) end
  if self:live(row.run_id) then
    return nil, locks.refusal(key, row.run_id, "running") .. ": stop it first"
  end
  local status = locks.still_held_by(self, { run_id = row.run_id }) or "done with it"
  local what = string.format("lock '%s' held by run %s (%s)", key, row.run_id, status)
  if not confirm("release " .. what .. "? Its run's steps are not undone by this.") then
    return nil, "not released: " .. what
  end
  self:query("DELETE FROM wfengine.locks WHERE key = $1 AND run_id = $2", key, row.run_id)
  return "released " .. what
end

-- The run waiting for it hears of it (wfengine_events, its id).
function Store:answer(run_id, step, yes)
  self:query([[WITH a AS (INSERT INTO wfengine.answers (run_id, step, yes) VALUES ($1, $2, $3)
    ON CONFLICT (run_id, step) DO UPDATE SET yes = excluded.yes, answered = now() RETURNING run_id)
    SELECT pg_notify('wfengine_events', run_id) FROM a]], run_id, step, yes)
  return true
end

function Store:answer_of(run_id, step)
  local row = self:one("SELECT yes FROM wfengine.answers WHERE run_id = $1 AND step = $2", run_id, step)
  if row then return row.yes end
end

-- A long step's progress for a console's progress bar: the run's row
-- (runs.progress, schema version 2), written only under the run's epoch;
-- best effort (the journal is complete without it). A version 1 state has
-- no column: no bar until `state init` migrates it.
function Store:progress(run_id, progress)
  local epoch = self.epochs[run_id]
  if (self.version or 0) < 2 or not epoch then return true end
  local json = require "wf.json"
  pcall(self.query, self, "UPDATE wfengine.runs SET progress = $2::jsonb WHERE run_id = $1 AND epoch = $3",
    run_id, json.encode(progress), epoch)
  return true
end

-- The run's last progress as JSON text, or nil.
function Store:progress_of(run_id)
  if (self.version or 0) < 2 then return nil end
  local row = try(self.one, self, "SELECT progress::text AS p FROM wfengine.runs WHERE run_id = $1", run_id)
  return row and row.p or nil
end

-- ---- the pool: submit and workers ----

-- Queues a run for the workers. snapshot and request are JSON text.
function Store:submit(run_id, workflow, mode, snapshot, request)
  self:query([[WITH i AS (INSERT INTO wfengine.runs (run_id, workflow, mode, status, pooled, snapshot, request)
    VALUES ($1, $2, $3, 'queued', true, $4, $5) RETURNING run_id)
    SELECT pg_notify('wfengine_queue', run_id) FROM i]], run_id, workflow, mode, snapshot, request)
end

-- One run for a worker, or nil: {run_id, epoch}.
function Store:claim(owner, lease)
  local rows = self:query(CLAIM, owner, lease)
  return rows[1]
end

function Store:pooled(run_id)
  return self:one([[SELECT run_id, workflow, mode, status, epoch, owner, snapshot, request, note
    FROM wfengine.runs WHERE run_id = $1]], run_id)
end

function Store:update_snapshot(run_id, snapshot)
  self:query("UPDATE wfengine.runs SET snapshot = $2 WHERE run_id = $1 AND pooled", run_id, snapshot)
end

-- A pooled run that cannot go on here (a secret missing on this worker):
-- paused, with why, and its lease given back.
function Store:set_aside(run_id, epoch, why)
  self:query([[UPDATE wfengine.runs SET status = 'paused', note = $3, owner = NULL, lease_until = NULL
    WHERE run_id = $1 AND epoch = $2]], run_id, epoch, why)
end

-- How many runs owner still holds (a stopping worker waits for none).
function Store:held_by(owner)
  local row = self:one([[SELECT count(*) AS n FROM wfengine.runs
    WHERE owner = $1 AND lease_until > now()]], owner)
  return row and row.n or 0
end

-- Seconds until the first lease of a pooled run runs out (a worker may
-- take it then), or nil when no pooled run is held.
function Store:next_expiry()
  local row = self:one([[SELECT extract(epoch FROM min(lease_until) - now())::float8 AS s
    FROM wfengine.runs WHERE pooled AND status IN ('queued', 'running', 'interrupted')
      AND owner IS NOT NULL]])
  return row and row.s
end

-- The connection that LISTENs, beside the one the queries use.
function Store:listener()
  if not self.listening then
    local conn = connect(self)
    conn:_run("LISTEN wfengine_events")
    conn:_run("LISTEN wfengine_queue")
    self.listening = conn
  end
  return self.listening
end

-- Waits up to timeout seconds for news: an event of run_id, or (run_id
-- nil) a run queued or given back. Returns true when there is some (or
-- may be: after a lost connection), false after the timeout.
function Store:wait_event(run_id, timeout)
  local deadline = core.now() + timeout
  while true do
    local left = deadline - core.now()
    if left <= 0 then return false end
    local ok, channel, payload = pcall(function() return self:listener():wait_notify(left) end)
    if not ok then
      if self.listening then pcall(self.listening.close, self.listening) end
      self.listening = nil
      if not connection_lost(channel) then error(channel, 0) end
      sched.sleep(math.min(left, 0.5))
      return true -- notifications may have been missed: look again
    end
    if not channel then return false end
    if (run_id == nil and channel == "wfengine_queue") or (run_id ~= nil and payload == run_id) then
      return true
    end
  end
end

function Store:close()
  if self.conn then pcall(self.conn.close, self.conn) end
  if self.listening then pcall(self.listening.close, self.listening) end
  self.conn, self.listening = nil, nil
end

return state_pg
