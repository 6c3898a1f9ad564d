/* tie.c: the exec of a child that dies with the engine (wf_spawn, child.c).
 *
 *     wfengine-tie PARENT_PID FILE ARG0 ARG1 ...
 *
 * asks the kernel for SIGKILL when its parent dies (PR_SET_PDEATHSIG),
 * checks that the parent is still PARENT_PID (had the engine died before
 * the prctl, the kernel would never send the signal), then execvp's FILE.
 * Built twice: inside wfengine (tie_exec, for `wfengine --exec-tied-child`)
 * and, with TIE_MAIN, as the small program wfengine-tie that wf_spawn
 * prefers: it links nothing but libc, so a child starts without loading
 * wfengine's libraries first (about 5 ms of CPU per child, most of it the
 * dynamic loader: a copy's schema phase starts a few dozen). */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

#include "tie.h"

int tie_exec(const char *who, int argc, char **argv) {
  /* argv: NAME PARENT_PID FILE ARG0 [ARG...] */
  if (argc < 4) {
    fprintf(stderr, "%s: for the engine's own use\n", who);
    return 2;
  }
  char *end;
  long parent = strtol(argv[1], &end, 10);
  if (*end != '\0' || parent <= 1) {
    fprintf(stderr, "%s: bad parent pid %s\n", who, argv[1]);
    return 2;
  }
#ifdef __linux__
  if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) {
    fprintf(stderr, "%s: cannot tie %s to the engine: %s\n", who, argv[2], strerror(errno));
    _exit(127);
  }
#endif
  /* The engine died before the prctl: nobody will kill us, so do not start. */
  if (getppid() != (pid_t)parent) _exit(127);
  execvp(argv[2], argv + 3);
  fprintf(stderr, "%s: cannot run %s: %s\n", who, argv[2], strerror(errno));
  _exit(127);
}

#ifdef TIE_MAIN
int main(int argc, char **argv) {
  return tie_exec("wfengine", argc, argv);
}
#endif
