/* args.c: parses the command line into struct args (engine.h). Pure: no I/O,
 * so every rule is unit-tested (tests/unit/test_args.c). Which option each
 * command accepts is in the usage text (engine/main.c) and docs/operations.md. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "engine.h"

enum { TAKES_VALUE = 1 };

/* Bit per command that accepts the option. */
#define ON_RUN (1u << COMMAND_RUN)
#define ON_CHECK (1u << COMMAND_CHECK)
#define ON_PLAN (1u << COMMAND_PLAN)
#define ON_RESUME (1u << COMMAND_RESUME)
#define ON_ROLLBACK (1u << COMMAND_ROLLBACK)
#define ON_RUNS (1u << COMMAND_RUNS)
#define ON_SHOW (1u << COMMAND_SHOW)
#define ON_UNLOCK (1u << COMMAND_UNLOCK)
#define ON_SUBMIT (1u << COMMAND_SUBMIT)
#define ON_WORKER (1u << COMMAND_WORKER)
#define ON_STATE (1u << COMMAND_STATE)
#define ON_SERVE (1u << COMMAND_SERVE)
#define ON_CONTINUE (ON_RESUME | ON_ROLLBACK)
#define ON_QUEUE (ON_RUN | ON_SUBMIT)
#define ON_ANY 0xffffu

struct option {
  const char *long_name;
  char short_name;
  int flags;
  unsigned commands;
};

static const struct option options[] = {
    {"param", 'p', TAKES_VALUE, ON_QUEUE | ON_CHECK | ON_PLAN | ON_CONTINUE},
    {"config", 'c', TAKES_VALUE,
     ON_QUEUE | ON_CHECK | ON_PLAN | ON_CONTINUE | ON_WORKER | ON_SERVE},
    {"dry-run", 'n', 0, ON_QUEUE},
    {"simulate", 0, 0, ON_QUEUE},
    {"fail-at", 0, TAKES_VALUE, ON_QUEUE | ON_CONTINUE},
    {"from", 0, TAKES_VALUE, ON_QUEUE},
    {"only", 0, TAKES_VALUE, ON_QUEUE},
    {"skip", 0, TAKES_VALUE, ON_QUEUE},
    {"on-failure", 0, TAKES_VALUE, ON_QUEUE | ON_RESUME},
    {"yes", 'y', 0, ON_QUEUE | ON_CONTINUE | ON_UNLOCK},
    {"state", 0, TAKES_VALUE,
     ON_QUEUE | ON_CONTINUE | ON_RUNS | ON_SHOW | ON_UNLOCK | ON_WORKER | ON_STATE | ON_SERVE |
         ON_PLAN},
    {"json", 0, 0, ON_QUEUE | ON_CONTINUE | ON_RUNS | ON_SHOW},
    {"status", 0, TAKES_VALUE, ON_RUNS},
    {"workflow", 0, TAKES_VALUE, ON_RUNS | ON_CONTINUE},
    {"since", 0, TAKES_VALUE, ON_RUNS},
    {"wait", 0, 0, ON_SUBMIT},
    {"confirm-from-state", 0, 0, ON_RUN | ON_CONTINUE},
    {"concurrency", 0, TAKES_VALUE, ON_WORKER},
    {"lease", 0, TAKES_VALUE, ON_WORKER},
    {"name", 0, TAKES_VALUE, ON_WORKER},
    {"run", 0, TAKES_VALUE, ON_WORKER},
    {"epoch", 0, TAKES_VALUE, ON_WORKER},
    {"quiet", 'q', 0, ON_ANY},
    {"verbose", 'v', 0, ON_ANY},
    {"format", 0, TAKES_VALUE, ON_PLAN | ON_RUN},
    {"report", 0, TAKES_VALUE, ON_RUN},
    {"approved", 0, TAKES_VALUE, ON_RUN},
    {"tolerance", 0, TAKES_VALUE, ON_RUN},
    {"estimate", 0, 0, ON_PLAN},
    {"html", 0, 0, ON_SHOW},
    {"confirm-from-state", 0, 0, ON_RUN | ON_CONTINUE},
    {"listen", 0, TAKES_VALUE, ON_SERVE},
    {"workflows", 0, TAKES_VALUE, ON_SERVE},
    {"token-file", 0, TAKES_VALUE, ON_SERVE},
    {"tls-cert", 0, TAKES_VALUE, ON_SERVE},
    {"tls-key", 0, TAKES_VALUE, ON_SERVE},
    {"help", 'h', 0, ON_ANY},
    {"version", 0, 0, ON_ANY},
};

static const struct {
  const char *name;
  enum command command;
} commands[] = {
    {"run", COMMAND_RUN},         {"check", COMMAND_CHECK},       {"plan", COMMAND_PLAN},
    {"resume", COMMAND_RESUME},   {"rollback", COMMAND_ROLLBACK}, {"runs", COMMAND_RUNS},
    {"show", COMMAND_SHOW},       {"unlock", COMMAND_UNLOCK},     {"help", COMMAND_HELP},
    {"version", COMMAND_VERSION}, {"submit", COMMAND_SUBMIT},     {"worker", COMMAND_WORKER},
    {"state", COMMAND_STATE},     {"serve", COMMAND_SERVE},       {"new", COMMAND_NEW},
};

static int fail(char *err, size_t errlen, const char *fmt, const char *what) {
  snprintf(err, errlen, fmt, what);
  return -1;
}

static const struct option *find_option(const char *arg, const char **inline_value) {
  *inline_value = NULL;
  if (arg[1] == '-') {
    const char *name = arg + 2;
    size_t length = strcspn(name, "=");
    if (name[length] == '=') *inline_value = name + length + 1;
    for (size_t i = 0; i < sizeof options / sizeof options[0]; i++)
      if (strlen(options[i].long_name) == length &&
          strncmp(options[i].long_name, name, length) == 0)
        return &options[i];
    return NULL;
  }
  if (arg[2] != '\0') *inline_value = arg + 2; /* -pNAME=VALUE */
  for (size_t i = 0; i < sizeof options / sizeof options[0]; i++)
    if (options[i].short_name && options[i].short_name == arg[1]) return &options[i];
  return NULL;
}

static int add_to_list(const char **list, int *count, const char *value, char *err, size_t errlen) {
  if (*count >= ARGS_MAX_LIST) return fail(err, errlen, "too many %s options", "repeated");
  list[(*count)++] = value;
  return 0;
}

/* "0" .. "100", digits with at most one '.' */
static int valid_percent(const char *value) {
  char *end;
  double pct = strtod(value, &end);
  return value[0] >= '0' && value[0] <= '9' && *end == '\0' && pct >= 0 && pct <= 100;
}

static int store_option(struct args *args, const struct option *option, const char *value,
                        char *err, size_t errlen) {
  const char *name = option->long_name;
  if (strcmp(name, "param") == 0) {
    if (!strchr(value, '=') || value[0] == '=')
      return fail(err, errlen, "-p takes NAME=VALUE, not '%s'", value);
    return add_to_list(args->params, &args->param_count, value, err, errlen);
  }
  if (strcmp(name, "fail-at") == 0) {
    if (value[0] == '\0' || value[0] == ':')
      return fail(err, errlen, "--fail-at takes STEP or STEP:ATTEMPT, not '%s'", value);
    return add_to_list(args->fail_at, &args->fail_at_count, value, err, errlen);
  }
  if (strcmp(name, "on-failure") == 0 && strcmp(value, "compensate") != 0 &&
      strcmp(value, "pause") != 0)
    return fail(err, errlen, "--on-failure takes compensate or pause, not '%s'", value);
  if (strcmp(name, "state") == 0 && value[0] == '\0')
    return fail(err, errlen,
                "--state needs a directory or a postgresql:// URL, not an empty string%s", "");
  if ((strcmp(name, "concurrency") == 0 || strcmp(name, "lease") == 0 ||
       strcmp(name, "epoch") == 0) &&
      (value[0] == '\0' || strspn(value, "0123456789") != strlen(value) || atoi(value) < 1))
    return fail(err, errlen, "--%s takes a positive whole number", name);
  if (strcmp(name, "format") == 0 && strcmp(value, "text") != 0 && strcmp(value, "markdown") != 0 &&
      strcmp(value, "json") != 0 && strcmp(value, "dot") != 0)
    return fail(err, errlen, "--format takes text, markdown, json or dot, not '%s'", value);
  if (strcmp(name, "tolerance") == 0 && !valid_percent(value))
    return fail(err, errlen, "--tolerance takes a percentage from 0 to 100, not '%s'", value);
  if ((strcmp(name, "report") == 0 || strcmp(name, "approved") == 0) && value[0] == '\0')
    return fail(err, errlen, "--report and --approved need a file, not an empty string%s", "");
  const char **slot = strcmp(name, "config") == 0        ? &args->config
                      : strcmp(name, "report") == 0      ? &args->report
                      : strcmp(name, "approved") == 0    ? &args->approved
                      : strcmp(name, "tolerance") == 0   ? &args->tolerance
                      : strcmp(name, "from") == 0        ? &args->from
                      : strcmp(name, "only") == 0        ? &args->only
                      : strcmp(name, "skip") == 0        ? &args->skip
                      : strcmp(name, "on-failure") == 0  ? &args->on_failure
                      : strcmp(name, "state") == 0       ? &args->state
                      : strcmp(name, "status") == 0      ? &args->status
                      : strcmp(name, "workflow") == 0    ? &args->workflow_option
                      : strcmp(name, "since") == 0       ? &args->since
                      : strcmp(name, "concurrency") == 0 ? &args->concurrency
                      : strcmp(name, "lease") == 0       ? &args->lease
                      : strcmp(name, "name") == 0        ? &args->name
                      : strcmp(name, "run") == 0         ? &args->run_id
                      : strcmp(name, "epoch") == 0       ? &args->epoch
                      : strcmp(name, "listen") == 0      ? &args->listen
                      : strcmp(name, "workflows") == 0   ? &args->workflows
                      : strcmp(name, "token-file") == 0  ? &args->token_file
                      : strcmp(name, "tls-cert") == 0    ? &args->tls_cert
                      : strcmp(name, "tls-key") == 0     ? &args->tls_key
                                                         : &args->format;
  *slot = value;
  return 0;
}

static void store_flag(struct args *args, const struct option *option) {
  const char *name = option->long_name;
  if (strcmp(name, "dry-run") == 0)
    args->dry_run = 1;
  else if (strcmp(name, "simulate") == 0)
    args->simulate = 1;
  else if (strcmp(name, "yes") == 0)
    args->yes = 1;
  else if (strcmp(name, "json") == 0)
    args->json = 1;
  else if (strcmp(name, "quiet") == 0)
    args->quiet = 1;
  else if (strcmp(name, "verbose") == 0)
    args->verbose = 1;
  else if (strcmp(name, "wait") == 0)
    args->wait = 1;
  else if (strcmp(name, "html") == 0)
    args->html = 1;
  else if (strcmp(name, "confirm-from-state") == 0)
    args->confirm_from_state = 1;
  else if (strcmp(name, "estimate") == 0)
    args->estimate = 1;
  else if (strcmp(name, "help") == 0)
    args->command = COMMAND_HELP;
  else if (strcmp(name, "version") == 0)
    args->command = COMMAND_VERSION;
}

static int store_positional(struct args *args, const char *arg, char *err, size_t errlen) {
  switch (args->command) {
  case COMMAND_STATE:
    if (!args->action) {
      args->action = arg;
      return 0;
    }
    if (args->path || strcmp(args->action, "import") != 0)
      return fail(err, errlen, "unexpected argument '%s'", arg);
    args->path = arg;
    return 0;
  case COMMAND_RUN:
  case COMMAND_SUBMIT:
  case COMMAND_CHECK:
  case COMMAND_PLAN:
  case COMMAND_NEW:
    if (args->workflow) return fail(err, errlen, "unexpected argument '%s'", arg);
    args->workflow = arg;
    return 0;
  case COMMAND_RESUME:
  case COMMAND_ROLLBACK:
  case COMMAND_SHOW:
    if (args->run_id) return fail(err, errlen, "unexpected argument '%s'", arg);
    args->run_id = arg;
    return 0;
  case COMMAND_UNLOCK:
    if (args->key) return fail(err, errlen, "unexpected argument '%s'", arg);
    args->key = arg;
    return 0;
  default:
    return fail(err, errlen, "unexpected argument '%s'", arg);
  }
}

static int parse_command(struct args *args, const char *word) {
  for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
    if (strcmp(commands[i].name, word) == 0) {
      args->command = commands[i].command;
      return 1;
    }
  return 0;
}

static int check_complete(const struct args *args, char *err, size_t errlen) {
  static const char *const names[] = {"",       "run",    "check",  "plan", "resume", "rollback",
                                      "runs",   "show",   "unlock", "new",  "help",   "version",
                                      "submit", "worker", "state",  "serve"};
  switch (args->command) {
  case COMMAND_NONE:
    return fail(err, errlen, "%s", "no workflow given (see wfengine --help)");
  case COMMAND_STATE:
    if (!args->action || (strcmp(args->action, "init") != 0 && strcmp(args->action, "import") != 0))
      return fail(err, errlen, "%s", "state takes init or import DIR (see wfengine --help)");
    if (strcmp(args->action, "import") == 0 && !args->path)
      return fail(err, errlen, "%s", "state import needs the DIR of the file journals");
    break;
  case COMMAND_WORKER:
    if ((args->run_id != NULL) != (args->epoch != NULL))
      return fail(err, errlen, "%s", "worker --run and --epoch go together");
    break;
  case COMMAND_RUN:
  case COMMAND_SUBMIT:
  case COMMAND_CHECK:
  case COMMAND_PLAN:
    if (!args->workflow) return fail(err, errlen, "%s needs a WORKFLOW.lua", names[args->command]);
    break;
  case COMMAND_RESUME:
  case COMMAND_ROLLBACK:
  case COMMAND_SHOW:
    if (!args->run_id) return fail(err, errlen, "%s needs a RUN_ID", names[args->command]);
    break;
  case COMMAND_UNLOCK:
    if (!args->key || args->key[0] == '\0')
      return fail(err, errlen, "%s needs a KEY", names[args->command]);
    break;
  case COMMAND_NEW:
    if (!args->workflow || args->workflow[0] == '\0')
      return fail(err, errlen, "%s needs a NAME (the workflow file to write)",
                  names[args->command]);
    break;
  default:
    break;
  }
  if (args->dry_run && args->simulate)
    return fail(err, errlen, "%s", "--dry-run and --simulate exclude each other");
  if (args->json && args->html)
    return fail(err, errlen, "%s", "--json and --html exclude each other");
  if ((args->tls_cert != NULL) != (args->tls_key != NULL))
    return fail(err, errlen, "%s", "--tls-cert and --tls-key go together");
  if (args->quiet && args->verbose)
    return fail(err, errlen, "%s", "--quiet and --verbose exclude each other");
  if (args->command == COMMAND_RUN && args->format && !args->report)
    return fail(err, errlen, "%s", "--format goes with --report FILE (or with plan)");
  if (args->report && !args->dry_run)
    return fail(err, errlen, "%s",
                "--report needs --dry-run (it reports what a dry-run would change)");
  if (args->approved && (args->dry_run || args->simulate))
    return fail(err, errlen, "%s", "--approved is for a real run (it dry-runs first by itself)");
  if (args->tolerance && !args->approved)
    return fail(err, errlen, "%s", "--tolerance goes with --approved");
  if ((args->only != NULL) + (args->from != NULL) > 1)
    return fail(err, errlen, "%s", "--only and --from exclude each other");
  return 0;
}

int args_parse(struct args *args, int argc, char **argv, char *err, size_t errlen) {
  int i = 1;
  memset(args, 0, sizeof *args);
  if (argc > 1 && argv[1][0] != '-' && !parse_command(args, argv[1])) {
    args->command = COMMAND_RUN; /* wfengine WORKFLOW.lua: the same as run */
  } else if (argc > 1 && argv[1][0] != '-') {
    i = 2;
  }
  for (; i < argc; i++) {
    const char *arg = argv[i];
    if (strcmp(arg, "--") == 0) {
      for (i++; i < argc; i++)
        if (store_positional(args, argv[i], err, errlen) < 0) return -1;
      break;
    }
    if (arg[0] != '-' || arg[1] == '\0') {
      if (store_positional(args, arg, err, errlen) < 0) return -1;
      continue;
    }
    const char *value;
    const struct option *option = find_option(arg, &value);
    if (!option) return fail(err, errlen, "unknown option '%s' (see wfengine --help)", arg);
    if (args->command != COMMAND_NONE && args->command != COMMAND_HELP &&
        args->command != COMMAND_VERSION && !(option->commands & (1u << args->command)))
      return fail(err, errlen, "option '%s' does not apply to this command", arg);
    if (!(option->flags & TAKES_VALUE)) {
      if (value) return fail(err, errlen, "option '%s' takes no value", arg);
      store_flag(args, option);
      continue;
    }
    if (!value) {
      if (i + 1 >= argc) return fail(err, errlen, "option '%s' needs a value", arg);
      value = argv[++i];
    }
    if (store_option(args, option, value, err, errlen) < 0) return -1;
  }
  if (args->command == COMMAND_HELP || args->command == COMMAND_VERSION) return 0;
  return check_complete(args, err, errlen);
}
