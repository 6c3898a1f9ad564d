/* child.c: child processes that die with the engine (wf_spawn in wf.h).
 *
 * A child a binding starts (pg_dump, psql) must not outlive the engine: after
 * a kill -9 it would go on reading a production database or writing a
 * target that the resumed run is about to drop. Linux kills a process when
 * its parent dies if the process asked for it with PR_SET_PDEATHSIG, but
 * only the child itself can ask, between fork and exec, and uv_spawn has no
 * hook there. So wf_spawn runs the wfengine binary itself (the file
 * /proc/self/exe names, or /proc/self/exe if that file was replaced on disk
 * since) in a hidden mode,
 *
 *     wfengine --exec-tied-child PARENT_PID FILE ARG0 ARG1 ...
 *
 * which child_exec() handles before anything else in main(): prctl, then a
 * check that the parent is still PARENT_PID (had the engine died before the
 * prctl, the kernel would never send the signal), then execvp (tie.c). When
 * the small program wfengine-tie (the same code, linking only libc) stands
 * beside the binary, or in ../libexec/wfengine/ from it, wf_spawn runs that
 * instead: `wfengine-tie PARENT_PID FILE ARG0 ...` starts without loading
 * wfengine's libraries. The pid does not change across exec, so
 * uv_process_kill and the exit callback reach the real program. Chosen over
 * util-linux's `setpriv --pdeathsig KILL`: no dependency on an outside
 * program and its version, and setpriv does not close that race.
 *
 * The kernel sends the signal when the thread that forked the child ends:
 * wf_spawn must be called on the loop's thread (bindings always are).
 * Grandchildren are not covered (the setting is cleared on fork). Elsewhere
 * than Linux, or without /proc, wf_spawn is uv_spawn (with one warning).
 *
 * Also os.execute for workflows (child_execute): Lua's own uses system(),
 * which blocks the whole engine and ignores SIGINT while the command runs,
 * so Ctrl-C was lost. Here the command is a tied child the step awaits;
 * an interrupt or a timeout cancels the wait and passes the signal on. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <lauxlib.h>
#include "engine.h"
#include "tie.h"
#include "wf.h"

#define SELF_EXE "/proc/self/exe"

int child_exec(int argc, char **argv) {
  /* argv: wfengine CHILD_EXEC_FLAG PARENT_PID FILE ARG0 [ARG...] */
  return tie_exec("wfengine", argc - 1, argv + 1);
}

/* The file to re-exec: the path /proc/self/exe links to, when it is still
 * there (under valgrind, /proc/self/exe itself is valgrind's tool, while
 * readlink answers for the program it runs), else /proc/self/exe (the binary
 * was replaced or removed since the engine started), else NULL. */
static const char *self_exe(void) {
  static char path[4096];
  ssize_t n = readlink(SELF_EXE, path, sizeof path - 1);
  if (n > 0) {
    path[n] = '\0';
    if (access(path, X_OK) == 0) return path;
  }
  return access(SELF_EXE, X_OK) == 0 ? SELF_EXE : NULL;
}

/* wfengine-tie beside the binary self (the build tree) or in
 * ../libexec/wfengine/ from it (`make install`), else NULL. */
static const char *tie_program(const char *self) {
  static const char *const places[] = {"/" TIE_PROGRAM, "/../libexec/wfengine/" TIE_PROGRAM};
  static char path[4096];
  const char *slash = strrchr(self, '/');
  if (!slash || slash == self) return NULL;
  for (size_t i = 0; i < sizeof places / sizeof *places; i++) {
    int n = snprintf(path, sizeof path, "%.*s%s", (int)(slash - self), self, places[i]);
    if (n > 0 && (size_t)n < sizeof path && access(path, X_OK) == 0) return path;
  }
  return NULL;
}

int wf_spawn(lua_State *L, uv_process_t *process, const uv_process_options_t *options) {
#ifdef __linux__
  static int warned;
  const char *self = self_exe();
  /* stderr, not wf_log: wf_spawn runs while the binding holds half-made
   * handles and must not call Lua, which could raise */
  if (!self && !warned) {
    warned = 1;
    fprintf(stderr,
            "wfengine: warning: %s is missing: child processes will outlive the "
            "engine if it is killed\n",
            SELF_EXE);
  }
  if (self) {
    int count = 0;
    while (options->args[count])
      count++;
    /* uv_spawn returns once the child has exec'd (or failed to), so the
     * array is ours to free right after */
    char **args = malloc(sizeof(char *) * (size_t)(count + 5));
    if (!args) return UV_ENOMEM;
    char parent[24];
    snprintf(parent, sizeof parent, "%ld", (long)getpid());
    const char *tie = tie_program(self);
    int at = 0;
    args[at++] = tie ? TIE_PROGRAM : "wfengine";
    if (!tie) args[at++] = CHILD_EXEC_FLAG;
    args[at++] = parent;
    args[at++] = (char *)options->file;
    memcpy(args + at, options->args, sizeof(char *) * (size_t)(count + 1));
    uv_process_options_t tied = *options;
    tied.file = tie ? tie : self;
    tied.args = args;
    int rc = uv_spawn(wf_loop(L), process, &tied);
    free(args);
    return rc;
  }
#endif
  return uv_spawn(wf_loop(L), process, options);
}

/* ---- core.execute(command): os.execute on the loop ---- */

typedef struct {
  wf_wait wait;          /* first: execute_cancel casts back */
  uv_process_t *process; /* malloc'd, freed by its close callback; NULL once exited */
  int64_t exit_status;
  int term_signal;
} execute_wait;

static void execute_exited(uv_process_t *process, int64_t exit_status, int term_signal) {
  execute_wait *ew = process->data;
  uv_close((uv_handle_t *)process, wf_close_free);
  if (ew == (void *)&engine_orphan) return; /* the wait was cancelled or collected */
  ew->process = NULL;
  ew->exit_status = exit_status;
  ew->term_signal = term_signal;
  ew->wait.cancel = NULL;
  wf_wake(&ew->wait);
}

/* Leaves the child to end by itself and close its handle (or the engine's
 * shutdown, if it ends first); the wait is forgotten. */
static void execute_detach(execute_wait *ew) {
  if (!ew->process) return;
  ew->process->data = (void *)&engine_orphan;
  ew->process = NULL;
}

/* Cancelled by an interrupt (the child gets the same signal, as it would
 * from the terminal) or a timeout (SIGTERM). */
static void execute_cancel(wf_wait *wait) {
  execute_wait *ew = (execute_wait *)(void *)wait; /* wait is its first member */
  int signo = engine_interrupt_signal();
  if (ew->process) uv_process_kill(ew->process, signo ? signo : SIGTERM);
  execute_detach(ew);
}

static int execute_gc(lua_State *L) {
  execute_detach(lua_touserdata(L, 1));
  return 0;
}

/* The results of os.execute (luaL_execresult). */
static int execute_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  const execute_wait *ew = (const execute_wait *)ctx;
  const char *what = ew->term_signal ? "signal" : "exit";
  int code = ew->term_signal ? ew->term_signal : (int)ew->exit_status;
  if (!ew->term_signal && code == 0)
    lua_pushboolean(L, 1);
  else
    lua_pushnil(L);
  lua_pushstring(L, what);
  lua_pushinteger(L, code);
  return 3;
}

/* The argv of core.execute: a table of strings runs that program itself
 * (no shell: a worker's children); a string runs /bin/sh -c STRING. The
 * array lives in Lua memory, on the stack until uv_spawn copied it. */
static char **execute_argv(lua_State *L) {
  if (!lua_istable(L, 1)) {
    char **argv = lua_newuserdatauv(L, 4 * sizeof *argv, 0);
    argv[0] = "/bin/sh", argv[1] = "-c", argv[2] = (char *)luaL_checkstring(L, 1), argv[3] = NULL;
    return argv;
  }
  lua_Integer count = luaL_len(L, 1);
  luaL_argcheck(L, count >= 1 && count < 4096, 1, "an argv of 1 to 4095 strings");
  char **argv = lua_newuserdatauv(L, (size_t)(count + 1) * sizeof *argv, 0);
  for (lua_Integer i = 1; i <= count; i++) {
    if (lua_rawgeti(L, 1, i) != LUA_TSTRING) luaL_argerror(L, 1, "argv holds a non-string");
    argv[i - 1] = (char *)lua_tostring(L, -1); /* anchored by the table */
    lua_pop(L, 1);
  }
  argv[count] = NULL;
  return argv;
}

int child_execute(lua_State *L) {
  char **args = execute_argv(L);
  execute_wait *ew = wf_push_collected(L, sizeof *ew, 0, "wfengine.execute_wait", execute_gc);
  uv_process_t *process = calloc(1, sizeof *process);
  if (!process) return luaL_error(L, "out of memory");
  uv_stdio_container_t stdio[3];
  for (int fd = 0; fd < 3; fd++) {
    stdio[fd].flags = UV_INHERIT_FD;
    stdio[fd].data.fd = fd;
  }
  uv_process_options_t options;
  memset(&options, 0, sizeof options);
  options.file = args[0];
  options.args = args;
  options.exit_cb = execute_exited;
  options.stdio = stdio;
  options.stdio_count = 3;
  process->data = ew;
  int rc = wf_spawn(L, process, &options);
  if (rc != 0) {
    /* a handle uv_spawn made is freed by its close; wf_spawn may fail before */
    if (process->type == UV_PROCESS)
      uv_close((uv_handle_t *)process, wf_close_free);
    else
      free(process);
    lua_pushnil(L);
    lua_pushfstring(L, "cannot run %s: %s", args[0], uv_strerror(rc));
    lua_pushinteger(L, -rc);
    return 3;
  }
  ew->process = process;
  ew->wait.cancel = execute_cancel;
  return wf_await(L, &ew->wait, (lua_KContext)ew, execute_k);
}
