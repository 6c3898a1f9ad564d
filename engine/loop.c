/* loop.c: the one libuv loop, signals and the suspension of step
 * coroutines (wf_await, wf_wake, and core.poll that hands the woken waits
 * to the Lua scheduler, engine/lua/sched.lua). It knows nothing of runs:
 * what a second signal does before the process leaves is set from outside
 * (engine_set_last_words, engine_set_second_signal_exit). The other wf.h
 * services are engine/wf.c, the rest of "wfengine.core" engine/core.c.
 *
 * Who owns what: a wf_wait belongs to its binding; the engine only links it
 * into the woken list between wf_wake and the next poll. The Lua scheduler
 * maps wait pointers (light userdata) to coroutines and never dereferences
 * them after the coroutine is gone. */
#include <math.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <lauxlib.h>
#include "engine.h"
#include "loop.h"

static struct engine {
  uv_loop_t *loop;
  uv_timer_t poll_timer;
  uv_async_t wakeup; /* the signal handler's way into the loop */
  wf_wait *woken_head, *woken_tail;
  int started;
} engine;

static volatile sig_atomic_t interrupts, interrupt_signal;

/* What a second signal does before the process leaves: set by a state
 * backend (engine/state_file.c writes the run's ending if that is safe).
 * Called from the signal handler: async-signal-safe code only. */
static void (*volatile last_words)(void);

/* The exit status after a second signal; -1: 128 + the signal's number. */
static volatile sig_atomic_t second_signal_exit = -1;

void engine_set_last_words(void (*fn)(void)) {
  last_words = fn;
}

void engine_set_second_signal_exit(int code) {
  second_signal_exit = code;
}

/* The first signal asks the loop to stop (core.poll and the runner's count
 * hook see it); a second one leaves at once, after the last words. */
static void on_signal(int signo) {
  interrupt_signal = signo;
  interrupts++;
  if (interrupts >= 2) {
    if (last_words) last_words();
    _exit(second_signal_exit >= 0 ? second_signal_exit : 128 + signo);
  }
  if (engine.started) uv_async_send(&engine.wakeup); /* async-signal-safe */
}

int engine_interrupt_signal(void) {
  return interrupts ? interrupt_signal : 0;
}

int loop_interrupted(void) {
  return interrupts > 0;
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

void wf_close_free(uv_handle_t *handle) {
  free(handle);
}

/* Handles still open at the end are closed; a malloc'd one its owner let go
 * of (data == &engine_orphan: a child left to end by itself) is freed. */
static void close_handle(uv_handle_t *handle, void *arg) {
  (void)arg;
  if (!uv_is_closing(handle))
    uv_close(handle, handle->data == &engine_orphan ? wf_close_free : NULL);
}

void engine_shutdown(void) {
  if (!engine.started) return;
  uv_walk(engine.loop, close_handle, NULL);
  uv_run(engine.loop, UV_RUN_DEFAULT);
  uv_loop_close(engine.loop);
  engine.started = 0;
}

/* ---- waiting (wf.h) ---- */

uv_loop_t *wf_loop(lua_State *L) {
  (void)L;
  engine_init();
  return engine.loop;
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

/* ---- for the Lua scheduler (core.c registers them) ---- */

/* core.poll(timeout [, past_interrupt]) -> {woken waits...}, interrupted
 * Runs the loop once, blocking at most timeout seconds (0: never blocks,
 * negative: until something happens), and returns the waits woken since the
 * last poll. */
int loop_lua_poll(lua_State *L) {
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
int loop_lua_cancel(lua_State *L) {
  luaL_checktype(L, 1, LUA_TLIGHTUSERDATA);
  wf_wait *wait = lua_touserdata(L, 1);
  if (wait->woken)
    unlink_woken(wait);
  else if (wait->cancel)
    wait->cancel(wait);
  wait->cancel = NULL;
  return 0;
}

/* core.mark_task(co): co is a coroutine of the scheduler, where bindings
 * may wait. The set holds it weakly: a finished task goes with its thread. */
int loop_lua_mark_task(lua_State *L) {
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
