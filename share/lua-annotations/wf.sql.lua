---@meta wf.sql
-- LuaLS annotations of wf.sql (docs/modules.md, "wf.sql").

---A libpq URI or key/value string, or a table of libpq keywords
---(dsn = "..." gives a base the other keys override).
---@alias wf.sql.Dsn string|{ dsn?: string, host?: string, port?: integer|string, dbname?: string, database?: string, user?: string, password?: string, sslmode?: string, [string]: any }

---A row: a table keyed by column name (NULL columns are absent).
---@alias wf.sql.Row table<string, any>

---A connection (sql.connect); closed by close(), garbage collection or <close>.
---@class wf.sql.Connection
local Connection = {}

---Array of rows.
---@param q string
---@param ... any parameters $1..$n
---@return wf.sql.Row[]
function Connection:query(q, ...) end

---The first row, or nil.
---@param q string
---@param ... any
---@return wf.sql.Row?
function Connection:one(q, ...) end

---The first column of the first row, or nil.
---@param q string
---@param ... any
---@return any
function Connection:scalar(q, ...) end

---The number of rows affected (0 for DDL; dry-run: runs nothing, returns 0).
---@param q string
---@param ... any
---@return integer
function Connection:exec(q, ...) end

---fn(conn, ...) inside BEGIN/COMMIT (ROLLBACK if it raises; nested: a SAVEPOINT).
---@param fn fun(conn: wf.sql.Connection, ...): ...
---@param ... any
---@return ...
function Connection:tx(fn, ...) end

---The SCRAM-SHA-256 verifier of password for user (both become secrets).
---@param password string
---@param user string
---@return string
function Connection:encrypt_password(password, user) end

---Closes; calling it again does nothing.
---The next NOTIFY on a channel this connection LISTENs to (conn:exec("LISTEN ch")):
---channel and payload, or nil after timeout seconds (nil: no limit; 0: only a look).
---Waits on the loop; a lost connection raises a retryable 08006 error.
---@param timeout? number
---@return string? channel
---@return string? payload
function Connection:wait_notify(timeout) end

function Connection:close() end

---What copy_database returns.
---@class wf.sql.CopyStats
---@field tables integer
---@field rows integer
---@field bytes integer
---@field seconds number
---@field phases table<string, number> wall seconds by phase
---@field rewrite? wf.sql.RewriteStats with the rewrite option

---What copy_database's rewrite changed (or sql.rewrite_count would).
---@class wf.sql.RewriteStats
---@field columns { name: string, op: string, kind: string }[] the columns rewritten
---@field values integer values changed
---@field changed table<string, integer> values changed per column ("table.column"; "schema.table.column" outside public)

---@class wf.sql
local sql = {}

---Opens a connection.
---@param dsn wf.sql.Dsn
---@return wf.sql.Connection
function sql.connect(dsn) end

---A quoted identifier; several names are joined with dots.
---@param name string
---@param ... string
---@return string
function sql.ident(name, ...) end

---SQL text for a value (prefer parameters).
---@param value any
---@return string
function sql.literal(value) end

---Marks a Lua string as binary data for a parameter.
---@param bytes string
---@return any
function sql.bytea(bytes) end

---One-shot: connect, query, close.
---@param dsn wf.sql.Dsn
---@param q string
---@param ... any
---@return wf.sql.Row[]
function sql.query(dsn, q, ...) end

---One-shot: connect, first row, close.
---@param dsn wf.sql.Dsn
---@param q string
---@param ... any
---@return wf.sql.Row?
function sql.one(dsn, q, ...) end

---One-shot: connect, first value, close.
---@param dsn wf.sql.Dsn
---@param q string
---@param ... any
---@return any
function sql.scalar(dsn, q, ...) end

---One-shot: connect, execute, close.
---@param dsn wf.sql.Dsn
---@param q string
---@param ... any
---@return integer
function sql.exec(dsn, q, ...) end

---fn(conn) with a connection closed afterwards, even on error.
---@generic T
---@param dsn wf.sql.Dsn
---@param fn fun(conn: wf.sql.Connection): T
---@return T
function sql.with(dsn, fn) end

---Dry-run only: every later connection to target (same host, port and dbname)
---reads source instead, read-only, in a REPEATABLE READ transaction on one
---snapshot taken now: the world a copy of source made now would show.
---Returns true in a dry-run; false and does nothing in a run or a simulation.
---@param target wf.sql.Dsn the database the run would write (copy into)
---@param source wf.sql.Dsn the database to read in its place
---@return boolean
function sql.read_as(target, source) end

---Copies a database: schema, data (jobs in parallel), sequences, constraints, indexes.
---@param opts { from: wf.sql.Dsn, to: wf.sql.Dsn, jobs?: integer, [string]: any }
---@return wf.sql.CopyStats
function sql.copy_database(opts) end

---What copy_database{ from = from, rewrite = rewrite } would rewrite in its
---stream, counted without writing (the same C rewrite in check mode, jobs
---tables at once): a read-only session is enough. Nothing in simulate.
---@param opts { from: wf.sql.Dsn, rewrite: table, jobs?: integer }
---@return wf.sql.RewriteStats
function sql.rewrite_count(opts) end

return sql
