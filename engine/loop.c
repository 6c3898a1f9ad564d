/* loop.c: the one libuv loop, the suspension of step coroutines (the wf.h
 * interface for bindings) and "wfengine.core", the primitives the Lua
 * scheduler and runner (engine/lua/) are built on: poll the loop, cancel a
 * wait, the clocks, signals, secrets. State files are engine/state_file.c.
 *
 * Who owns what: a wf_wait belongs to its binding; the engine only links it
 * into the woken list between wf_wake and the next poll. The Lua scheduler
 * maps wait pointers (light userdata) to coroutines and never dereferences
 * them after the coroutine is gone. */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <dirent.h>
#include <time.h>
#include <unistd.h>

#include <lauxlib.h>
#include "engine.h"
#include "wf.h"

static struct engine {
  uv_loop_t *loop;
  uv_timer_t poll_timer;
  uv_async_t wakeup; /* the signal handler's way into the loop */
  wf_wait *woken_head, *woken_tail;
  wf_mode mode;
  int virtual_clock;
  double virtual_now;
  char **secrets; /* owned, each strdup'd; grows as secrets are registered */
  size_t secret_count, secret_capacity;
  int started;
} engine;

static volatile sig_atomic_t interrupts, interrupt_signal;

/* What a second signal does before the process leaves: set by a state
 * backend (engine/state_file.c writes the run's ending if that is safe).
 * Called from the signal handler: async-signal-safe code only. */
static void (*volatile last_words)(void);

void engine_set_last_words(void (*fn)(void)) {
  last_words = fn;
}

/* The first signal asks the loop to stop (core.poll and the runner's count
 * hook see it); a second one leaves at once, with the journal's ending when
 * that is safe: resumable either way. */
static void on_signal(int signo) {
  interrupt_signal = signo;
  interrupts++;
  if (interrupts >= 2) {
    if (last_words) last_words();
    _exit(4);
  }
  if (engine.started) uv_async_send(&engine.wakeup); /* async-signal-safe */
}

int engine_interrupt_signal(void) {
  return interrupts ? interrupt_signal : 0;
}

/* Both end the current uv_run: uv_stop makes the loop skip its blocking
 * poll even when the callback ran before it (a timer already due). */
static void on_wakeup(uv_async_t *handle) {
  uv_stop(handle->loop); /* poll reports the interrupt */
}

static void on_poll_timer(uv_timer_t *timer) {
  uv_stop(timer->loop);
}

void engine_init(void) {
  struct sigaction action;
  if (engine.started) return;
  engine.loop = uv_default_loop();
  uv_timer_init(engine.loop, &engine.poll_timer);
  uv_async_init(engine.loop, &engine.wakeup, on_wakeup);
  uv_unref((uv_handle_t *)&engine.wakeup);
  memset(&action, 0, sizeof action);
  action.sa_handler = on_signal;
  sigemptyset(&action.sa_mask);
  sigaction(SIGINT, &action, NULL);
  sigaction(SIGTERM, &action, NULL);
  signal(SIGPIPE, SIG_IGN);
  engine.started = 1;
}

const char engine_orphan = 0;

static void free_orphan(uv_handle_t *handle) {
  free(handle);
}

/* Handles still open at the end are closed; a malloc'd one its owner let go
 * of (data == &engine_orphan: a child left to end by itself) is freed. */
static void close_handle(uv_handle_t *handle, void *arg) {
  (void)arg;
  if (!uv_is_closing(handle)) uv_close(handle, handle->data == &engine_orphan ? free_orphan : NULL);
}

void engine_shutdown(void) {
  if (!engine.started) return;
  uv_walk(engine.loop, close_handle, NULL);
  uv_run(engine.loop, UV_RUN_DEFAULT);
  uv_loop_close(engine.loop);
  for (size_t i = 0; i < engine.secret_count; i++)
    free(engine.secrets[i]);
  free(engine.secrets);
  engine.secrets = NULL;
  engine.secret_count = engine.secret_capacity = 0;
  engine.started = 0;
}

/* ---- the interface for bindings (wf.h) ---- */

uv_loop_t *wf_loop(lua_State *L) {
  (void)L;
  engine_init();
  return engine.loop;
}

wf_mode wf_get_mode(lua_State *L) {
  (void)L;
  return engine.mode;
}

void wf_wake(wf_wait *wait) {
  if (wait->woken) return;
  wait->woken = 1;
  wait->next_woken = NULL;
  if (engine.woken_tail)
    engine.woken_tail->next_woken = wait;
  else
    engine.woken_head = wait;
  engine.woken_tail = wait;
}

static void unlink_woken(wf_wait *wait) {
  wf_wait *previous = NULL;
  for (wf_wait *w = engine.woken_head; w; previous = w, w = w->next_woken) {
    if (w != wait) continue;
    if (previous)
      previous->next_woken = w->next_woken;
    else
      engine.woken_head = w->next_woken;
    if (engine.woken_tail == w) engine.woken_tail = previous;
    return;
  }
}

static int is_queued(const wf_wait *wait) {
  for (const wf_wait *w = engine.woken_head; w; w = w->next_woken)
    if (w == wait) return 1;
  return 0;
}

/* The coroutines the scheduler runs (core.mark_task): a weak-keyed set in
 * the registry. */
#define TASKS_KEY "wfengine.tasks"

static int is_task(lua_State *L) {
  if (lua_getfield(L, LUA_REGISTRYINDEX, TASKS_KEY) != LUA_TTABLE) {
    lua_pop(L, 1);
    return 0;
  }
  lua_pushthread(L);
  int found = lua_rawget(L, -2) != LUA_TNIL;
  lua_pop(L, 2);
  return found;
}

/* A coroutine the workflow made (a generator) would hand the wait to its
 * own coroutine.resume instead of the scheduler, and nothing would ever
 * resume it: stop the operation and say so. */
static int refuse_foreign_coroutine(lua_State *L, wf_wait *wait) {
  if (wait->woken)
    unlink_woken(wait);
  else if (wait->cancel)
    wait->cancel(wait);
  wait->cancel = NULL;
  return wf_raise(L, "misuse", NULL, 0,
                  "a binding was called from a coroutine the workflow made: call bindings "
                  "from the step's own code (or a ctx:parallel branch), not inside "
                  "coroutine.wrap or coroutine.create");
}

int wf_await(lua_State *L, wf_wait *wait, lua_KContext ctx, lua_KFunction k) {
  /* A wait reused from an earlier operation starts afresh; one the binding
   * woke before awaiting (it finished at once) stays woken. */
  if (!is_queued(wait)) {
    wait->woken = 0;
    wait->next_woken = NULL;
  }
  if (lua_isyieldable(L) && !is_task(L)) return refuse_foreign_coroutine(L, wait);
  if (lua_isyieldable(L)) {
    lua_pushlightuserdata(L, wait);
    return lua_yieldk(L, 1, ctx, k);
  }
  /* Not in a coroutine (a workflow's top level, check): run the loop here;
   * other coroutines' wakes stay queued for the scheduler. */
  engine_init();
  while (!wait->woken) {
    if (interrupts) {
      if (wait->cancel) wait->cancel(wait);
      return wf_raise(L, "interrupted", NULL, 0, "interrupted");
    }
    if (uv_run(engine.loop, UV_RUN_ONCE) == 0 && !wait->woken && !interrupts) {
      if (wait->cancel) wait->cancel(wait);
      return wf_raise(L, "engine", NULL, 0, "a binding waited with nothing pending");
    }
  }
  unlink_woken(wait);
  return k(L, LUA_YIELD, ctx);
}

/* Calls the Lua hook registered under name in core.set_hooks with nargs
 * arguments already on the stack; results are left on the stack. */
static int call_hook(lua_State *L, const char *name, int nargs, int nresults) {
  lua_getfield(L, LUA_REGISTRYINDEX, "wfengine.hooks");
  if (lua_istable(L, -1))
    lua_getfield(L, -1, name);
  else
    lua_pushnil(L);
  lua_remove(L, -2);
  if (!lua_isfunction(L, -1)) {
    lua_pop(L, nargs + 1);
    return 0;
  }
  lua_insert(L, -nargs - 1);
  lua_call(L, nargs, nresults);
  return 1;
}

/* The C library's printf, not lua_pushfstring's subset: bindings format
 * with %.*s, %zu and the like. */
void wf_log(lua_State *L, const char *level, const char *fmt, ...) {
  char small[512];
  va_list ap;
  va_start(ap, fmt);
  int length = vsnprintf(small, sizeof small, fmt, ap);
  va_end(ap);
  if (length < 0) return;
  lua_pushstring(L, level);
  if ((size_t)length < sizeof small) {
    lua_pushlstring(L, small, (size_t)length);
  } else {
    /* Lua owns the buffer, so a memory error cannot leak it. */
    luaL_Buffer buffer;
    char *text = luaL_buffinitsize(L, &buffer, (size_t)length + 1);
    va_start(ap, fmt);
    vsnprintf(text, (size_t)length + 1, fmt, ap);
    va_end(ap);
    luaL_pushresultsize(&buffer, (size_t)length);
  }
  const char *text = lua_tostring(L, -1); /* still alive after the pop: nothing allocates */
  if (!call_hook(L, "log", 2, 0)) fprintf(stderr, "%s: %s\n", level, text);
}

void wf_progress(lua_State *L, double done, double total, const char *unit) {
  lua_pushnumber(L, done);
  lua_pushnumber(L, total);
  lua_pushstring(L, unit ? unit : "");
  call_hook(L, "progress", 3, 0);
}

void wf_push_redacted(lua_State *L, const char *text, size_t length) {
  size_t out_length;
  char *out;
  if (engine.secret_count == 0) {
    lua_pushlstring(L, text, length);
    return;
  }
  out = redact_text(text, length, (const char *const *)engine.secrets, engine.secret_count,
                    &out_length);
  if (!out) {
    lua_pushliteral(L, "***");
    return;
  }
  lua_pushlstring(L, out, out_length); /* may raise: copy made, free after */
  free(out);
}

/* Adds one text to the list unless it is there already; -1 when out of memory. */
static int secret_remember(const char *text) {
  for (size_t i = 0; i < engine.secret_count; i++)
    if (strcmp(engine.secrets[i], text) == 0) return 0;
  if (engine.secret_count == engine.secret_capacity) {
    size_t capacity = engine.secret_capacity ? engine.secret_capacity * 2 : 16;
    char **grown = realloc(engine.secrets, capacity * sizeof *grown);
    if (!grown) return -1;
    engine.secrets = grown;
    engine.secret_capacity = capacity;
  }
  char *copy = strdup(text);
  if (!copy) return -1;
  engine.secrets[engine.secret_count++] = copy;
  return 0;
}

int wf_add_secret(lua_State *L, const char *value) {
  if (!value || !*value) return 0;
  size_t length = strlen(value);
  if (length < WF_SECRET_MIN) return -1;
  char *forms[REDACT_MAX_FORMS];
  int count = redact_forms(value, length, forms);
  int failed = count < 0 || secret_remember(value) < 0;
  for (int i = 0; i < count; i++) {
    if (!failed && secret_remember(forms[i]) < 0) failed = 1;
    free(forms[i]);
  }
  /* A secret half registered would be printed in the clear: stop instead. */
  if (failed) return luaL_error(L, "out of memory registering a secret");
  return 0;
}

int wf_push_add_secret(lua_State *L, const char *value) {
  if (wf_add_secret(L, value) == 0) {
    lua_pushboolean(L, 1);
    return 1;
  }
  lua_pushnil(L);
  lua_pushfstring(L, "shorter than %d bytes: too short to redact safely", WF_SECRET_MIN);
  return 2;
}

int wf_current_step(lua_State *L, const char **run_id, const char **step_id, int *attempt) {
  int found = 0;
  if (!call_hook(L, "current", 0, 3)) return 0;
  if (lua_isstring(L, -3) && lua_isstring(L, -2)) {
    /* The strings stay referenced by the step's record until it ends. */
    *run_id = lua_tostring(L, -3);
    *step_id = lua_tostring(L, -2);
    *attempt = (int)lua_tointeger(L, -1);
    found = 1;
  }
  lua_pop(L, 3);
  return found;
}

static double monotonic_seconds(void) {
  return (double)uv_hrtime() / 1e9;
}

double wf_now(lua_State *L) {
  (void)L;
  return engine.virtual_clock ? engine.virtual_now : monotonic_seconds();
}

void wf_push_error(lua_State *L, const char *kind, const char *code, int retryable,
                   const char *message) {
  lua_createtable(L, 0, 5);
  lua_pushstring(L, message);
  lua_setfield(L, -2, "message");
  lua_pushstring(L, kind);
  lua_setfield(L, -2, "kind");
  if (code) {
    lua_pushstring(L, code);
    lua_setfield(L, -2, "code");
  }
  lua_pushboolean(L, retryable);
  lua_setfield(L, -2, "retryable");
  if (luaL_getmetatable(L, "wfengine.error") == LUA_TTABLE)
    lua_setmetatable(L, -2);
  else
    lua_pop(L, 1);
}

int wf_raise(lua_State *L, const char *kind, const char *code, int retryable, const char *fmt,
             ...) {
  va_list ap;
  va_start(ap, fmt);
  lua_pushvfstring(L, fmt, ap);
  va_end(ap);
  wf_push_error(L, kind, code, retryable, lua_tostring(L, -1));
  lua_remove(L, -2);
  return lua_error(L);
}

void *wf_push_scratch(lua_State *L, size_t size, const char *name, lua_CFunction close) {
  void *box = lua_newuserdatauv(L, size, 0);
  memset(box, 0, size);
  if (luaL_getmetatable(L, name) == LUA_TNIL) {
    lua_pop(L, 1);
    lua_createtable(L, 0, 3);
    lua_pushcfunction(L, close);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, close);
    lua_setfield(L, -2, "__close");
    lua_pushstring(L, name);
    lua_setfield(L, -2, "__name");
    lua_pushvalue(L, -1);
    lua_setfield(L, LUA_REGISTRYINDEX, name);
  }
  lua_setmetatable(L, -2);
  lua_toclose(L, -1);
  return box;
}

/* ---- wfengine.core: primitives for the Lua scheduler and runner ---- */

/* core.poll(timeout [, past_interrupt]) -> {woken waits...}, interrupted
 * Runs the loop once, blocking at most timeout seconds (0: never blocks,
 * negative: until something happens), and returns the waits woken since the
 * last poll. */
static int core_poll(lua_State *L) {
  double timeout = luaL_checknumber(L, 1);
  int past_interrupt = lua_toboolean(L, 2); /* turn the loop even after an interrupt */
  if (!engine.woken_head && (!interrupts || past_interrupt)) {
    if (timeout == 0) {
      uv_run(engine.loop, UV_RUN_NOWAIT);
    } else {
      if (timeout > 0) {
        uint64_t ms = (uint64_t)ceil(timeout * 1000);
        uv_update_time(engine.loop); /* the cached time may be old: the timer counts from now */
        uv_timer_start(&engine.poll_timer, on_poll_timer, ms, 0);
      }
      /* The wakeup handle keeps a blocking poll answerable to signals. */
      uv_ref((uv_handle_t *)&engine.wakeup);
      uv_run(engine.loop, UV_RUN_ONCE);
      uv_unref((uv_handle_t *)&engine.wakeup);
      uv_timer_stop(&engine.poll_timer);
    }
  }
  lua_newtable(L);
  int n = 0;
  while (engine.woken_head) {
    wf_wait *wait = engine.woken_head;
    engine.woken_head = wait->next_woken;
    lua_pushlightuserdata(L, wait);
    lua_rawseti(L, -2, ++n);
  }
  engine.woken_tail = NULL;
  lua_pushboolean(L, interrupts > 0);
  return 2;
}

/* core.cancel(wait): asks the binding to abandon a wait not yet woken. */
static int core_cancel(lua_State *L) {
  luaL_checktype(L, 1, LUA_TLIGHTUSERDATA);
  wf_wait *wait = lua_touserdata(L, 1);
  if (wait->woken)
    unlink_woken(wait);
  else if (wait->cancel)
    wait->cancel(wait);
  wait->cancel = NULL;
  return 0;
}

/* core.is_wait(v): whether v is what wf_await yields (a light userdata);
 * a workflow yielding anything else must not be taken for a binding. */
static int core_is_wait(lua_State *L) {
  lua_pushboolean(L, lua_islightuserdata(L, 1));
  return 1;
}

/* core.mark_task(co): co is a coroutine of the scheduler, where bindings
 * may wait. The set holds it weakly: a finished task goes with its thread. */
static int core_mark_task(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTHREAD);
  if (lua_getfield(L, LUA_REGISTRYINDEX, TASKS_KEY) != LUA_TTABLE) {
    lua_pop(L, 1);
    lua_newtable(L);
    lua_createtable(L, 0, 1);
    lua_pushliteral(L, "k");
    lua_setfield(L, -2, "__mode");
    lua_setmetatable(L, -2);
    lua_pushvalue(L, -1);
    lua_setfield(L, LUA_REGISTRYINDEX, TASKS_KEY);
  }
  lua_pushvalue(L, 1);
  lua_pushboolean(L, 1);
  lua_rawset(L, -3);
  return 0;
}

static int core_set_mode(lua_State *L) {
  static const char *const modes[] = {"run", "dry-run", "simulate", NULL};
  engine.mode = (wf_mode)luaL_checkoption(L, 1, NULL, modes);
  engine.virtual_clock = engine.mode == WF_MODE_SIMULATE;
  engine.virtual_now = 0;
  return 0;
}

static int core_set_virtual_now(lua_State *L) {
  engine.virtual_now = luaL_checknumber(L, 1);
  return 0;
}

/* core.now(): the engine clock in seconds (monotonic, or virtual in simulate). */
static int core_now(lua_State *L) {
  lua_pushnumber(L, wf_now(L));
  return 1;
}

/* core.time(): wall-clock seconds since the epoch, with fractions. */
static int core_time(lua_State *L) {
  struct timeval now;
  gettimeofday(&now, NULL);
  lua_pushnumber(L, (double)now.tv_sec + now.tv_usec / 1e6);
  return 1;
}

/* core.add_secret(value) -> true, or nil and why it was refused. */
static int core_add_secret(lua_State *L) {
  return wf_push_add_secret(L, luaL_optstring(L, 1, NULL));
}

static int core_redact(lua_State *L) {
  size_t length;
  const char *text = luaL_checklstring(L, 1, &length);
  wf_push_redacted(L, text, length);
  return 1;
}

static int core_set_hooks(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  lua_setfield(L, LUA_REGISTRYINDEX, "wfengine.hooks");
  return 0;
}

static double field_number(lua_State *L, int table, const char *name, double fallback) {
  lua_getfield(L, table, name);
  double value = lua_isnumber(L, -1) ? lua_tonumber(L, -1) : fallback;
  lua_pop(L, 1);
  return value;
}

/* core.backoff(policy, attempt, random01) -> seconds */
static int core_backoff(lua_State *L) {
  struct retry_policy policy;
  luaL_checktype(L, 1, LUA_TTABLE);
  policy.delay = field_number(L, 1, "delay", 1);
  policy.backoff = field_number(L, 1, "backoff", 2);
  policy.max_delay = field_number(L, 1, "max_delay", 60);
  lua_getfield(L, 1, "jitter");
  policy.jitter = lua_isnil(L, -1) || lua_toboolean(L, -1);
  lua_pop(L, 1);
  policy.attempts = 0;
  lua_pushnumber(L, backoff_delay(&policy, (int)luaL_checkinteger(L, 2), luaL_checknumber(L, 3)));
  return 1;
}

static int core_hash(lua_State *L) {
  size_t length;
  const char *data = luaL_checklstring(L, 1, &length);
  char out[17];
  hash_hex(data, length, out);
  lua_pushstring(L, out);
  return 1;
}

static int push_errno(lua_State *L, const char *what) {
  lua_pushnil(L);
  lua_pushfstring(L, "%s: %s", what, strerror(errno));
  return 2;
}

static int core_isatty(lua_State *L) {
  lua_pushboolean(L, isatty((int)luaL_checkinteger(L, 1)));
  return 1;
}

/* core.wait_readable(fd): suspends the calling task until fd can be read
 * (for a terminal in canonical mode: a whole line, or end of input), so a
 * confirm prompt neither stops the other tasks nor keeps SIGINT from
 * interrupting the run. The wait lives in a userdata on the task's stack;
 * the uv_poll_t is freed by its close callback. */
typedef struct {
  wf_wait wait; /* first: readable_cancel casts back */
  uv_poll_t *poll;
} readable_wait;

static void readable_closed(uv_handle_t *handle) {
  free(handle);
}

static void readable_stop(readable_wait *rw) {
  if (!rw->poll) return;
  uv_poll_stop(rw->poll);
  uv_close((uv_handle_t *)rw->poll, readable_closed);
  rw->poll = NULL;
}

static void readable_ready(uv_poll_t *poll, int status, int events) {
  (void)status;
  (void)events;
  readable_wait *rw = poll->data;
  readable_stop(rw);
  rw->wait.cancel = NULL;
  wf_wake(&rw->wait);
}

static void readable_cancel(wf_wait *wait) {
  readable_stop((readable_wait *)(void *)wait); /* wait is its first member */
}

static int readable_k(lua_State *L, int status, lua_KContext ctx) {
  (void)L;
  (void)status;
  (void)ctx;
  return 0;
}

/* A task collected while it waits (never cancelled) must not leave the
 * poll pointing at freed memory. */
static int readable_gc(lua_State *L) {
  readable_stop(lua_touserdata(L, 1));
  return 0;
}

static int core_wait_readable(lua_State *L) {
  int fd = (int)luaL_checkinteger(L, 1);
  readable_wait *rw = lua_newuserdatauv(L, sizeof *rw, 0);
  memset(rw, 0, sizeof *rw);
  if (luaL_newmetatable(L, "wfengine.readable_wait")) {
    lua_pushcfunction(L, readable_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_setmetatable(L, -2);
  rw->poll = malloc(sizeof *rw->poll);
  if (!rw->poll) return luaL_error(L, "out of memory");
  int rc = uv_poll_init(engine.loop, rw->poll, fd);
  if (rc != 0) {
    free(rw->poll);
    rw->poll = NULL;
    return luaL_error(L, "cannot watch fd %d: %s", fd, uv_strerror(rc));
  }
  rw->poll->data = rw;
  rc = uv_poll_start(rw->poll, UV_READABLE | UV_DISCONNECT, readable_ready);
  if (rc != 0) {
    readable_stop(rw);
    return luaL_error(L, "cannot watch fd %d: %s", fd, uv_strerror(rc));
  }
  rw->wait.cancel = readable_cancel;
  return wf_await(L, &rw->wait, 0, readable_k);
}

static int core_getpid(lua_State *L) {
  lua_pushinteger(L, getpid());
  return 1;
}

static int core_interrupted(lua_State *L) {
  lua_pushboolean(L, interrupts > 0);
  return 1;
}

static int core_error_meta(lua_State *L) {
  luaL_getmetatable(L, "wfengine.error");
  return 1;
}

/* core.listdir(path) -> sorted names (without . and ..), or nil, message */
static int core_listdir(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  DIR *dir = opendir(path);
  if (!dir) return push_errno(L, path);
  lua_newtable(L);
  int n = 0;
  for (struct dirent *entry; (entry = readdir(dir)) != NULL;) {
    if (strcmp(entry->d_name, ".") == 0 || strcmp(entry->d_name, "..") == 0) continue;
    lua_pushstring(L, entry->d_name); /* cannot fail short of memory: then dir leaks once */
    lua_rawseti(L, -2, ++n);
  }
  closedir(dir);
  return 1;
}

/* core.realpath(path) -> absolute path, or nil, message */
static int core_realpath(lua_State *L) {
  char *resolved = realpath(luaL_checkstring(L, 1), NULL);
  if (!resolved) return push_errno(L, lua_tostring(L, 1));
  lua_pushstring(L, resolved);
  free(resolved);
  return 1;
}

static int error_tostring(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_getfield(L, 1, "kind");
  lua_getfield(L, 1, "code");
  lua_getfield(L, 1, "message");
  const char *kind = lua_tostring(L, 2), *code = lua_tostring(L, 3);
  const char *message = luaL_optstring(L, 4, "error");
  if (kind && code)
    lua_pushfstring(L, "%s %s: %s", kind, code, message);
  else if (kind)
    lua_pushfstring(L, "%s: %s", kind, message);
  else
    lua_pushstring(L, message);
  return 1;
}

static const luaL_Reg core_funcs[] = {
    {"poll", core_poll},
    {"cancel", core_cancel},
    {"is_wait", core_is_wait},
    {"mark_task", core_mark_task},
    {"set_mode", core_set_mode},
    {"set_virtual_now", core_set_virtual_now},
    {"now", core_now},
    {"time", core_time},
    {"add_secret", core_add_secret},
    {"redact", core_redact},
    {"set_hooks", core_set_hooks},
    {"backoff", core_backoff},
    {"hash", core_hash},
    {"base64", wf_lua_base64},
    {"unbase64", wf_lua_unbase64},
    {"isatty", core_isatty},
    {"wait_readable", core_wait_readable},
    {"getpid", core_getpid},
    {"interrupted", core_interrupted},
    {"error_meta", core_error_meta},
    {"listdir", core_listdir},
    {"realpath", core_realpath},
    {"execute", child_execute},
    {NULL, NULL},
};

int engine_open_core(lua_State *L) {
  engine_init();
  luaL_newmetatable(L, "wfengine.error");
  lua_pushcfunction(L, error_tostring);
  lua_setfield(L, -2, "__tostring");
  lua_pop(L, 1);
  luaL_newlib(L, core_funcs);
  return 1;
}
