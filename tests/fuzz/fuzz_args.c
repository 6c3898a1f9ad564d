/* fuzz_args.c: libFuzzer target for command-line parsing (engine/args.c).
 * The input is split at NUL bytes into argv[1..]. args_parse must return 0
 * or -1 with a one-line, NUL-terminated message; on success every pointer it
 * stored points into argv, and the command's required operand is there. */
#include <stdlib.h>
#include <string.h>

#include "engine.h"

#define MAX_ARGS 200

static int in_argv(const char *p, char **argv, int argc) {
  if (p == NULL) return 1;
  for (int i = 0; i < argc; i++)
    if (p >= argv[i] && p <= argv[i] + strlen(argv[i])) return 1;
  return 0;
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size) {
  char *text = malloc(size + 1), *argv[MAX_ARGS + 2];
  int argc = 0;
  struct args args;
  char err[64]; /* small, so long messages must be truncated safely */
  if (!text) abort();
  memcpy(text, data, size);
  text[size] = '\0';
  argv[argc++] = "wfengine";
  for (char *p = text; p <= text + size && argc < MAX_ARGS; p += strlen(p) + 1)
    argv[argc++] = p;
  argv[argc] = NULL;
  memset(err, 'x', sizeof err);
  if (args_parse(&args, argc, argv, err, sizeof err) == 0) {
    if (args.param_count > ARGS_MAX_LIST || args.fail_at_count > ARGS_MAX_LIST) abort();
    const char *ptrs[] = {args.workflow, args.run_id,     args.config, args.from,  args.only,
                          args.skip,     args.on_failure, args.state,  args.format};
    for (size_t i = 0; i < sizeof ptrs / sizeof ptrs[0]; i++)
      if (!in_argv(ptrs[i], argv, argc)) abort();
    for (int i = 0; i < args.param_count; i++)
      if (!in_argv(args.params[i], argv, argc) || !strchr(args.params[i], '=')) abort();
    if ((args.command == COMMAND_RUN || args.command == COMMAND_CHECK ||
         args.command == COMMAND_PLAN) &&
        args.workflow == NULL)
      abort();
    if ((args.command == COMMAND_RESUME || args.command == COMMAND_ROLLBACK ||
         args.command == COMMAND_SHOW) &&
        args.run_id == NULL)
      abort();
  } else {
    if (memchr(err, '\0', sizeof err) == NULL || err[0] == '\0') abort();
  }
  free(text);
  return 0;
}
