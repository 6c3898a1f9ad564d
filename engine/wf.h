/* wf.h: the small interface the engine gives to bindings.
 *
 * Bindings (the C files under bindings/) know one library each; of runs they know only
 * what is here: the loop, the mode, how to wait without blocking, logging,
 * progress, redaction of secrets and which step is calling; and one helper
 * for the memory a binding owns during a call (wf_push_scratch).
 *
 * Waiting. A binding function that must wait (a socket, a child process)
 * starts the operation and ends with
 *
 *     return wf_await(L, &op->wait, (lua_KContext)op, op_continue);
 *
 * The engine suspends the step's coroutine and goes on with the loop. When
 * the operation has finished, the binding's loop callback stores the outcome
 * in C memory (never calling Lua from a libuv, libcurl or libpq callback) and
 * calls wf_wake(&op->wait). The engine later resumes the coroutine from the
 * loop and Lua continues in op_continue(L, status, ctx), which pushes the
 * results or raises the error. Outside a coroutine (a workflow's top level,
 * `check`) wf_await runs the loop itself until the wake, then calls the
 * continuation: the same code serves both.
 *
 * Cancelling. When the engine abandons the attempt (step timeout, Ctrl-C, a
 * failed sibling in a parallel group) it calls wait->cancel(wait) instead and
 * never runs the continuation. The binding must stop the operation
 * (PQcancel, curl_multi_remove_handle, uv_process_kill), release or detach
 * what it owned, and must not call wf_wake for that wait afterwards. The
 * coroutine is then closed, so its `<close>` variables and, later, __gc run.
 *
 * Child processes. Start them with wf_spawn, not uv_spawn: the kernel kills
 * them (SIGKILL) when the engine dies, even by kill -9, so no pg_dump or
 * psql outlives it. Stopping one on cancel is still the binding's job
 * (uv_process_kill in the cancel hook and in __gc).
 *
 * A wf_wait must stay at a fixed address from wf_await until the wake or the
 * cancel: embed it in a userdata that the waiting Lua code references (the
 * connection, the request), or in memory the binding frees itself.
 */
#ifndef WF_H
#define WF_H

#include <stddef.h>
#include <lua.h>
#include <uv.h>

typedef enum { WF_MODE_RUN = 0, WF_MODE_DRY_RUN = 1, WF_MODE_SIMULATE = 2 } wf_mode;

typedef struct wf_wait wf_wait;
struct wf_wait {
  /* Set by the binding before wf_await; NULL when there is nothing to stop. */
  void (*cancel)(wf_wait *wait);
  /* Owned by the engine. */
  int woken;
  wf_wait *next_woken;
};

/* The one event loop of the process. */
uv_loop_t *wf_loop(lua_State *L);

/* The mode of the run: real, dry-run (reads only, changes reported) or
 * simulate (nothing outside the process is touched). */
wf_mode wf_get_mode(lua_State *L);

/* A uv_close callback for a handle that was malloc'd: frees it. */
void wf_close_free(uv_handle_t *handle);

/* Suspends the calling coroutine until wf_wake(wait); see above. */
int wf_await(lua_State *L, wf_wait *wait, lua_KContext ctx, lua_KFunction k);

/* Marks the wait finished; the engine resumes its coroutine from the loop.
 * Safe to call from any loop callback; calls no Lua. */
void wf_wake(wf_wait *wait);

/* uv_spawn on the engine's loop, the child tied to the engine's life (see
 * above; engine/child.c says how). Same options and result as uv_spawn;
 * a program that cannot be run exits 127 after a line on its stderr instead
 * of failing here. Calls no Lua, so never raises. Call it on the loop's
 * thread. */
int wf_spawn(lua_State *L, uv_process_t *process, const uv_process_options_t *options);

/* Makes a new directory "$TMPDIR/PREFIX-XXXXXX" (else under /tmp) that only
 * this user can enter: mkdtemp, mode 0700, never a name another local user
 * created or linked first. Fills path; 0, or -1 with errno set (ENAMETOOLONG
 * when it does not fit). */
int wf_private_dir(const char *prefix, char *path, size_t size);

/* Journals and shows a line for the calling step ("info", "warn" or "would":
 * the dry-run report of a change not made). Secrets are redacted. */
void wf_log(lua_State *L, const char *level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Drives the progress display of the calling step; total <= 0 is unknown. */
void wf_progress(lua_State *L, double done, double total, const char *unit);

/* Pushes a copy of text with every secret value replaced by "***". */
void wf_push_redacted(lua_State *L, const char *text, size_t length);

/* Registers a value to redact from everything printed or journaled from now
 * on (a password found in a DSN, a bearer token), with the other forms the
 * engine prints it in (percent-encoded, JSON-escaped; redact.c). Returns 0,
 * or -1 without registering anything when the value is shorter than
 * WF_SECRET_MIN bytes: masking so short a value would mask unrelated text
 * and still give the value away, so the caller refuses it with a clear
 * error. NULL and "" have nothing to hide and return 0. Raises only when
 * out of memory. */
#define WF_SECRET_MIN 4
int wf_add_secret(lua_State *L, const char *value);

/* wf_add_secret for a Lua function: pushes true, or nil and a message
 * ("shorter than 4 bytes: ...") for the caller to name the value in.
 * Returns the number of values pushed. */
int wf_push_add_secret(lua_State *L, const char *value);

/* Which run and step is calling: fills the pointers (valid until the step
 * ends) and returns 1, or returns 0 outside a step. */
int wf_current_step(lua_State *L, const char **run_id, const char **step_id, int *attempt);

/* Seconds on the engine's clock: real time, or the virtual clock of simulate. */
double wf_now(lua_State *L);

/* Raises a structured error table {message, kind, code, retryable} with a
 * __tostring; code may be NULL. Never returns. Free what you own first. */
int wf_raise(lua_State *L, const char *kind, const char *code, int retryable, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/* Pushes the same structured error table as wf_raise without raising it,
 * so a binding can add fields (detail, hint, retry_after) before lua_error. */
void wf_push_error(lua_State *L, const char *kind, const char *code, int retryable,
                   const char *message);

/* Scratch memory that C owns during one call: pushes a new userdata of size
 * bytes, zeroed, with the metatable name (created on first use and
 * registered only once complete, so a memory error half-way leaves nothing)
 * whose __gc and __close are close, and marks its stack slot to-be-closed.
 * close, idempotent, frees what the box holds, whether the call returns or
 * raises, so the caller may raise at any point without leaking. */
void *wf_push_scratch(lua_State *L, size_t size, const char *name, lua_CFunction close);

/* Pushes a new userdata of size bytes, zeroed, with nuvalue user values and
 * the metatable name (created on first use) whose __gc is gc, which frees
 * what the userdata holds when it is collected. */
void *wf_push_collected(lua_State *L, size_t size, int nuvalue, const char *name, lua_CFunction gc);

/* base64 (RFC 4648, padded; engine/base64.c). wf_push_unbase64 pushes the
 * bytes and returns 1, or pushes nothing and returns 0 when text is not
 * base64 as wf_push_base64 writes it. The lua_CFunctions take and give one
 * string (unbase64: nil when malformed). */
void wf_push_base64(lua_State *L, const char *data, size_t length);
int wf_push_unbase64(lua_State *L, const char *text, size_t length);
int wf_lua_base64(lua_State *L);
int wf_lua_unbase64(lua_State *L);

/* Sets into the table on top of the stack the functions every binding's
 * Lua prelude needs (engine/wf.c): mode() -> "run" | "dry-run" |
 * "simulate"; log(level, text); now() (wf_now); add_secret(value) -> true,
 * or nil and why; redact(text); error(kind, code, retryable, message) ->
 * the structured error table, not raised; current_step() -> run id, step
 * id, attempt (nothing outside a step); base64(bytes). */
void wf_add_helpers(lua_State *L);

#endif
