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
 * prctl, the kernel would never send the signal), then execvp. The pid does
 * not change across exec, so uv_process_kill and the exit callback reach the
 * real program. Chosen over util-linux's `setpriv --pdeathsig KILL`: no
 * dependency on an outside program and its version, and setpriv does not
 * close that race.
 *
 * The kernel sends the signal when the thread that forked the child ends:
 * wf_spawn must be called on the loop's thread (bindings always are).
 * Grandchildren are not covered (the setting is cleared on fork). Elsewhere
 * than Linux, or without /proc, wf_spawn is uv_spawn (with one warning). */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

#include "engine.h"
#include "wf.h"

#define SELF_EXE "/proc/self/exe"

int child_exec(int argc, char **argv) {
  /* argv: wfengine CHILD_EXEC_FLAG PARENT_PID FILE ARG0 [ARG...] */
  if (argc < 5) {
    fprintf(stderr, "wfengine: %s is for the engine's own use\n", CHILD_EXEC_FLAG);
    return 2;
  }
  char *end;
  long parent = strtol(argv[2], &end, 10);
  if (*end != '\0' || parent <= 1) {
    fprintf(stderr, "wfengine: %s: bad parent pid %s\n", CHILD_EXEC_FLAG, argv[2]);
    return 2;
  }
#ifdef __linux__
  if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) {
    fprintf(stderr, "wfengine: cannot tie %s to the engine: %s\n", argv[3], strerror(errno));
    _exit(127);
  }
#endif
  /* The engine died before the prctl: nobody will kill us, so do not start. */
  if (getppid() != (pid_t)parent) _exit(127);
  execvp(argv[3], argv + 4);
  fprintf(stderr, "wfengine: cannot run %s: %s\n", argv[3], strerror(errno));
  _exit(127);
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
    args[0] = "wfengine";
    args[1] = CHILD_EXEC_FLAG;
    args[2] = parent;
    args[3] = (char *)options->file;
    memcpy(args + 4, options->args, sizeof(char *) * (size_t)(count + 1));
    uv_process_options_t tied = *options;
    tied.file = self;
    tied.args = args;
    int rc = uv_spawn(wf_loop(L), process, &tied);
    free(args);
    return rc;
  }
#endif
  return uv_spawn(wf_loop(L), process, options);
}
