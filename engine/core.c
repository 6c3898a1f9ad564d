/* core.c: "wfengine.core", the primitives the Lua scheduler and runner
 * (engine/lua/) are built on: poll the loop and cancel a wait (engine/loop.c),
 * the mode, the clocks, the hooks and secrets of the wf.h services
 * (engine/wf.c), retry delays, hashes, a terminal's input, directories,
 * os.execute (engine/child.c) and the exit codes. */
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <dirent.h>
#include <unistd.h>

#include <lauxlib.h>
#include "engine.h"
#include "loop.h"

/* core.is_wait(v): whether v is what wf_await yields (a light userdata);
 * a workflow yielding anything else must not be taken for a binding. */
static int core_is_wait(lua_State *L) {
  lua_pushboolean(L, lua_islightuserdata(L, 1));
  return 1;
}

static int core_set_mode(lua_State *L) {
  static const char *const modes[] = {"run", "dry-run", "simulate", NULL};
  services_set_mode((wf_mode)luaL_checkoption(L, 1, NULL, modes));
  return 0;
}

static int core_set_virtual_now(lua_State *L) {
  services_set_virtual_now(luaL_checknumber(L, 1));
  return 0;
}

/* core.time(): wall-clock seconds since the epoch, with fractions. */
static int core_time(lua_State *L) {
  struct timeval now;
  gettimeofday(&now, NULL);
  lua_pushnumber(L, (double)now.tv_sec + now.tv_usec / 1e6);
  return 1;
}

static int core_set_hooks(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  lua_setfield(L, LUA_REGISTRYINDEX, HOOKS_KEY);
  return 0;
}

/* A field of a retry policy: the runner passes them all (its defaults are
 * engine/lua/runner.lua's DEFAULT_RETRY). */
static double policy_number(lua_State *L, const char *name) {
  if (lua_getfield(L, 1, name) != LUA_TNUMBER)
    return luaL_error(L, "core.backoff: policy.%s is not a number", name);
  double value = lua_tonumber(L, -1);
  lua_pop(L, 1);
  return value;
}

/* core.backoff(policy, attempt, random01) -> seconds */
static int core_backoff(lua_State *L) {
  struct retry_policy policy;
  luaL_checktype(L, 1, LUA_TTABLE);
  policy.delay = policy_number(L, "delay");
  policy.backoff = policy_number(L, "backoff");
  policy.max_delay = policy_number(L, "max_delay");
  lua_getfield(L, 1, "jitter");
  policy.jitter = lua_toboolean(L, -1);
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

static void readable_stop(readable_wait *rw) {
  if (!rw->poll) return;
  uv_poll_stop(rw->poll);
  uv_close((uv_handle_t *)rw->poll, wf_close_free);
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
  readable_wait *rw = wf_push_collected(L, sizeof *rw, 0, "wfengine.readable_wait", readable_gc);
  rw->poll = malloc(sizeof *rw->poll);
  if (!rw->poll) return luaL_error(L, "out of memory");
  int rc = uv_poll_init(wf_loop(L), rw->poll, fd);
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

/* core.interrupt(pid) -> true | nil, message: SIGINT to a process of this
 * machine (the console pausing a run it follows: it stops as after Ctrl-C). */
static int core_interrupt(lua_State *L) {
  lua_Integer pid = luaL_checkinteger(L, 1);
  luaL_argcheck(L, pid > 1 && pid <= INT_MAX, 1, "not a process id");
  int rc = uv_kill((int)pid, SIGINT);
  if (rc != 0) {
    lua_pushnil(L);
    lua_pushfstring(L, "cannot interrupt process %d: %s", (int)pid, uv_strerror(rc));
    return 2;
  }
  lua_pushboolean(L, 1);
  return 1;
}

static int core_interrupted(lua_State *L) {
  lua_pushboolean(L, loop_interrupted());
  return 1;
}

static int core_error_meta(lua_State *L) {
  luaL_getmetatable(L, ERROR_META);
  return 1;
}

/* core.listdir(path) -> sorted names (without . and ..), or nil, message, errno */
static int core_listdir(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  DIR *dir = opendir(path);
  if (!dir) return luaL_fileresult(L, 0, path);
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

/* core.realpath(path) -> absolute path, or nil, message, errno */
static int core_realpath(lua_State *L) {
  char *resolved = realpath(luaL_checkstring(L, 1), NULL);
  if (!resolved) return luaL_fileresult(L, 0, lua_tostring(L, 1));
  lua_pushstring(L, resolved);
  free(resolved);
  return 1;
}

/* core.EXIT: the exit codes of engine.h by name (EXIT.INTERRUPTED, ...). */
static void push_exit_codes(lua_State *L) {
  static const struct {
    const char *name;
    int code;
  } codes[] = {{"SUCCEEDED", EXIT_SUCCEEDED},
               {"COMPENSATED", EXIT_COMPENSATED},
               {"USAGE", EXIT_USAGE},
               {"COMPENSATION_FAILED", EXIT_COMPENSATION_FAILED},
               {"INTERRUPTED", EXIT_INTERRUPTED},
               {"PAUSED", EXIT_PAUSED}};
  lua_createtable(L, 0, sizeof codes / sizeof codes[0]);
  for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
    lua_pushinteger(L, codes[i].code);
    lua_setfield(L, -2, codes[i].name);
  }
}

/* Besides these, the helpers every prelude has (wf_add_helpers): mode, log,
 * now, add_secret, redact, error, current_step, base64. */
static const luaL_Reg core_funcs[] = {
    {"poll", loop_lua_poll},
    {"cancel", loop_lua_cancel},
    {"is_wait", core_is_wait},
    {"mark_task", loop_lua_mark_task},
    {"set_mode", core_set_mode},
    {"set_virtual_now", core_set_virtual_now},
    {"time", core_time},
    {"set_hooks", core_set_hooks},
    {"backoff", core_backoff},
    {"hash", core_hash},
    {"unbase64", wf_lua_unbase64},
    {"isatty", core_isatty},
    {"wait_readable", core_wait_readable},
    {"getpid", core_getpid},
    {"interrupt", core_interrupt},
    {"interrupted", core_interrupted},
    {"error_meta", core_error_meta},
    {"listdir", core_listdir},
    {"realpath", core_realpath},
    {"execute", child_execute},
    {NULL, NULL},
};

int engine_open_core(lua_State *L) {
  engine_init();
  services_open_error_meta(L);
  luaL_newlib(L, core_funcs);
  wf_add_helpers(L);
  push_exit_codes(L);
  lua_setfield(L, -2, "EXIT");
  return 1;
}
