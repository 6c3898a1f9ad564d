/* sql.h: the PostgreSQL connection handle of wf.sql, shared by sql.c (which
 * owns it: the "wf.sql.conn" userdata, its queries and their results) and
 * sql_copy.c (which borrows connections for copy_database and drives their
 * sockets itself while it holds them).
 *
 * A connection is driven by the loop: libpq works in non-blocking mode, one
 * uv_poll watches its socket, and whoever runs an operation on it sets
 * `driver`, called with the socket's readiness. Nothing here calls Lua. */
#ifndef WF_SQL_H
#define WF_SQL_H

#include <libpq-fe.h>
#include <lua.h>
#include <uv.h>

#include "wf.h"

#define SQL_CONN_META "wf.sql.conn"

typedef struct sql_conn sql_conn;
typedef struct sql_cancel_request sql_cancel_request;

/* Called from the loop with UV_READABLE / UV_WRITABLE. */
typedef void (*sql_conn_driver)(sql_conn *conn, int events);

enum sql_conn_state {
  SQL_IDLE,       /* connected, nothing in flight (or closed: pg == NULL) */
  SQL_CONNECTING, /* PQconnectPoll in progress, or the dry-run session setup */
  SQL_BUSY,       /* a query is in flight and a coroutine waits for it */
  SQL_DRAINING,   /* the waiter was cancelled: reading the rest, nobody waits */
  SQL_BORROWED,   /* copy_database drives the connection */
  SQL_LISTENING   /* wait_notify: a coroutine waits for a NOTIFY or its timeout */
};

struct sql_conn {
  PGconn *pg; /* owned; NULL once closed */
  uv_loop_t *loop;
  uv_poll_t *poll; /* heap: uv_close frees it after the connection is done with it */
  int poll_fd;
  int poll_events;
  enum sql_conn_state state;
  sql_conn_driver driver;
  void *driver_data; /* for the borrower */
  wf_wait wait;
  int wake_when_drained; /* a new query waits for the cancelled one to drain */
  int read_only_setup;   /* dry-run: SET default_transaction_read_only after connecting */
  int in_copy_out;       /* discarding a COPY TO STDOUT that query() cannot return */
  int simulate;
  PGresult *result; /* last successful result of the operation; owned */
  PGresult *error;  /* first error result of the operation; owned */
  char *failure;    /* libpq-level failure (lost connection, ...); malloc */
  int lost;         /* closed by a failure, not by close(): a retry may help */
  char *display;    /* the DSN for messages, password shown as ***; malloc */
  char *notices;    /* NOTICE/WARNING lines not yet logged; malloc */
  size_t notices_length;
  sql_cancel_request *cancel; /* a PQcancel running on the thread pool */
  uv_timer_t *notify_timer;   /* wait_notify's timeout; heap, uv_close frees it */
  PGnotify *notify;           /* the notification wait_notify returns; PQfreemem */
};

/* Starts, changes or stops (events == 0) watching the connection's socket,
 * following libpq if it changed sockets. Returns 0 or a libuv error. */
int sql_conn_watch(sql_conn *conn, int events);

/* Closes the libpq connection and the watcher; safe to call twice. A coroutine
 * waiting on the connection is woken and will see `failure`. */
void sql_conn_close(sql_conn *conn, const char *why);

/* Asks the server to cancel the running statement, without blocking (PQcancel
 * runs on the libuv thread pool). */
void sql_conn_cancel(sql_conn *conn);

/* The connection at index, raising "connection is closed" if it is. */
sql_conn *sql_conn_check_open(lua_State *L, int index);

/* Pushes the structured error (kind "sql", code = SQLSTATE, retryable by
 * class, detail/hint/...) for an error result; prefix (may be NULL) is put
 * before the server's message. Strings are redacted. */
void sql_push_result_error(lua_State *L, const PGresult *result, const char *prefix);

/* 1 if an error with this SQLSTATE (NULL: no SQLSTATE, a connection-level
 * failure) is worth retrying. */
int sql_sqlstate_retryable(const char *sqlstate);

#endif
