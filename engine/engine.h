/* engine.h: the engine's internal C pieces, shared by main.c, host.c and the
 * unit tests. Bindings use wf.h only. */
#ifndef WF_ENGINE_H
#define WF_ENGINE_H

#include <stddef.h>
#include <stdint.h>
#include <lua.h>

/* backoff.c: the delay before the next attempt, in seconds. attempt is the
 * 1-based number of the attempt that just failed; random01 in [0, 1) picks
 * the jitter (with jitter the delay is uniform in [d/2, d]). */
struct retry_policy {
  int attempts;
  double delay;
  double backoff;
  double max_delay;
  int jitter;
};
double backoff_delay(const struct retry_policy *policy, int attempt, double random01);

/* redact.c: copies text with every occurrence of each secret replaced by
 * "***", longest secrets first. Returns a malloc'd string (caller frees) of
 * *out_length bytes, or NULL when out of memory. */
char *redact_text(const char *text, size_t length, const char *const *secrets, size_t count,
                  size_t *out_length);

/* The forms besides its raw bytes in which the engine itself may print a
 * secret: percent-encoded as wf.http writes a query (upper-case hex), the
 * same with lower-case hex and with '+' for a space (as other encoders and
 * HTML forms write it), and escaped as wf.json writes it inside a string.
 * Fills forms with malloc'd strings (caller frees) that differ from the
 * secret and from each other; returns how many, or -1 when out of memory
 * (nothing to free then). */
#define REDACT_MAX_FORMS 5
int redact_forms(const char *secret, size_t length, char *forms[REDACT_MAX_FORMS]);

/* args.c: the command line, parsed without side effects. */
enum command {
  COMMAND_NONE,
  COMMAND_RUN,
  COMMAND_CHECK,
  COMMAND_PLAN,
  COMMAND_RESUME,
  COMMAND_ROLLBACK,
  COMMAND_RUNS,
  COMMAND_SHOW,
  COMMAND_UNLOCK,
  COMMAND_NEW,
  COMMAND_HELP,
  COMMAND_VERSION,
  COMMAND_SUBMIT,
  COMMAND_WORKER,
  COMMAND_STATE,
  COMMAND_SERVE
};

#define ARGS_MAX_LIST 64

struct args {
  enum command command;
  const char *workflow; /* run, check, plan; new: the file to write */
  const char *run_id;   /* resume, rollback, show */
  const char *key;      /* unlock */
  const char *action;   /* state: init | import */
  const char *path;     /* state import DIR */
  const char *params[ARGS_MAX_LIST];
  int param_count;
  const char *fail_at[ARGS_MAX_LIST];
  int fail_at_count;
  const char *config;
  const char *from;
  const char *only;
  const char *skip;
  const char *on_failure;
  const char *state;
  const char *format;
  const char *status;                             /* runs --status */
  const char *workflow_option;                    /* runs --workflow NAME, resume --workflow FILE */
  const char *since;                              /* runs --since */
  const char *concurrency, *lease, *name, *epoch; /* worker (--run ID --epoch N: one claimed run) */
  int wait;                                       /* submit --wait */
  const char *listen, *workflows, *token_file, *tls_cert, *tls_key; /* serve */
  const char *report;    /* run --dry-run: the change report's file */
  const char *approved;  /* run: the approved change report */
  const char *tolerance; /* run --approved: counts may differ by this percentage */
  int dry_run, simulate, yes, json, quiet, verbose, estimate;
  int html;               /* show --html */
  int confirm_from_state; /* run, resume, rollback: confirm answers come from the state */
};

/* Fills args from argv; returns 0, or -1 with a one-line message in err. */
int args_parse(struct args *args, int argc, char **argv, char *err, size_t errlen);

/* hash.c: FNV-1a 64 of a byte string as 16 lower-case hex digits + NUL. */
void hash_hex(const void *data, size_t length, char out[17]);

/* child.c: the hidden mode through which wf_spawn starts a child tied to
 * the engine's life: `wfengine --exec-tied-child PARENT_PID FILE ARG0 ...`.
 * main() hands argv to child_exec first, which never returns on success. */
#define CHILD_EXEC_FLAG "--exec-tied-child"
int child_exec(int argc, char **argv);

/* The exit codes of wfengine (docs/operations.md); Lua has them as
 * core.EXIT.SUCCEEDED and so on (core.c). */
enum exit_code {
  EXIT_SUCCEEDED = 0,
  EXIT_COMPENSATED = 1,         /* failed, and compensated */
  EXIT_USAGE = 2,               /* usage or validation error */
  EXIT_COMPENSATION_FAILED = 3, /* also the engine's own failures */
  EXIT_INTERRUPTED = 4,         /* resumable */
  EXIT_PAUSED = 5               /* resume or rollback */
};

/* loop.c */
void engine_init(void);
void engine_shutdown(void);
/* The data of a malloc'd handle whose owner let go of it (a child left to
 * end by itself): engine_shutdown frees it if it is still open then. */
extern const char engine_orphan;
int engine_interrupt_signal(void); /* the signal that interrupted the run, or 0 */
/* A second signal ends the process at once: fn runs first, in the signal
 * handler; the exit status is code (by default 128 + the signal's number). */
void engine_set_last_words(void (*fn)(void));
void engine_set_second_signal_exit(int code);

/* wf.c: frees the secrets registered (after lua_close). */
void engine_forget_secrets(void);

/* core.c */
int engine_open_core(lua_State *L); /* the "wfengine.core" module */

/* state_file.c */
int engine_open_files(lua_State *L); /* the "wfengine.files" module */

/* child.c: core.execute(command), os.execute for workflows. */
int child_execute(lua_State *L);

#endif
