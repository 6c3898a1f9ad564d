/* sql_copy.c: the streaming pool of sql.copy_database (module "wf.sql.copy",
 * orchestrated by bindings/sql.lua; the module's process pipeline and
 * scratch files are in sql_pipeline.c, the value rewrite applied inside the
 * stream in copy_rewrite.c).
 *
 * pool({ {source = conn, target = conn}, ... }) borrows pairs of connections
 * (sql.h) and runs tasks on them, one task per pair at a time, in the order
 * they were added. A task is a list of actions: stream a binary COPY from the
 * source connection straight into the target connection (no file, no copy
 * of the data in Lua), run SQL on the target, or read a COPY from the source
 * into nothing (a read: with a rewrite in check mode it only counts what the
 * rewrite would change, so a pair without a target is enough, and the
 * source may be read-only). Progress is counted in C and
 * handed to Lua at each wake of pool:wait(), which returns every half second
 * so the prelude can report it. On the first failure every borrowed
 * connection is cancelled and closed, never left half-open. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

#include "sql.h"
#include "copy_rewrite.h"
#include "sql_copy.h"

#define POOL_META "wf.sql.copy.pool"
#define POOL_TICK_MS 500
/* Rows are gathered into chunks of this size before PQputCopyData: a COPY
 * data message need not end at a row boundary, and one large message is one
 * send() instead of one per 8 kB (libpq sends whenever 8 kB are queued). On
 * a 256 MB copy this took wfengine from 1.5 s to 0.5 s of CPU (see
 * docs/performance.md). */
#define CHUNK_BYTES (256 * 1024)

/* ---- the pool ------------------------------------------------------------ */

enum action_kind { ACTION_COPY, ACTION_SQL, ACTION_READ };

typedef struct copy_action {
  enum action_kind kind;
  char *source_sql; /* ACTION_COPY, ACTION_READ: COPY ... TO STDOUT on the source */
  char *target_sql; /* COPY ... FROM STDIN, or the SQL of ACTION_SQL; NULL for a read */
  rw_spec *rewrite; /* ACTION_COPY, ACTION_READ: the stream's rewrite (copy_rewrite.h) */
  char *phase;
  int retries; /* ACTION_SQL: times to run again after a deadlock */
} copy_action;

enum task_state { T_WAITING, T_RUNNING, T_DONE };

typedef struct copy_task {
  char *label;
  double estimate; /* bytes expected, for progress */
  copy_action *actions;
  int action_count;
  int *after; /* tasks (0-based, all earlier) that must be done first */
  int after_count;
  char **locks; /* names no other running task may hold at the same time */
  int lock_count;
  long long *column_changed; /* values the rewrite changed, per column (all parts) */
  int column_count;
  enum task_state state;
} copy_task;

#define PHASES_MAX 8

enum worker_state {
  W_IDLE,
  W_COPY_START,      /* both COPY statements sent, waiting for the copy states */
  W_COPY_STREAM,     /* rows flow source -> target */
  W_COPY_SOURCE_END, /* the source sent its last row: its result, then end the target's */
  W_COPY_TARGET_END, /* copy end sent to the target: its result */
  W_SQL              /* SQL sent to the target: its results */
};

struct copy_pool;

typedef struct copy_worker {
  struct copy_pool *pool;
  sql_conn *source, *target; /* borrowed from their userdata; target NULL: reads only */
  copy_task *task;
  int action;
  enum worker_state state;
  int source_ready, target_ready, end_sent, source_done;
  rw_buf out;       /* rows gathered for one PQputCopyData (about CHUNK_BYTES / 2) */
  rw_stream stream; /* the rewrite of the current COPY, when it has one */
  int pending;      /* out is full or final: hand it to libpq before reading more */
  long long task_rows;
  double task_bytes;
  uint64_t action_started; /* uv_hrtime() */
  PGresult *error;
  int retries_left;
} copy_worker;

typedef struct copy_pool {
  copy_worker *workers;
  int worker_count;
  copy_task *tasks;
  int task_count, task_capacity, first_waiting;
  int started, finished, waiting, cancelled;
  int reads_only; /* some worker has no target: every action is a read */
  wf_wait wait;
  uv_timer_t *timer; /* heap: closed asynchronously */
  double bytes_done, bytes_total;
  long long rows_done, values_rewritten;
  int tasks_done;
  /* seconds the workers spent in each phase (busy time, overlapping) */
  char *phase_names[PHASES_MAX];
  double phase_seconds[PHASES_MAX];
  /* the first failure, copied out of libpq */
  char *error_message, *error_sqlstate, *error_detail, *error_label, *error_phase;
} copy_pool;

static void pool_finish(copy_pool *pool);

static char *copy_string(const char *text) {
  return text ? strdup(text) : NULL;
}

static void pool_record_failure(copy_pool *pool, copy_worker *worker, const PGresult *result,
                                const char *message) {
  if (pool->error_message) return;
  const copy_action *action = worker && worker->task && worker->action < worker->task->action_count
                                  ? &worker->task->actions[worker->action]
                                  : NULL;
  if (result) {
    const char *primary = PQresultErrorField(result, PG_DIAG_MESSAGE_PRIMARY);
    pool->error_message = copy_string(primary ? primary : PQresultErrorMessage(result));
    pool->error_sqlstate = copy_string(PQresultErrorField(result, PG_DIAG_SQLSTATE));
    pool->error_detail = copy_string(PQresultErrorField(result, PG_DIAG_MESSAGE_DETAIL));
  } else {
    pool->error_message = copy_string(message && *message ? message : "connection failure");
  }
  if (pool->error_message) {
    size_t n = strlen(pool->error_message);
    while (n > 0 && pool->error_message[n - 1] == '\n')
      pool->error_message[--n] = '\0';
  }
  pool->error_label = copy_string(worker && worker->task ? worker->task->label : NULL);
  pool->error_phase = copy_string(action ? action->phase : NULL);
}

static void worker_release(copy_worker *worker, int close) {
  rw_buf_free(&worker->out);
  rw_stream_free(&worker->stream);
  rw_stream_init(&worker->stream, NULL);
  worker->pending = 0;
  PQclear(worker->error);
  worker->error = NULL;
  sql_conn *conns[2] = {worker->source, worker->target};
  for (int i = 0; i < 2; i++) {
    sql_conn *conn = conns[i];
    if (!conn || conn->state != SQL_BORROWED) continue;
    conn->driver = NULL;
    conn->driver_data = NULL;
    conn->state = SQL_IDLE;
    if (close) {
      /* a statement may still run on the server: cancel it, then hang up */
      if (worker->state != W_IDLE) sql_conn_cancel(conn);
      sql_conn_close(conn, "closed by copy_database after a failure");
    } else {
      sql_conn_watch(conn, 0);
    }
  }
  worker->state = W_IDLE;
  worker->task = NULL;
}

/* Stops everything after a failure or a cancel. */
static void pool_abort(copy_pool *pool) {
  for (int i = 0; i < pool->worker_count; i++)
    worker_release(&pool->workers[i], 1);
  pool_finish(pool);
}

static void worker_fail(copy_worker *worker, const PGresult *result, const char *message) {
  copy_pool *pool = worker->pool;
  pool_record_failure(pool, worker, result, message);
  pool_abort(pool);
}

/* Reads results until NULL (returns 1), a COPY state (2, in *copy), or until
 * more input is needed (0). The first error result is kept in worker->error;
 * the command's row count goes to *rows. */
static int read_results(copy_worker *worker, PGconn *pg, long long *rows, ExecStatusType *copy) {
  while (!PQisBusy(pg)) {
    PGresult *result = PQgetResult(pg);
    if (!result) return 1;
    ExecStatusType status = PQresultStatus(result);
    if (status == PGRES_COPY_IN || status == PGRES_COPY_OUT || status == PGRES_COPY_BOTH) {
      PQclear(result);
      if (copy) *copy = status;
      return 2;
    }
    if (status == PGRES_FATAL_ERROR || status == PGRES_BAD_RESPONSE) {
      if (!worker->error)
        worker->error = result;
      else
        PQclear(result);
      continue;
    }
    const char *tuples = PQcmdTuples(result);
    if (rows && *tuples) *rows = strtoll(tuples, NULL, 10);
    PQclear(result);
  }
  return 0;
}

static void worker_next(copy_worker *worker);
static void pool_dispatch(copy_pool *pool, copy_worker *current);
static int worker_watch(copy_worker *worker);

/* Adds the finished action's time to its phase. */
static void pool_account(copy_pool *pool, const copy_worker *worker) {
  const char *phase = worker->task->actions[worker->action].phase;
  if (!phase) return;
  double seconds = (double)(uv_hrtime() - worker->action_started) / 1e9;
  for (int i = 0; i < PHASES_MAX; i++) {
    if (!pool->phase_names[i]) {
      pool->phase_names[i] = strdup(phase);
      if (!pool->phase_names[i]) return;
    }
    if (strcmp(pool->phase_names[i], phase) == 0) {
      pool->phase_seconds[i] += seconds;
      return;
    }
  }
}

/* Sends the current action's statements. Returns 0, or -1 after failing. */
static int worker_begin_action(copy_worker *worker) {
  copy_action *action = &worker->task->actions[worker->action];
  worker->action_started = uv_hrtime();
  worker->source_ready = worker->target_ready = worker->end_sent = worker->source_done = 0;
  if (action->kind != ACTION_SQL) {
    PGconn *source = worker->source->pg;
    rw_stream_free(&worker->stream);
    rw_stream_init(&worker->stream, action->rewrite);
    if (!PQsendQuery(source, action->source_sql)) {
      worker_fail(worker, NULL, PQerrorMessage(source));
      return -1;
    }
    worker->state = W_COPY_START;
  } else {
    worker->state = W_SQL;
  }
  if (action->kind == ACTION_READ) {
    worker->target_ready = 1; /* nothing to start: the rows go nowhere */
    return 0;
  }
  PGconn *target = worker->target->pg;
  if (!PQsendQuery(target, action->target_sql)) {
    worker_fail(worker, NULL, PQerrorMessage(target));
    return -1;
  }
  return 0;
}

/* Moves the rows libpq has from the source into the worker's output
 * (through the rewrite when the action has one), until the output holds
 * half a chunk, the source has nothing buffered, or it sent everything;
 * then the output is pending for the target. Returns -1 after failing. */
static int worker_read_rows(copy_worker *worker) {
  copy_pool *pool = worker->pool;
  const copy_action *action = &worker->task->actions[worker->action];
  for (;;) {
    char *row = NULL;
    int length = PQgetCopyData(worker->source->pg, &row, 1);
    if (length > 0) {
      worker->task_bytes += length;
      pool->bytes_done += length;
      int rc = action->rewrite ? rw_feed(&worker->stream, row, (size_t)length, &worker->out)
                               : rw_buf_put(&worker->out, row, (size_t)length);
      PQfreemem(row);
      if (rc < 0) {
        worker_fail(worker, NULL, action->rewrite ? worker->stream.error : "out of memory");
        return -1;
      }
      if (worker->out.length > INT_MAX / 2) {
        worker_fail(worker, NULL, "a row too large to send after the rewrite");
        return -1;
      }
      if (worker->out.length >= CHUNK_BYTES / 2) break;
      continue;
    }
    if (length == -2) {
      worker_fail(worker, NULL, PQerrorMessage(worker->source->pg));
      return -1;
    }
    if (length == -1) worker->source_done = 1; /* sent everything: the rest goes first */
    break;
  }
  worker->pending = 1;
  return 0;
}

/* The source's stream is over: the rewrite must have seen its trailer. */
static int worker_end_stream(copy_worker *worker) {
  const copy_action *action = &worker->task->actions[worker->action];
  if (!action->rewrite) return 0;
  if (rw_finish(&worker->stream) < 0) {
    worker_fail(worker, NULL, worker->stream.error);
    return -1;
  }
  worker->pool->values_rewritten += worker->stream.values_changed;
  copy_task *task = worker->task;
  int columns = action->rewrite->column_count;
  if (worker->stream.column_changed && !task->column_changed) {
    task->column_changed = calloc((size_t)columns + 1, sizeof *task->column_changed);
    task->column_count = task->column_changed ? columns : 0;
  }
  for (int i = 0; i < task->column_count && worker->stream.column_changed; i++)
    task->column_changed[i] += worker->stream.column_changed[i];
  rw_stream_free(&worker->stream);
  rw_stream_init(&worker->stream, NULL);
  return 0;
}

/* The current action is over: the task's next action, else the next task.
 * Returns 0 to go on pumping, -1 when the pool failed or finished. */
static int worker_action_done(copy_worker *worker) {
  copy_pool *pool = worker->pool;
  pool_account(pool, worker);
  worker->action++;
  if (worker->action < worker->task->action_count) {
    worker->retries_left = worker->task->actions[worker->action].retries;
    return worker_begin_action(worker);
  }
  pool->tasks_done++;
  worker->task->state = T_DONE;
  worker->task = NULL;
  worker->state = W_IDLE;
  pool_dispatch(pool, worker);
  return pool->finished ? -1 : 0;
}

/* Advances the worker as far as it can without waiting. Returns 0 when it
 * must wait for a socket, -1 when the pool failed (the worker is released). */
static int worker_pump(copy_worker *worker) {
  copy_pool *pool = worker->pool;
  for (;;) {
    PGconn *source = worker->source->pg, *target = worker->target ? worker->target->pg : NULL;
    switch (worker->state) {
    case W_IDLE:
      return 0;
    case W_COPY_START: {
      ExecStatusType copy = PGRES_EMPTY_QUERY;
      if (!worker->source_ready) {
        int rc = read_results(worker, source, NULL, &copy);
        if (worker->error) {
          worker_fail(worker, worker->error, NULL);
          return -1;
        }
        if (rc == 1) {
          worker_fail(worker, NULL, "the source did not start the COPY");
          return -1;
        }
        if (rc == 2) worker->source_ready = 1;
      }
      if (!worker->target_ready) {
        int rc = read_results(worker, target, NULL, &copy);
        if (worker->error) {
          worker_fail(worker, worker->error, NULL);
          return -1;
        }
        if (rc == 1) {
          worker_fail(worker, NULL, "the target did not start the COPY");
          return -1;
        }
        if (rc == 2) worker->target_ready = 1;
      }
      if (!worker->source_ready || !worker->target_ready) return 0;
      worker->state = W_COPY_STREAM;
      continue;
    }
    case W_COPY_STREAM: {
      /* backpressure: while the target has not taken what libpq queued,
       * the source is not read (its rows wait in its socket, not here) */
      int flushed = target ? PQflush(target) : 0;
      if (flushed < 0) goto target_failed;
      if (flushed == 1) return 0;
      if (worker->pending) {
        if (worker->out.length > 0 && target) {
          int put = PQputCopyData(target, worker->out.data, (int)worker->out.length);
          if (put == 0) return 0;
          if (put < 0) goto target_failed;
        }
        worker->out.length = 0; /* sent, or a read's: dropped */
        worker->pending = 0;
        if (worker->source_done) {
          if (worker_end_stream(worker) < 0) return -1;
          worker->state = W_COPY_SOURCE_END;
        }
        continue;
      }
      if (worker_read_rows(worker) < 0) return -1;
      if (worker->pending && worker->out.length == 0 && !worker->source_done) {
        worker->pending = 0;
        return 0; /* nothing read: wait for the source */
      }
      continue;
    }
    case W_COPY_SOURCE_END: {
      if (!worker->end_sent) {
        long long rows = 0;
        int rc = read_results(worker, source, &rows, NULL);
        if (worker->error) {
          worker_fail(worker, worker->error, NULL);
          return -1;
        }
        if (rc == 0) return 0;
        worker->task_rows += rows;
        pool->rows_done += rows;
        if (!target) {
          if (worker_action_done(worker) < 0) return -1;
          continue;
        }
        int end = PQputCopyEnd(target, NULL);
        if (end == 0) return 0; /* retried when writable */
        if (end < 0) goto target_failed;
        worker->end_sent = 1;
      }
      worker->state = W_COPY_TARGET_END;
      continue;
    }
    case W_COPY_TARGET_END:
    case W_SQL: {
      if (PQflush(target) < 0) goto target_failed;
      int rc = read_results(worker, target, NULL, NULL);
      if (rc == 0) return 0;
      if (rc == 2) {
        worker_fail(worker, NULL, "unexpected COPY in an SQL action");
        return -1;
      }
      if (worker->error) {
        const char *sqlstate = PQresultErrorField(worker->error, PG_DIAG_SQLSTATE);
        if (worker->state == W_SQL && worker->retries_left > 0 && sqlstate &&
            strcmp(sqlstate, "40P01") == 0) {
          /* a deadlock between two foreign keys added at once: run it again */
          worker->retries_left--;
          PQclear(worker->error);
          worker->error = NULL;
          if (worker_begin_action(worker) < 0) return -1;
          continue;
        }
        worker_fail(worker, worker->error, NULL);
        return -1;
      }
      if (worker_action_done(worker) < 0) return -1;
      continue;
    }
    }
  }
target_failed:
  /* the server may have said why: its error is the better message */
  read_results(worker, worker->target->pg, NULL, NULL);
  worker_fail(worker, worker->error, PQerrorMessage(worker->target->pg));
  return -1;
}

/* Watches what the worker's state waits for. */
static int worker_watch(copy_worker *worker) {
  int source_events = 0, target_events = 0;
  PGconn *source = worker->source->pg, *target = worker->target ? worker->target->pg : NULL;
  switch (worker->state) {
  case W_IDLE:
    break;
  case W_COPY_START:
  case W_COPY_STREAM:
  case W_COPY_SOURCE_END: {
    int target_backlog = target && PQflush(target) == 1;
    /* the source is read only when the target has taken everything */
    if (!target_backlog && !worker->pending &&
        !(worker->state == W_COPY_SOURCE_END && worker->end_sent))
      source_events = UV_READABLE;
    if (PQflush(source) == 1) source_events |= UV_WRITABLE;
    if (target_backlog) target_events |= UV_WRITABLE;
  }
    /* fall through */
  case W_COPY_TARGET_END:
  case W_SQL:
    if (!target) break;
    target_events |= UV_READABLE;
    if (worker->pending || (worker->state == W_COPY_SOURCE_END && !worker->end_sent) ||
        PQflush(target) == 1)
      target_events |= UV_WRITABLE;
    break;
  }
  if (sql_conn_watch(worker->source, source_events) < 0 ||
      (worker->target && sql_conn_watch(worker->target, target_events) < 0)) {
    worker_fail(worker, NULL, "cannot watch a connection's socket");
    return -1;
  }
  return 0;
}

static void worker_driver(sql_conn *conn, int events) {
  copy_worker *worker = conn->driver_data;
  if (!worker) return;
  if ((events & UV_READABLE) && !PQconsumeInput(conn->pg)) {
    if (conn == worker->target) read_results(worker, conn->pg, NULL, NULL);
    worker_fail(worker, worker->error, PQerrorMessage(conn->pg));
    return;
  }
  if (worker_pump(worker) < 0) return;
  worker_watch(worker);
}

/* Whether the task may start: everything it comes after is done, and no
 * running task holds one of its locks. */
static int task_ready(const copy_pool *pool, const copy_task *task) {
  for (int i = 0; i < task->after_count; i++)
    if (pool->tasks[task->after[i]].state != T_DONE) return 0;
  for (int l = 0; l < task->lock_count; l++)
    for (int w = 0; w < pool->worker_count; w++) {
      const copy_task *running = pool->workers[w].task;
      if (!running) continue;
      for (int m = 0; m < running->lock_count; m++)
        if (strcmp(running->locks[m], task->locks[l]) == 0) return 0;
    }
  return 1;
}

/* Gives the worker the first ready task in the order they were added, or
 * finishes the pool when all are done. A worker with nothing ready stays
 * idle until a running task finishes (pool_dispatch). */
static void worker_next(copy_worker *worker) {
  copy_pool *pool = worker->pool;
  if (pool->finished) return;
  while (pool->first_waiting < pool->task_count &&
         pool->tasks[pool->first_waiting].state != T_WAITING)
    pool->first_waiting++;
  for (int t = pool->first_waiting; t < pool->task_count; t++) {
    copy_task *task = &pool->tasks[t];
    if (task->state != T_WAITING || !task_ready(pool, task)) continue;
    task->state = T_RUNNING;
    worker->task = task;
    worker->action = 0;
    worker->task_rows = 0;
    worker->task_bytes = 0;
    worker->retries_left = task->actions[0].retries;
    worker_begin_action(worker);
    return;
  }
  if (pool->tasks_done < pool->task_count) return;
  for (int i = 0; i < pool->worker_count; i++)
    if (pool->workers[i].state != W_IDLE) return;
  for (int i = 0; i < pool->worker_count; i++)
    worker_release(&pool->workers[i], 0);
  pool_finish(pool);
}

/* After a task finished: every idle worker looks for work; the current one
 * (in its pump) is watched by its caller, the others here. */
static void pool_dispatch(copy_pool *pool, copy_worker *current) {
  worker_next(current);
  for (int i = 0; i < pool->worker_count && !pool->finished; i++) {
    copy_worker *other = &pool->workers[i];
    if (other == current || other->state != W_IDLE) continue;
    worker_next(other);
    if (!pool->finished && other->state != W_IDLE) worker_watch(other);
  }
}

static void pool_finish(copy_pool *pool) {
  if (pool->finished) return;
  pool->finished = 1;
  if (pool->timer) uv_timer_stop(pool->timer);
  if (pool->waiting) {
    pool->waiting = 0;
    pool->wait.cancel = NULL;
    wf_wake(&pool->wait);
  }
}

static void pool_tick(uv_timer_t *timer) {
  copy_pool *pool = timer->data;
  if (pool && pool->waiting) {
    pool->waiting = 0;
    pool->wait.cancel = NULL;
    wf_wake(&pool->wait);
  }
}

static void pool_wait_cancel(wf_wait *wait) {
  copy_pool *pool = (copy_pool *)(void *)((char *)wait - offsetof(copy_pool, wait));
  pool->waiting = 0;
  pool->cancelled = 1;
  wait->cancel = NULL;
  pool_record_failure(pool, NULL, NULL, "cancelled");
  pool_abort(pool);
}

static copy_pool *pool_check(lua_State *L) {
  return luaL_checkudata(L, 1, POOL_META);
}

static int pool_gc(lua_State *L) {
  copy_pool *pool = pool_check(L);
  if (pool->started && !pool->finished) pool_abort(pool);
  if (pool->timer) {
    pool->timer->data = NULL;
    uv_close((uv_handle_t *)pool->timer, wf_close_free);
    pool->timer = NULL;
  }
  for (int t = 0; t < pool->task_count; t++) {
    copy_task *task = &pool->tasks[t];
    for (int a = 0; a < task->action_count; a++) {
      free(task->actions[a].source_sql);
      free(task->actions[a].target_sql);
      free(task->actions[a].phase);
      rw_spec_free(task->actions[a].rewrite);
    }
    free(task->actions);
    free(task->column_changed);
    free(task->label);
    free(task->after);
    for (int l = 0; l < task->lock_count; l++)
      free(task->locks[l]);
    free(task->locks);
  }
  free(pool->tasks);
  pool->tasks = NULL;
  pool->task_count = 0;
  free(pool->workers);
  pool->workers = NULL;
  pool->worker_count = 0;
  for (int i = 0; i < PHASES_MAX; i++) {
    free(pool->phase_names[i]);
    pool->phase_names[i] = NULL;
  }
  char **strings[] = {&pool->error_message, &pool->error_sqlstate, &pool->error_detail,
                      &pool->error_label, &pool->error_phase};
  for (size_t i = 0; i < sizeof strings / sizeof *strings; i++) {
    free(*strings[i]);
    *strings[i] = NULL;
  }
  return 0;
}

/* copy.pool({ {source = conn, target = conn}, ... }) -> pool; a pair
 * without target only reads (actions with source and no target) */
static int copy_pool_new(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  int count = (int)luaL_len(L, 1);
  if (count <= 0 || count > 256) return luaL_argerror(L, 1, "1 to 256 pairs of connections");
  copy_pool *pool = lua_newuserdatauv(L, sizeof *pool, 1);
  memset(pool, 0, sizeof *pool);
  luaL_setmetatable(L, POOL_META);
  lua_pushvalue(L, 1); /* keeps the connections alive while borrowed */
  lua_setiuservalue(L, -2, 1);
  pool->workers = calloc((size_t)count, sizeof *pool->workers);
  if (!pool->workers) return luaL_error(L, "out of memory");
  pool->worker_count = count;
  for (int i = 0; i < count; i++) {
    lua_rawgeti(L, 1, i + 1);
    luaL_checktype(L, -1, LUA_TTABLE);
    lua_getfield(L, -1, "source");
    lua_getfield(L, -2, "target");
    copy_worker *worker = &pool->workers[i];
    worker->pool = pool;
    worker->source = sql_conn_check_open(L, -2);
    worker->target = lua_isnil(L, -1) ? NULL : sql_conn_check_open(L, -1);
    if (!worker->target) pool->reads_only = 1;
    lua_pop(L, 3);
  }
  return 1;
}

static char *field_string(lua_State *L, int index, const char *name) {
  char *copy = NULL;
  if (lua_getfield(L, index, name) == LUA_TSTRING) copy = strdup(lua_tostring(L, -1));
  lua_pop(L, 1);
  return copy;
}

/* Checks an optional list field of pool:add's argument: integers from 1 to
 * below (after) or strings (locks). Returns its length. */
static int check_list(lua_State *L, const char *name, int below) {
  int n = 0;
  if (lua_getfield(L, 2, name) != LUA_TNIL) {
    luaL_argcheck(L, lua_istable(L, -1), 2, "after and locks must be lists");
    n = (int)luaL_len(L, -1);
    for (int i = 1; i <= n; i++) {
      lua_rawgeti(L, -1, i);
      if (below) {
        int isnum = 0;
        lua_Integer id = lua_tointegerx(L, -1, &isnum);
        luaL_argcheck(L, isnum && id >= 1 && id < below, 2, "after must list earlier tasks");
      } else {
        luaL_argcheck(L, lua_type(L, -1) == LUA_TSTRING, 2, "locks must be strings");
      }
      lua_pop(L, 1);
    }
  }
  lua_pop(L, 1);
  return n;
}

/* pool:add{ label =, estimate =, after = {task ids}, locks = {names},
 * actions = { {source =, target =, phase =, rewrite =} | {sql =, phase =, retries =}
 *             | {source =, phase =, rewrite =} (a read), ... } }
 * -> task id. A task starts when the tasks it comes after are done and no
 * running task holds one of its locks; among those, the first added. */
static int pool_add(lua_State *L) {
  copy_pool *pool = pool_check(L);
  luaL_checktype(L, 2, LUA_TTABLE);
  luaL_argcheck(L, !pool->started, 1, "the pool is already running");
  lua_getfield(L, 2, "actions");
  luaL_argcheck(L, lua_istable(L, -1), 2, "actions must be a table");
  int count = (int)luaL_len(L, -1);
  luaL_argcheck(L, count > 0, 2, "a task needs actions");
  int actions = lua_gettop(L);
  /* check everything before taking C memory, so no raise leaks it */
  for (int a = 1; a <= count; a++) {
    lua_rawgeti(L, actions, a);
    luaL_argcheck(L, lua_istable(L, -1), 2, "each action must be a table");
    int is_copy = lua_getfield(L, -1, "source") == LUA_TSTRING;
    int has_target = lua_getfield(L, -2, is_copy ? "target" : "sql") == LUA_TSTRING;
    luaL_argcheck(L, is_copy || has_target, 2, "an action needs source (and target), or sql");
    luaL_argcheck(L, !pool->reads_only || (is_copy && !has_target), 2,
                  "a pool without target connections only reads (source, no target)");
    lua_pop(L, 3);
  }
  if (pool->task_count == pool->task_capacity) {
    int capacity = pool->task_capacity ? pool->task_capacity * 2 : 64;
    copy_task *grown = realloc(pool->tasks, (size_t)capacity * sizeof *grown);
    if (!grown) return luaL_error(L, "out of memory");
    pool->tasks = grown;
    pool->task_capacity = capacity;
  }
  int after_count = check_list(L, "after", pool->task_count + 1);
  int lock_count = check_list(L, "locks", 0);
  lua_getfield(L, 2, "estimate");
  double estimate = lua_tonumber(L, -1);
  lua_pop(L, 1);
  copy_task *task = &pool->tasks[pool->task_count];
  memset(task, 0, sizeof *task);
  task->estimate = estimate;
  task->label = field_string(L, 2, "label");
  task->actions = calloc((size_t)count, sizeof *task->actions);
  if (!task->actions) {
    free(task->label);
    return luaL_error(L, "out of memory");
  }
  task->action_count = count;
  pool->task_count++; /* from here the pool owns it, freed by __gc */
  task->state = T_WAITING;
  if (after_count > 0) {
    task->after = calloc((size_t)after_count, sizeof *task->after);
    if (!task->after) return luaL_error(L, "out of memory");
    lua_getfield(L, 2, "after");
    for (int i = 0; i < after_count; i++) {
      lua_rawgeti(L, -1, i + 1);
      task->after[i] = (int)lua_tointeger(L, -1) - 1;
      lua_pop(L, 1);
    }
    lua_pop(L, 1);
    task->after_count = after_count;
  }
  if (lock_count > 0) {
    task->locks = calloc((size_t)lock_count, sizeof *task->locks);
    if (!task->locks) return luaL_error(L, "out of memory");
    task->lock_count = lock_count;
    lua_getfield(L, 2, "locks");
    for (int i = 0; i < lock_count; i++) {
      lua_rawgeti(L, -1, i + 1);
      task->locks[i] = strdup(lua_tostring(L, -1));
      lua_pop(L, 1);
      if (!task->locks[i]) return luaL_error(L, "out of memory");
    }
    lua_pop(L, 1);
  }
  for (int a = 0; a < count; a++) {
    lua_rawgeti(L, actions, a + 1);
    copy_action *action = &task->actions[a];
    action->source_sql = field_string(L, -1, "source");
    action->target_sql = field_string(L, -1, action->source_sql ? "target" : "sql");
    action->kind = !action->source_sql  ? ACTION_SQL
                   : action->target_sql ? ACTION_COPY
                                        : ACTION_READ;
    action->phase = field_string(L, -1, "phase");
    lua_getfield(L, -1, "retries");
    action->retries = (int)lua_tointeger(L, -1);
    lua_pop(L, 1);
    if (!action->target_sql && action->kind != ACTION_READ) return luaL_error(L, "out of memory");
    if (lua_getfield(L, -1, "rewrite") == LUA_TTABLE && action->kind != ACTION_SQL) {
      char msg[160];
      action->rewrite = rw_spec_from_lua(L, -1, msg);
      if (!action->rewrite)
        return luaL_error(L, "bad rewrite of %s: %s", task->label ? task->label : "?", msg);
    }
    lua_pop(L, 2);
  }
  pool->bytes_total += estimate;
  lua_pushinteger(L, pool->task_count);
  return 1;
}

static int pool_wait_k(lua_State *L, int status, lua_KContext ctx);

/* pool:wait() -> finished, stats; starts the pool on the first call. Raises
 * the first failure, naming its task and phase. */
static int pool_wait(lua_State *L) {
  copy_pool *pool = pool_check(L);
  lua_settop(L, 1);
  if (!pool->started) {
    pool->started = 1;
    for (int i = 0; i < pool->worker_count; i++) {
      copy_worker *worker = &pool->workers[i];
      sql_conn *target = worker->target ? worker->target : worker->source;
      if (worker->source->state != SQL_IDLE || target->state != SQL_IDLE || !worker->source->pg ||
          !target->pg) {
        pool->finished = 1;
        /* Closed under us is a lost connection (a server restart): retryable. */
        int lost = !worker->source->pg || !target->pg;
        return wf_raise(L, "sql", lost ? "08003" : NULL, lost, "copy pool: a connection is %s",
                        lost ? "closed (it was lost)" : "busy");
      }
    }
    for (int i = 0; i < pool->worker_count; i++) {
      copy_worker *worker = &pool->workers[i];
      sql_conn *conns[2] = {worker->source, worker->target};
      for (int c = 0; c < 2 && conns[c]; c++) {
        conns[c]->state = SQL_BORROWED;
        conns[c]->driver = worker_driver;
        conns[c]->driver_data = worker;
      }
    }
    pool->timer = malloc(sizeof *pool->timer);
    if (!pool->timer) return luaL_error(L, "out of memory");
    uv_timer_init(wf_loop(L), pool->timer);
    pool->timer->data = pool;
    uv_timer_start(pool->timer, pool_tick, POOL_TICK_MS, POOL_TICK_MS);
    for (int i = 0; i < pool->worker_count && !pool->finished; i++) {
      copy_worker *worker = &pool->workers[i];
      worker_next(worker);
      if (!pool->finished && worker_pump(worker) == 0) worker_watch(worker);
    }
  }
  if (pool->finished) return pool_wait_k(L, LUA_OK, 0);
  pool->waiting = 1;
  pool->wait.cancel = pool_wait_cancel;
  return wf_await(L, &pool->wait, 0, pool_wait_k);
}

static int pool_wait_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  (void)ctx;
  copy_pool *pool = pool_check(L);
  double total = pool->bytes_total > pool->bytes_done ? pool->bytes_total : pool->bytes_done;
  if (pool->error_message) {
    lua_pushfstring(L, "%s%s%s%s%s", pool->error_label ? "table " : "",
                    pool->error_label ? pool->error_label : "", pool->error_phase ? ", phase " : "",
                    pool->error_phase ? pool->error_phase : "",
                    pool->error_label || pool->error_phase ? ": " : "");
    lua_pushstring(L, pool->error_message);
    lua_concat(L, 2);
    wf_push_redacted(L, lua_tostring(L, -1), lua_rawlen(L, -1));
    wf_push_error(L, "sql", pool->error_sqlstate,
                  pool->cancelled ? 0 : sql_sqlstate_retryable(pool->error_sqlstate),
                  lua_tostring(L, -1));
    if (pool->error_label) {
      lua_pushstring(L, pool->error_label);
      lua_setfield(L, -2, "table");
    }
    if (pool->error_phase) {
      lua_pushstring(L, pool->error_phase);
      lua_setfield(L, -2, "phase");
    }
    if (pool->error_detail) {
      wf_push_redacted(L, pool->error_detail, strlen(pool->error_detail));
      lua_setfield(L, -2, "detail");
    }
    return lua_error(L);
  }
  wf_progress(L, pool->bytes_done, total, "bytes");
  lua_pushboolean(L, pool->finished);
  lua_createtable(L, 0, 5);
  lua_pushinteger(L, (lua_Integer)pool->rows_done);
  lua_setfield(L, -2, "rows");
  lua_pushnumber(L, pool->bytes_done);
  lua_setfield(L, -2, "bytes");
  lua_pushnumber(L, total);
  lua_setfield(L, -2, "total");
  lua_pushinteger(L, pool->tasks_done);
  lua_setfield(L, -2, "tasks");
  lua_pushinteger(L, (lua_Integer)pool->values_rewritten);
  lua_setfield(L, -2, "rewritten");
  lua_createtable(L, 0, PHASES_MAX);
  for (int i = 0; i < PHASES_MAX && pool->phase_names[i]; i++) {
    lua_pushnumber(L, pool->phase_seconds[i]);
    lua_setfield(L, -2, pool->phase_names[i]);
  }
  lua_setfield(L, -2, "busy");
  return 2;
}

/* pool:changed(task id) -> {values changed per column} of the task's
 * rewrite (its COPY actions together), or nil without one */
static int pool_changed(lua_State *L) {
  copy_pool *pool = pool_check(L);
  lua_Integer id = luaL_checkinteger(L, 2);
  luaL_argcheck(L, id >= 1 && id <= pool->task_count, 2, "no such task");
  const copy_task *task = &pool->tasks[id - 1];
  if (!task->column_changed) return lua_pushnil(L), 1;
  lua_createtable(L, task->column_count, 0);
  for (int i = 0; i < task->column_count; i++) {
    lua_pushinteger(L, (lua_Integer)task->column_changed[i]);
    lua_rawseti(L, -2, i + 1);
  }
  return 1;
}

static const luaL_Reg pool_methods[] = {
    {"add", pool_add}, {"wait", pool_wait}, {"changed", pool_changed}, {NULL, NULL}};
static const luaL_Reg pool_meta[] = {{"__gc", pool_gc}, {"__close", pool_gc}, {NULL, NULL}};
static const luaL_Reg copy_funcs[] = {{"pool", copy_pool_new}, {NULL, NULL}};

int luaopen_wf_sql_copy(lua_State *L) {
  if (luaL_newmetatable(L, POOL_META)) {
    luaL_setfuncs(L, pool_meta, 0);
    luaL_newlib(L, pool_methods);
    lua_setfield(L, -2, "__index");
  }
  lua_pop(L, 1);
  luaL_newlib(L, copy_funcs);
  sql_pipeline_register(L);
  rw_register(L);
  return 1;
}
