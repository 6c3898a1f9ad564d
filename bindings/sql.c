/* sql.c: the C primitives of wf.sql (module "wf.sql.core"): PostgreSQL
 * connections through libpq's asynchronous API, driven by the engine's loop.
 *
 * connect(dsn) -> conn; conn:query(q, ...) with a result shape (rows, one
 * row, one value, affected count); conn:close(); and helpers the Lua prelude
 * (bindings/sql.lua) builds the friendly API on: conninfo parsing, the
 * transaction status, the mode. Uses wf.h to wait (wf_await/wf_wake), to be
 * cancelled (PQcancel, then drain or close), to log and to redact.
 *
 * Type mapping of results (text format): int2/int4/int8/oid -> Lua integers
 * (exact), bool -> boolean, float4/float8 -> floats, bytea -> the raw bytes,
 * NULL -> nil, everything else (numeric, text, json, arrays, dates, ...) ->
 * the server's text. */
#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

#include "sql.h"

#define SQL_BYTEA_META "wf.sql.bytea"
#define SQL_NOTICES_MAX 16384

#define BOOLOID 16
#define BYTEAOID 17
#define INT8OID 20
#define INT2OID 21
#define INT4OID 23
#define OIDOID 26
#define FLOAT4OID 700
#define FLOAT8OID 701

/* What a query returns to Lua; kept in the continuation context. */
enum sql_shape { SHAPE_ROWS, SHAPE_ONE, SHAPE_SCALAR, SHAPE_COUNT, SHAPE_STATUS };
#define SHAPE_MASK 0x0f
#define SHAPE_REPORT 0x10   /* exec: in dry-run, report instead of running */
#define SHAPE_PREPARE 0x20  /* _prepare(name, text): PQsendPrepare */
#define SHAPE_PREPARED 0x40 /* _execute(name, ...): PQsendQueryPrepared */

struct sql_cancel_request {
  uv_work_t work;
  PGcancel *cancel; /* owned */
  sql_conn *conn;   /* NULL once the connection was closed */
};

static sql_conn *conn_of_wait(wf_wait *wait) {
  return (sql_conn *)(void *)((char *)wait - offsetof(sql_conn, wait));
}

/* ---- the socket ---------------------------------------------------------- */

static void poll_release(sql_conn *conn) {
  if (!conn->poll) return;
  conn->poll->data = NULL;
  uv_close((uv_handle_t *)conn->poll, wf_close_free);
  conn->poll = NULL;
  conn->poll_events = 0;
  conn->poll_fd = -1;
}

static void on_poll(uv_poll_t *handle, int status, int events) {
  sql_conn *conn = handle->data;
  if (!conn) return;
  /* On a socket error (POLLERR: a reset, a terminated backend) libuv has
   * already stopped the handle: forget the recorded events, or the next
   * sql_conn_watch would take the poll for running and nothing would ever
   * wake the waiter. Then let libpq find out what happened. */
  if (status < 0) {
    conn->poll_events = 0;
    events = UV_READABLE | UV_WRITABLE;
  }
  if (!conn->driver) return;
  conn->driver(conn, events);
}

int sql_conn_watch(sql_conn *conn, int events) {
  int fd = conn->pg ? PQsocket(conn->pg) : -1;
  if (conn->poll && (conn->poll_fd != fd || fd < 0)) poll_release(conn);
  if (fd < 0) return events ? UV_EBADF : 0;
  if (!conn->poll) {
    if (!events) return 0;
    conn->poll = malloc(sizeof *conn->poll);
    if (!conn->poll) return UV_ENOMEM;
    int rc = uv_poll_init(conn->loop, conn->poll, fd);
    if (rc < 0) {
      free(conn->poll);
      conn->poll = NULL;
      return rc;
    }
    conn->poll->data = conn;
    conn->poll_fd = fd;
    conn->poll_events = 0;
  }
  if (events == conn->poll_events) return 0;
  conn->poll_events = events;
  if (!events) return uv_poll_stop(conn->poll);
  return uv_poll_start(conn->poll, events, on_poll);
}

/* ---- cancelling ---------------------------------------------------------- */

static void cancel_work(uv_work_t *work) {
  sql_cancel_request *request = work->data;
  char message[256];
  /* PQcancel is thread-safe and independent of the PGconn. */
  (void)PQcancel(request->cancel, message, sizeof message);
}

static void drain_check(sql_conn *conn);

static void cancel_after(uv_work_t *work, int status) {
  (void)status;
  sql_cancel_request *request = work->data;
  sql_conn *conn = request->conn;
  PQfreeCancel(request->cancel);
  free(request);
  if (conn) {
    conn->cancel = NULL;
    drain_check(conn);
  }
}

void sql_conn_cancel(sql_conn *conn) {
  if (!conn->pg || conn->cancel) return;
  sql_cancel_request *request = calloc(1, sizeof *request);
  if (!request) return;
  request->cancel = PQgetCancel(conn->pg);
  if (!request->cancel) {
    free(request);
    return;
  }
  request->conn = conn;
  request->work.data = request;
  if (uv_queue_work(conn->loop, &request->work, cancel_work, cancel_after) < 0) {
    PQfreeCancel(request->cancel);
    free(request);
    return;
  }
  conn->cancel = request;
}

/* ---- closing ------------------------------------------------------------- */

static void results_clear(sql_conn *conn) {
  PQclear(conn->result);
  PQclear(conn->error);
  conn->result = conn->error = NULL;
  free(conn->failure);
  conn->failure = NULL;
}

static void set_failure(sql_conn *conn, const char *message) {
  if (conn->failure) return;
  conn->failure = strdup(message && *message ? message : "connection failure");
  if (conn->failure) {
    /* libpq ends its messages with a newline */
    size_t n = strlen(conn->failure);
    while (n > 0 && (conn->failure[n - 1] == '\n' || conn->failure[n - 1] == ' '))
      conn->failure[--n] = '\0';
  }
}

static void notify_timer_release(sql_conn *conn);

void sql_conn_close(sql_conn *conn, const char *why) {
  enum sql_conn_state state = conn->state;
  if (conn->pg && (why || conn->failure)) conn->lost = 1;
  poll_release(conn);
  notify_timer_release(conn);
  if (conn->cancel) {
    conn->cancel->conn = NULL;
    conn->cancel = NULL;
  }
  if (conn->pg) {
    PQfinish(conn->pg);
    conn->pg = NULL;
  }
  conn->driver = NULL;
  conn->state = SQL_IDLE;
  conn->in_copy_out = 0;
  if (state == SQL_BUSY || state == SQL_CONNECTING || state == SQL_LISTENING) {
    set_failure(conn, why ? why : "connection closed while a query was running");
    wf_wake(&conn->wait);
  } else if (state == SQL_DRAINING && conn->wake_when_drained) {
    conn->wake_when_drained = 0;
    wf_wake(&conn->wait);
  }
}

/* ---- running a query ----------------------------------------------------- */

static void notice_receiver(void *arg, const PGresult *result) {
  sql_conn *conn = arg;
  const char *severity = PQresultErrorField(result, PG_DIAG_SEVERITY);
  const char *message = PQresultErrorField(result, PG_DIAG_MESSAGE_PRIMARY);
  if (!message) return;
  if (!severity) severity = "NOTICE";
  size_t need = strlen(severity) + strlen(message) + 4;
  if (conn->notices_length + need > SQL_NOTICES_MAX) return;
  char *grown = realloc(conn->notices, conn->notices_length + need);
  if (!grown) return;
  conn->notices = grown;
  conn->notices_length +=
      (size_t)sprintf(conn->notices + conn->notices_length, "%s: %s\n", severity, message) + 1;
  conn->notices_length--; /* keep one terminating NUL, no more */
}

/* The operation is over: wake whoever waits, or finish the drain. */
static void query_done(sql_conn *conn) {
  sql_conn_watch(conn, 0);
  conn->driver = NULL;
  if (conn->state == SQL_DRAINING) {
    drain_check(conn);
    return;
  }
  conn->state = SQL_IDLE;
  wf_wake(&conn->wait);
}

static void query_fail(sql_conn *conn, const char *message) {
  set_failure(conn, message);
  /* A connection libpq gave up on is closed, never left half-open;
   * sql_conn_close wakes the waiter, if any. */
  if (conn->pg && PQstatus(conn->pg) == CONNECTION_BAD) {
    sql_conn_close(conn, message);
    return;
  }
  query_done(conn);
}

/* Reads what has arrived; keeps the last good result and the first error. */
static void query_driver(sql_conn *conn, int events) {
  PGconn *pg = conn->pg;
  if ((events & UV_READABLE) && !PQconsumeInput(pg)) {
    query_fail(conn, PQerrorMessage(pg));
    return;
  }
  int flush = PQflush(pg);
  if (flush < 0) {
    query_fail(conn, PQerrorMessage(pg));
    return;
  }
  for (;;) {
    if (conn->in_copy_out) {
      char *buffer = NULL;
      int n = PQgetCopyData(pg, &buffer, 1);
      if (buffer) PQfreemem(buffer);
      if (n > 0) continue;
      if (n == 0) break;
      conn->in_copy_out = 0;
      if (n == -2) {
        query_fail(conn, PQerrorMessage(pg));
        return;
      }
    }
    if (PQisBusy(pg)) break;
    PGresult *result = PQgetResult(pg);
    if (!result) {
      query_done(conn);
      return;
    }
    switch (PQresultStatus(result)) {
    case PGRES_COPY_IN:
      PQclear(result);
      set_failure(conn, "COPY FROM STDIN is not supported here (copy_database streams tables)");
      PQputCopyEnd(pg, "not supported by wf.sql");
      flush = PQflush(pg);
      continue;
    case PGRES_COPY_OUT:
      PQclear(result);
      set_failure(conn, "COPY TO STDOUT is not supported here (copy_database streams tables)");
      conn->in_copy_out = 1;
      continue;
    case PGRES_FATAL_ERROR:
    case PGRES_BAD_RESPONSE:
      if (!conn->error) {
        conn->error = result;
        result = NULL;
      }
      break;
    default:
      PQclear(conn->result);
      conn->result = result;
      result = NULL;
      break;
    }
    PQclear(result);
  }
  if (sql_conn_watch(conn, UV_READABLE | (flush == 1 ? UV_WRITABLE : 0)) < 0)
    query_fail(conn, "cannot watch the connection's socket");
}

/* Called when a cancelled query may have finished draining: once the results
 * are read and the cancel request is done, the connection is idle again, or
 * closed if the abandoned code left a transaction open (nobody will finish
 * it). */
static void drain_check(sql_conn *conn) {
  if (conn->state != SQL_DRAINING || conn->driver || conn->cancel) return;
  results_clear(conn);
  conn->state = SQL_IDLE;
  if (conn->pg && PQtransactionStatus(conn->pg) != PQTRANS_IDLE)
    sql_conn_close(conn, "connection closed: a cancelled statement left its transaction open");
  if (conn->wake_when_drained) {
    conn->wake_when_drained = 0;
    wf_wake(&conn->wait);
  }
}

static void query_cancel(wf_wait *wait) {
  sql_conn *conn = conn_of_wait(wait);
  wait->cancel = NULL;
  if (conn->state == SQL_CONNECTING) {
    conn->state = SQL_IDLE; /* nobody to wake: the waiter is gone */
    sql_conn_close(conn, "connection attempt cancelled");
    return;
  }
  if (conn->state != SQL_BUSY) return;
  conn->state = SQL_DRAINING;
  sql_conn_cancel(conn);
}

static void drain_wait_cancel(wf_wait *wait) {
  conn_of_wait(wait)->wake_when_drained = 0;
}

/* ---- connecting ---------------------------------------------------------- */

static void connect_driver(sql_conn *conn, int events) {
  (void)events;
  PGconn *pg = conn->pg;
  switch (PQconnectPoll(pg)) {
  case PGRES_POLLING_READING:
    if (sql_conn_watch(conn, UV_READABLE) < 0) break;
    return;
  case PGRES_POLLING_WRITING:
    if (sql_conn_watch(conn, UV_WRITABLE) < 0) break;
    return;
  case PGRES_POLLING_OK:
    PQsetnonblocking(pg, 1);
    if (conn->read_only_setup) {
      /* dry-run: every statement of the session runs read-only */
      conn->read_only_setup = 0;
      if (!PQsendQuery(pg, "SET default_transaction_read_only = on")) break;
      conn->driver = query_driver;
      query_driver(conn, 0);
      return;
    }
    query_done(conn);
    return;
  default:
    break;
  }
  set_failure(conn, PQerrorMessage(pg));
  sql_conn_watch(conn, 0);
  conn->driver = NULL;
  conn->state = SQL_IDLE;
  wf_wake(&conn->wait);
}

/* Replaces every "quoted" part of a libpq conninfo parse error, which may
 * quote pieces of the DSN (and so of its password). */
static void push_parse_error(lua_State *L, const char *message) {
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  int quoted = 0;
  for (const char *p = message ? message : "invalid connection string"; *p; p++) {
    if (*p == '"') {
      if (!quoted)
        luaL_addstring(&b, "\"***");
      else
        luaL_addchar(&b, '"');
      quoted = !quoted;
    } else if (!quoted && *p != '\n') {
      luaL_addchar(&b, *p);
    }
  }
  luaL_pushresult(&b);
}

/* Parses a DSN: on success leaves a table {keyword = value} of the options it
 * sets and returns NULL; on failure returns libpq's message (caller frees). */
static char *conninfo_table(lua_State *L, const char *dsn) {
  char *error = NULL;
  PQconninfoOption *options = PQconninfoParse(dsn, &error);
  if (!options) return error ? error : strdup("out of memory");
  /* Only lua_* below: a memory error would leak options; acceptable only
   * because Lua then cannot go on anyway. Collect into C first instead. */
  size_t count = 0;
  for (PQconninfoOption *o = options; o->keyword; o++)
    if (o->val) count++;
  const char **pairs = calloc(count * 2 + 1, sizeof *pairs);
  if (!pairs) {
    PQconninfoFree(options);
    return strdup("out of memory");
  }
  size_t i = 0;
  for (PQconninfoOption *o = options; o->keyword; o++) {
    if (!o->val) continue;
    pairs[i++] = o->keyword;
    pairs[i++] = o->val;
  }
  /* Copy into one Lua string block first so no C memory is held while Lua
   * allocates: build "k\0v\0k\0v\0" and free the libpq structures. */
  size_t total = 0;
  for (size_t j = 0; j < i; j++)
    total += strlen(pairs[j]) + 1;
  char *flat = malloc(total + 1);
  if (!flat) {
    free(pairs);
    PQconninfoFree(options);
    return strdup("out of memory");
  }
  char *w = flat;
  for (size_t j = 0; j < i; j++) {
    size_t n = strlen(pairs[j]) + 1;
    memcpy(w, pairs[j], n);
    w += n;
  }
  free(pairs);
  PQconninfoFree(options);
  /* pushing the flat copy as a Lua string hands it to Lua; then free it */
  lua_pushlstring(L, flat, total);
  free(flat);
  size_t length;
  const char *s = lua_tolstring(L, -1, &length);
  lua_createtable(L, 0, (int)(i / 2));
  for (const char *p = s; p < s + length;) {
    const char *key = p;
    p += strlen(p) + 1;
    const char *value = p;
    p += strlen(p) + 1;
    lua_pushstring(L, value);
    lua_setfield(L, -2, key);
  }
  lua_remove(L, -2);
  return NULL;
}

/* stack: table of options -> pushes the display form "k=v ... password=***" */
static void push_display(lua_State *L, int options) {
  static const char *const order[] = {"host", "hostaddr", "port", "dbname", "user", NULL};
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  int first = 1;
  for (int i = 0; order[i]; i++) {
    if (lua_getfield(L, options, order[i]) == LUA_TSTRING) {
      lua_pushfstring(L, "%s%s=%s", first ? "" : " ", order[i], lua_tostring(L, -1));
      lua_remove(L, -2);
      luaL_addvalue(&b);
      first = 0;
    } else {
      lua_pop(L, 1);
    }
  }
  if (lua_getfield(L, options, "password") == LUA_TSTRING) luaL_addstring(&b, " password=***");
  lua_pop(L, 1);
  luaL_pushresult(&b);
}

static int conn_connect_k(lua_State *L, int status, lua_KContext ctx);

/* core.connect(dsn) -> conn */
static int core_connect(lua_State *L) {
  const char *dsn = luaL_checkstring(L, 1);
  lua_settop(L, 1);
  wf_mode mode = wf_get_mode(L);
  char *parse_error = conninfo_table(L, dsn); /* 2: options */
  if (parse_error) {
    lua_pushstring(L, parse_error);
    PQfreemem(parse_error);
    push_parse_error(L, lua_tostring(L, -1));
    wf_push_error(L, "sql", "08001", 0,
                  lua_pushfstring(L, "invalid connection string: %s", lua_tostring(L, -1)));
    return lua_error(L);
  }
  if (lua_getfield(L, 2, "password") == LUA_TSTRING && wf_add_secret(L, lua_tostring(L, -1)) < 0) {
    wf_push_error(L, "usage", NULL, 0,
                  lua_pushfstring(L,
                                  "sql.connect: the password in the connection string is shorter "
                                  "than %d bytes: too short to redact safely",
                                  WF_SECRET_MIN));
    return lua_error(L);
  }
  lua_pop(L, 1);
  push_display(L, 2);                                     /* 3 */
  sql_conn *conn = lua_newuserdatauv(L, sizeof *conn, 1); /* 4 */
  memset(conn, 0, sizeof *conn);
  conn->poll_fd = -1;
  luaL_setmetatable(L, SQL_CONN_META);
  conn->display = strdup(lua_tostring(L, 3));
  if (!conn->display) return luaL_error(L, "out of memory");
  conn->loop = wf_loop(L);
  if (mode == WF_MODE_SIMULATE) {
    conn->simulate = 1;
    return 1;
  }
  conn->pg = PQconnectStart(dsn);
  if (!conn->pg) return luaL_error(L, "out of memory");
  if (PQstatus(conn->pg) == CONNECTION_BAD) {
    set_failure(conn, PQerrorMessage(conn->pg));
    return conn_connect_k(L, LUA_OK, 0);
  }
  PQsetNoticeReceiver(conn->pg, notice_receiver, conn);
  conn->state = SQL_CONNECTING;
  conn->read_only_setup = mode == WF_MODE_DRY_RUN;
  conn->driver = connect_driver;
  conn->wait.cancel = query_cancel;
  if (sql_conn_watch(conn, UV_WRITABLE) < 0) {
    set_failure(conn, "cannot watch the connection's socket");
    conn->state = SQL_IDLE;
    return conn_connect_k(L, LUA_OK, 0);
  }
  return wf_await(L, &conn->wait, 0, conn_connect_k);
}

static int conn_connect_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  (void)ctx;
  lua_settop(L, 4);
  sql_conn *conn = lua_touserdata(L, 4);
  conn->wait.cancel = NULL;
  if (conn->failure || conn->error || !conn->pg) {
    /* stack: ..., conn; build the message in Lua, then free what C owns */
    if (conn->error) {
      sql_push_result_error(L, conn->error,
                            lua_pushfstring(L, "cannot set up %s: ", conn->display));
    } else {
      lua_pushfstring(L, "cannot connect to %s: %s", conn->display,
                      conn->failure ? conn->failure : "connection closed");
      wf_push_redacted(L, lua_tostring(L, -1), lua_rawlen(L, -1));
      wf_push_error(L, "sql", "08001", 1, lua_tostring(L, -1));
    }
    sql_conn_close(conn, NULL);
    results_clear(conn);
    return lua_error(L);
  }
  results_clear(conn);
  return 1;
}

/* ---- results to Lua ------------------------------------------------------ */

static int hex_value(int c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

static void push_bytea(lua_State *L, const char *text, size_t length) {
  if (length >= 2 && text[0] == '\\' && text[1] == 'x') {
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    for (size_t i = 2; i + 1 < length; i += 2)
      luaL_addchar(&b, (char)(hex_value((unsigned char)text[i]) * 16 +
                              hex_value((unsigned char)text[i + 1])));
    luaL_pushresult(&b);
    return;
  }
  /* bytea_output = escape: let libpq decode it (leaks only if Lua cannot
   * allocate the copy, when the step fails anyway) */
  size_t n = 0;
  unsigned char *raw = PQunescapeBytea((const unsigned char *)text, &n);
  if (!raw) {
    lua_pushlstring(L, text, length);
    return;
  }
  lua_pushlstring(L, (const char *)raw, n);
  PQfreemem(raw);
}

static void push_value(lua_State *L, const PGresult *result, int row, int column) {
  if (PQgetisnull(result, row, column)) {
    lua_pushnil(L);
    return;
  }
  const char *text = PQgetvalue(result, row, column);
  size_t length = (size_t)PQgetlength(result, row, column);
  switch (PQftype(result, column)) {
  case INT2OID:
  case INT4OID:
  case INT8OID:
  case OIDOID: {
    char *end;
    errno = 0;
    long long value = strtoll(text, &end, 10);
    if (errno == 0 && *end == '\0')
      lua_pushinteger(L, (lua_Integer)value);
    else
      lua_pushlstring(L, text, length);
    return;
  }
  case BOOLOID:
    lua_pushboolean(L, text[0] == 't');
    return;
  case FLOAT4OID:
  case FLOAT8OID:
    lua_pushnumber(L, (lua_Number)strtod(text, NULL));
    return;
  case BYTEAOID:
    push_bytea(L, text, length);
    return;
  default:
    lua_pushlstring(L, text, length);
    return;
  }
}

static void push_row(lua_State *L, const PGresult *result, int row) {
  int columns = PQnfields(result);
  lua_createtable(L, 0, columns);
  for (int c = 0; c < columns; c++) {
    push_value(L, result, row, c);
    lua_setfield(L, -2, PQfname(result, c));
  }
}

static int push_shape(lua_State *L, const PGresult *result, int shape) {
  int rows = result && PQresultStatus(result) == PGRES_TUPLES_OK ? PQntuples(result) : 0;
  switch (shape) {
  case SHAPE_ROWS:
    lua_createtable(L, rows, 0);
    for (int r = 0; r < rows; r++) {
      push_row(L, result, r);
      lua_rawseti(L, -2, r + 1);
    }
    return 1;
  case SHAPE_ONE:
    if (rows > 0)
      push_row(L, result, 0);
    else
      lua_pushnil(L);
    return 1;
  case SHAPE_SCALAR:
    if (rows > 0 && PQnfields(result) > 0)
      push_value(L, result, 0, 0);
    else
      lua_pushnil(L);
    return 1;
  case SHAPE_COUNT: {
    const char *count = result ? PQcmdTuples((PGresult *)result) : "";
    lua_pushinteger(L, *count ? (lua_Integer)strtoll(count, NULL, 10) : 0);
    return 1;
  }
  default:
    lua_pushstring(L, result ? PQcmdStatus((PGresult *)result) : "");
    return 1;
  }
}

/* ---- errors -------------------------------------------------------------- */

int sql_sqlstate_retryable(const char *sqlstate) {
  static const char *const transient[] = {"40001", "40P01", "57P01", "57P02",
                                          "57P03", "53300", "55P03", NULL};
  if (!sqlstate || !*sqlstate) return 1;
  if (strncmp(sqlstate, "08", 2) == 0) return 1;
  for (int i = 0; transient[i]; i++)
    if (strcmp(sqlstate, transient[i]) == 0) return 1;
  return 0;
}

static void set_redacted_field(lua_State *L, const PGresult *result, int field, const char *name) {
  const char *value = PQresultErrorField(result, field);
  if (!value) return;
  wf_push_redacted(L, value, strlen(value));
  lua_setfield(L, -2, name);
}

void sql_push_result_error(lua_State *L, const PGresult *result, const char *prefix) {
  const char *sqlstate = PQresultErrorField(result, PG_DIAG_SQLSTATE);
  const char *primary = PQresultErrorField(result, PG_DIAG_MESSAGE_PRIMARY);
  if (!primary) primary = PQresultErrorMessage(result);
  lua_pushfstring(L, "%s%s", prefix ? prefix : "", primary && *primary ? primary : "error");
  wf_push_redacted(L, lua_tostring(L, -1), lua_rawlen(L, -1));
  wf_push_error(L, "sql", sqlstate, sql_sqlstate_retryable(sqlstate), lua_tostring(L, -1));
  lua_replace(L, -3);
  lua_pop(L, 1);
  set_redacted_field(L, result, PG_DIAG_MESSAGE_DETAIL, "detail");
  set_redacted_field(L, result, PG_DIAG_MESSAGE_HINT, "hint");
  set_redacted_field(L, result, PG_DIAG_SEVERITY_NONLOCALIZED, "severity");
  set_redacted_field(L, result, PG_DIAG_SCHEMA_NAME, "schema");
  set_redacted_field(L, result, PG_DIAG_TABLE_NAME, "table");
  set_redacted_field(L, result, PG_DIAG_COLUMN_NAME, "column");
  set_redacted_field(L, result, PG_DIAG_CONSTRAINT_NAME, "constraint");
  const char *position = PQresultErrorField(result, PG_DIAG_STATEMENT_POSITION);
  if (position) {
    lua_pushinteger(L, (lua_Integer)strtol(position, NULL, 10));
    lua_setfield(L, -2, "position");
  }
}

/* ---- waiting for a notification ------------------------------------------ */

/* LISTEN is an ordinary statement; libpq keeps the NOTIFY messages that
 * PQconsumeInput reads (during a query or here) until PQnotifies takes them. */

static void notify_timer_release(sql_conn *conn) {
  if (!conn->notify_timer) return;
  conn->notify_timer->data = NULL;
  uv_close((uv_handle_t *)conn->notify_timer, wf_close_free);
  conn->notify_timer = NULL;
}

/* The wait is over (a notification, the timeout): back to idle, woken. */
static void notify_finish(sql_conn *conn) {
  notify_timer_release(conn);
  sql_conn_watch(conn, 0);
  conn->driver = NULL;
  conn->state = SQL_IDLE;
  wf_wake(&conn->wait);
}

/* Reads what arrived; 1 when a notification is there (or the connection is
 * gone: sql_conn_close woke the waiter), 0 to keep waiting. */
static int notify_take(sql_conn *conn) {
  if (!PQconsumeInput(conn->pg)) {
    set_failure(conn, PQerrorMessage(conn->pg));
    sql_conn_close(conn, conn->failure);
    return 1;
  }
  conn->notify = PQnotifies(conn->pg);
  return conn->notify != NULL;
}

static void notify_driver(sql_conn *conn, int events) {
  (void)events;
  if (conn->state != SQL_LISTENING) return;
  if (notify_take(conn) && conn->state == SQL_LISTENING) notify_finish(conn);
}

static void on_notify_timeout(uv_timer_t *timer) {
  sql_conn *conn = timer->data;
  if (conn && conn->state == SQL_LISTENING) notify_finish(conn);
}

/* Cancelled (a step's timeout, Ctrl-C): stop listening; nobody to wake. */
static void notify_cancel(wf_wait *wait) {
  sql_conn *conn = conn_of_wait(wait);
  wait->cancel = NULL;
  if (conn->state != SQL_LISTENING) return;
  notify_timer_release(conn);
  sql_conn_watch(conn, 0);
  conn->driver = NULL;
  conn->state = SQL_IDLE;
}

/* Raises conn->failure as an sql error; a lost connection (no PGconn left)
 * is class 08, worth retrying on a new connection. */
static int raise_failure(lua_State *L, sql_conn *conn) {
  int closed = conn->pg == NULL;
  lua_pushstring(L, conn->failure);
  wf_push_redacted(L, lua_tostring(L, -1), lua_rawlen(L, -1));
  wf_push_error(L, "sql", closed ? "08006" : NULL, closed, lua_tostring(L, -1));
  results_clear(conn);
  return lua_error(L);
}

static int conn_wait_notify_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  (void)ctx;
  sql_conn *conn = luaL_checkudata(L, 1, SQL_CONN_META);
  conn->wait.cancel = NULL;
  if (conn->failure) return raise_failure(L, conn);
  PGnotify *notify = conn->notify;
  conn->notify = NULL;
  if (!notify) {
    lua_pushnil(L);
    return 1;
  }
  /* copy into Lua, then free: a memory error here would leak one notify */
  lua_pushstring(L, notify->relname);
  lua_pushstring(L, notify->extra ? notify->extra : "");
  PQfreemem(notify);
  return 2;
}

/* conn:wait_notify([timeout]) -> channel, payload | nil after timeout
 * seconds (none: no timeout). Waits on the loop for a NOTIFY on a channel
 * the connection LISTENs to; a lost connection raises a retryable 08006. */
static int conn_wait_notify(lua_State *L) {
  sql_conn *conn = sql_conn_check_open(L, 1);
  double timeout = luaL_optnumber(L, 2, -1);
  lua_settop(L, 1);
  if (conn->simulate) {
    lua_pushnil(L);
    return 1;
  }
  if (conn->state != SQL_IDLE) {
    wf_push_error(L, "sql", NULL, 0, "connection is in use by another step");
    return lua_error(L);
  }
  results_clear(conn);
  if (notify_take(conn) || timeout == 0) return conn_wait_notify_k(L, LUA_OK, 0);
  if (timeout > 0) {
    conn->notify_timer = malloc(sizeof *conn->notify_timer);
    if (!conn->notify_timer) return luaL_error(L, "out of memory");
    uv_timer_init(conn->loop, conn->notify_timer);
    conn->notify_timer->data = conn;
    uv_timer_start(conn->notify_timer, on_notify_timeout, (uint64_t)(timeout * 1000.0 + 0.5), 0);
  }
  conn->state = SQL_LISTENING;
  conn->driver = notify_driver;
  if (sql_conn_watch(conn, UV_READABLE) < 0) {
    set_failure(conn, "cannot watch the connection's socket");
    sql_conn_close(conn, NULL);
    return conn_wait_notify_k(L, LUA_OK, 0);
  }
  conn->wait.cancel = notify_cancel;
  return wf_await(L, &conn->wait, 0, conn_wait_notify_k);
}

/* ---- conn methods -------------------------------------------------------- */

sql_conn *sql_conn_check_open(lua_State *L, int index) {
  sql_conn *conn = luaL_checkudata(L, index, SQL_CONN_META);
  if (!conn->pg && !conn->simulate) {
    /* 08003, connection_does_not_exist: retryable when the server took it
     * away (a restart), not when the workflow closed it itself. */
    wf_push_error(L, "sql", "08003", conn->lost,
                  conn->lost ? "connection is closed (it was lost)" : "connection is closed");
    lua_error(L);
  }
  return conn;
}

static void log_notices(lua_State *L, sql_conn *conn) {
  if (!conn->notices) return;
  /* copy to Lua first: wf_log may raise, C must not own the buffer then */
  lua_pushlstring(L, conn->notices, conn->notices_length);
  free(conn->notices);
  conn->notices = NULL;
  conn->notices_length = 0;
  const char *line = lua_tostring(L, -1);
  while (*line) {
    const char *end = strchr(line, '\n');
    if (!end) break;
    int warning = strncmp(line, "WARNING", 7) == 0;
    wf_log(L, warning ? "warn" : "info", "postgres %.*s", (int)(end - line), line);
    line = end + 1;
  }
  lua_pop(L, 1);
}

/* Formats "execute: Q with $1 = '...', $2 = NULL" for dry-run. stack: conn, q, params... */
static void report_would(lua_State *L, int top) {
  lua_pushfstring(L, "execute: %s", lua_tostring(L, 2));
  for (int i = 3; i <= top; i++) {
    const char *sep = i == 3 ? " with " : ", ";
    switch (lua_type(L, i)) {
    case LUA_TNIL:
      lua_pushfstring(L, "%s$%d = NULL", sep, i - 2);
      break;
    case LUA_TSTRING: {
      lua_pushfstring(L, "%s$%d = '", sep, i - 2);
      luaL_gsub(L, lua_tostring(L, i), "'", "''");
      lua_pushliteral(L, "'");
      lua_concat(L, 3);
      break;
    }
    case LUA_TTABLE:
      lua_pushfstring(L, "%s$%d = <bytea>", sep, i - 2);
      break;
    default:
      lua_pushfstring(L, "%s$%d = %s", sep, i - 2, luaL_tolstring(L, i, NULL));
      lua_remove(L, -2);
      break;
    }
    lua_concat(L, 2);
  }
  wf_log(L, "would", "%s", lua_tostring(L, -1));
  lua_settop(L, top);
}

/* Converts parameters in place (stack slots 3..top) into what libpq sends. */
static int convert_params(lua_State *L, int top, const char **values, int *lengths, int *formats,
                          Oid *types) {
  int binary = 0;
  for (int i = 3; i <= top; i++) {
    int n = i - 3;
    lengths[n] = 0;
    formats[n] = 0;
    types[n] = 0;
    switch (lua_type(L, i)) {
    case LUA_TNIL:
      values[n] = NULL;
      continue;
    case LUA_TBOOLEAN:
      values[n] = lua_toboolean(L, i) ? "true" : "false";
      continue;
    case LUA_TNUMBER:
      if (lua_isinteger(L, i)) {
        lua_pushfstring(L, "%I", (LUAI_UACINT)lua_tointeger(L, i));
      } else {
        double d = lua_tonumber(L, i);
        char text[64];
        if (isnan(d))
          snprintf(text, sizeof text, "NaN");
        else if (isinf(d))
          snprintf(text, sizeof text, "%sInfinity", d < 0 ? "-" : "");
        else
          snprintf(text, sizeof text, "%.17g", d);
        lua_pushstring(L, text);
      }
      lua_replace(L, i);
      values[n] = lua_tostring(L, i);
      continue;
    case LUA_TSTRING: {
      size_t length;
      values[n] = lua_tolstring(L, i, &length);
      if (strlen(values[n]) != length)
        return luaL_argerror(L, i, "string parameter holds a NUL byte (use sql.bytea for binary)");
      continue;
    }
    case LUA_TTABLE:
      if (lua_getmetatable(L, i)) {
        luaL_getmetatable(L, SQL_BYTEA_META);
        int same = lua_rawequal(L, -1, -2);
        lua_pop(L, 2);
        if (same) {
          size_t length;
          lua_rawgeti(L, i, 1);
          lua_replace(L, i);
          values[n] = lua_tolstring(L, i, &length);
          if (!values[n]) return luaL_argerror(L, i, "malformed sql.bytea value");
          lengths[n] = (int)length;
          formats[n] = 1;
          types[n] = BYTEAOID;
          binary = 1;
          continue;
        }
      }
      /* fall through */
    default:
      return luaL_argerror(
          L, i, lua_pushfstring(L, "cannot send a %s as a parameter", luaL_typename(L, i)));
    }
  }
  return binary;
}

static int conn_query_k(lua_State *L, int status, lua_KContext ctx);
static int conn_retry_k(lua_State *L, int status, lua_KContext ctx);

static int conn_run(lua_State *L, int flags) {
  sql_conn *conn = sql_conn_check_open(L, 1);
  const char *query = luaL_checkstring(L, 2);
  int top = lua_gettop(L);
  int shape = flags & SHAPE_MASK;
  if (top - 2 > 65535) return luaL_error(L, "too many parameters");
  if ((flags & SHAPE_REPORT) && wf_get_mode(L) == WF_MODE_DRY_RUN) {
    report_would(L, top);
    lua_pushinteger(L, 0);
    return 1;
  }
  if (conn->simulate) {
    if (shape == SHAPE_ROWS)
      lua_newtable(L);
    else if (shape == SHAPE_COUNT)
      lua_pushinteger(L, 0);
    else if (shape == SHAPE_STATUS)
      lua_pushliteral(L, "");
    else
      lua_pushnil(L);
    return 1;
  }
  if (conn->state == SQL_DRAINING) {
    conn->wake_when_drained = 1;
    conn->wait.cancel = drain_wait_cancel;
    return wf_await(L, &conn->wait, flags, conn_retry_k);
  }
  if (conn->state != SQL_IDLE) {
    wf_push_error(L, "sql", NULL, 0, "connection is in use by another step");
    return lua_error(L);
  }
  int count = (flags & SHAPE_PREPARE) ? 0 : top - 2;
  /* scratch arrays in Lua memory, so a raise below leaks nothing */
  size_t size = (size_t)(count ? count : 1);
  const char **values = lua_newuserdatauv(L, size * sizeof *values, 0);
  int *lengths = lua_newuserdatauv(L, size * sizeof *lengths, 0);
  int *formats = lua_newuserdatauv(L, size * sizeof *formats, 0);
  Oid *types = lua_newuserdatauv(L, size * sizeof *types, 0);
  if (count) convert_params(L, top, values, lengths, formats, types);
  results_clear(conn);
  int sent;
  if (flags & SHAPE_PREPARE)
    sent = PQsendPrepare(conn->pg, query, luaL_checkstring(L, 3), 0, NULL);
  else if (flags & SHAPE_PREPARED)
    sent = PQsendQueryPrepared(conn->pg, query, count, values, lengths, formats, 0);
  else if (count == 0)
    sent = PQsendQuery(conn->pg, query); /* may hold several statements */
  else
    sent = PQsendQueryParams(conn->pg, query, count, types, values, lengths, formats, 0);
  lua_settop(L, top);
  if (!sent) {
    set_failure(conn, PQerrorMessage(conn->pg));
    if (PQstatus(conn->pg) == CONNECTION_BAD) sql_conn_close(conn, NULL);
    return conn_query_k(L, LUA_OK, flags);
  }
  /* the loop drives the rest: the continuation never runs before wf_await */
  int flush = PQflush(conn->pg);
  if (flush < 0 || sql_conn_watch(conn, UV_READABLE | (flush ? UV_WRITABLE : 0)) < 0) {
    set_failure(conn, flush < 0 ? PQerrorMessage(conn->pg) : "cannot watch the socket");
    sql_conn_close(conn, NULL);
    return conn_query_k(L, LUA_OK, flags);
  }
  conn->state = SQL_BUSY;
  conn->driver = query_driver;
  conn->wait.cancel = query_cancel;
  return wf_await(L, &conn->wait, flags, conn_query_k);
}

static int conn_retry_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  return conn_run(L, (int)ctx);
}

static int conn_query_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  sql_conn *conn = luaL_checkudata(L, 1, SQL_CONN_META);
  conn->wait.cancel = NULL;
  log_notices(L, conn);
  if (conn->error) {
    sql_push_result_error(L, conn->error, NULL);
    results_clear(conn);
    return lua_error(L);
  }
  if (conn->failure) return raise_failure(L, conn);
  /* conn->result stays owned by the connection until the next query or close,
   * so building the Lua value may raise without leaking it */
  return push_shape(L, conn->result, (int)ctx & SHAPE_MASK);
}

static int conn_query(lua_State *L) {
  return conn_run(L, SHAPE_ROWS);
}
static int conn_one(lua_State *L) {
  return conn_run(L, SHAPE_ONE);
}
static int conn_scalar(lua_State *L) {
  return conn_run(L, SHAPE_SCALAR);
}
static int conn_exec(lua_State *L) {
  return conn_run(L, SHAPE_COUNT | SHAPE_REPORT);
}
/* conn:_run(q, ...): runs even in dry-run (BEGIN, SAVEPOINT, ...); returns
 * the command tag. */
static int conn_raw(lua_State *L) {
  return conn_run(L, SHAPE_STATUS);
}
/* conn:_prepare(name, text): a named statement on this connection (the
 * server infers parameter types); conn:_execute(name, ...): its rows. For
 * the engine's hot statements (state_pg.lua): no parse nor plan each time. */
static int conn_prepare(lua_State *L) {
  return conn_run(L, SHAPE_STATUS | SHAPE_PREPARE);
}
static int conn_execute(lua_State *L) {
  return conn_run(L, SHAPE_ROWS | SHAPE_PREPARED);
}

static int conn_close(lua_State *L) {
  sql_conn *conn = luaL_checkudata(L, 1, SQL_CONN_META);
  if (conn->state == SQL_BORROWED) return luaL_error(L, "connection is in use by copy_database");
  sql_conn_close(conn, NULL);
  return 0;
}

static int conn_gc(lua_State *L) {
  sql_conn *conn = luaL_checkudata(L, 1, SQL_CONN_META);
  sql_conn_close(conn, NULL);
  results_clear(conn);
  if (conn->notify) PQfreemem(conn->notify);
  conn->notify = NULL;
  free(conn->notices);
  conn->notices = NULL;
  free(conn->display);
  conn->display = NULL;
  return 0;
}

/* conn:_status() -> "idle" | "transaction" | "failed" | "closed" | "simulate" */
static int conn_status(lua_State *L) {
  sql_conn *conn = luaL_checkudata(L, 1, SQL_CONN_META);
  if (conn->simulate)
    lua_pushliteral(L, "simulate");
  else if (!conn->pg)
    lua_pushliteral(L, "closed");
  else {
    switch (PQtransactionStatus(conn->pg)) {
    case PQTRANS_IDLE:
      lua_pushliteral(L, "idle");
      break;
    case PQTRANS_INTRANS:
      lua_pushliteral(L, "transaction");
      break;
    case PQTRANS_INERROR:
      lua_pushliteral(L, "failed");
      break;
    default:
      lua_pushliteral(L, "busy");
      break;
    }
  }
  return 1;
}

static int conn_tostring(lua_State *L) {
  sql_conn *conn = luaL_checkudata(L, 1, SQL_CONN_META);
  lua_pushfstring(L, "wf.sql.conn (%s%s)", conn->display ? conn->display : "?",
                  conn->pg || conn->simulate ? "" : ", closed");
  return 1;
}

/* conn:_info() -> { display=, server_version=, backend_pid= } */
static int conn_info(lua_State *L) {
  sql_conn *conn = luaL_checkudata(L, 1, SQL_CONN_META);
  lua_createtable(L, 0, 3);
  lua_pushstring(L, conn->display ? conn->display : "");
  lua_setfield(L, -2, "display");
  if (conn->pg) {
    lua_pushinteger(L, PQserverVersion(conn->pg));
    lua_setfield(L, -2, "server_version");
    lua_pushinteger(L, PQbackendPID(conn->pg));
    lua_setfield(L, -2, "backend_pid");
  }
  return 1;
}

/* conn:encrypt_password(password, user) -> the SCRAM-SHA-256 verifier that
 * CREATE/ALTER ROLE ... PASSWORD takes instead of the password, computed here
 * so that the password never reaches the server (nor its statement log).
 * Both are registered as secrets. No round trip: the algorithm is given. */
static int conn_encrypt_password(lua_State *L) {
  sql_conn *conn = luaL_checkudata(L, 1, SQL_CONN_META);
  const char *password = luaL_checkstring(L, 2);
  const char *user = luaL_checkstring(L, 3);
  wf_add_secret(L, password);
  if (conn->simulate) {
    lua_pushliteral(L, "SCRAM-SHA-256$simulated");
    return 1;
  }
  if (!conn->pg) return luaL_error(L, "connection is closed");
  char *verifier = PQencryptPasswordConn(conn->pg, password, user, "scram-sha-256");
  if (!verifier) {
    lua_pushfstring(L, "cannot encrypt the password: %s", PQerrorMessage(conn->pg));
    wf_push_error(L, "sql", NULL, 0, lua_tostring(L, -1));
    return lua_error(L);
  }
  lua_pushstring(L, verifier);
  PQfreemem(verifier);
  wf_add_secret(L, lua_tostring(L, -1));
  return 1;
}

/* ---- module functions ---------------------------------------------------- */

/* core.conninfo(dsn) -> table of the options it sets, or nil, message */
static int core_conninfo(lua_State *L) {
  const char *dsn = luaL_checkstring(L, 1);
  char *error = conninfo_table(L, dsn);
  if (error) {
    lua_pushnil(L);
    lua_pushstring(L, error);
    PQfreemem(error);
    push_parse_error(L, lua_tostring(L, -1));
    lua_remove(L, -2);
    return 2;
  }
  push_display(L, lua_gettop(L));
  return 2;
}

/* core.sql_error(code, message, fields [, retryable]) raises a structured
 * sql error, retryable by its SQLSTATE unless told. */
static int core_sql_error(lua_State *L) {
  const char *code = luaL_optstring(L, 1, NULL);
  const char *message = luaL_checkstring(L, 2);
  int retryable = lua_isnoneornil(L, 4) ? sql_sqlstate_retryable(code) : lua_toboolean(L, 4);
  wf_push_redacted(L, message, strlen(message));
  wf_push_error(L, "sql", code, retryable, lua_tostring(L, -1));
  if (lua_istable(L, 3)) {
    lua_pushnil(L);
    while (lua_next(L, 3)) {
      lua_pushvalue(L, -2);
      lua_insert(L, -2);
      lua_settable(L, -4);
    }
  }
  return lua_error(L);
}

static const luaL_Reg conn_methods[] = {{"query", conn_query},
                                        {"one", conn_one},
                                        {"scalar", conn_scalar},
                                        {"exec", conn_exec},
                                        {"_run", conn_raw},
                                        {"_prepare", conn_prepare},
                                        {"_execute", conn_execute},
                                        {"_status", conn_status},
                                        {"_info", conn_info},
                                        {"close", conn_close},
                                        {"encrypt_password", conn_encrypt_password},
                                        {"wait_notify", conn_wait_notify},
                                        {NULL, NULL}};

static const luaL_Reg conn_meta[] = {
    {"__gc", conn_gc}, {"__close", conn_gc}, {"__tostring", conn_tostring}, {NULL, NULL}};

static const luaL_Reg core_funcs[] = {{"connect", core_connect},
                                      {"conninfo", core_conninfo},
                                      {"sql_error", core_sql_error},
                                      {NULL, NULL}};

int luaopen_wf_sql_core(lua_State *L) {
  if (luaL_newmetatable(L, SQL_CONN_META)) {
    luaL_setfuncs(L, conn_meta, 0);
    luaL_newlib(L, conn_methods);
    lua_setfield(L, -2, "__index");
  }
  lua_pop(L, 1);
  luaL_newlib(L, core_funcs);
  wf_add_helpers(L);
  /* the metatable the prelude gives to sql.bytea values */
  luaL_newmetatable(L, SQL_BYTEA_META);
  lua_setfield(L, -2, "bytea_meta");
  /* the conn metatable, so the prelude can add Lua-written methods */
  luaL_getmetatable(L, SQL_CONN_META);
  lua_getfield(L, -1, "__index");
  lua_setfield(L, -3, "conn_methods");
  lua_pop(L, 1);
  return 1;
}
