/* test_args.c: args_parse (engine/args.c) against the usage text (engine/main.c): every
 * command and option, the `wfengine X.lua` shorthand, both forms of -p,
 * missing values, unknown options, options that do not apply to a command,
 * and the values that are checked at parse time. */
#include <string.h>
#include "engine.h"
#include "tap.h"

static struct args args;
static char err[512];

/* Parses a NULL-terminated list of words after "wfengine"; returns 0 or -1. */
static int parse_words(const char *const *words) {
  char *argv[2 * ARGS_MAX_LIST + 8];
  int argc = 0;
  argv[argc++] = (char *)"wfengine";
  for (int i = 0; words[i]; i++)
    argv[argc++] = (char *)words[i];
  argv[argc] = NULL;
  err[0] = '\0';
  return args_parse(&args, argc, argv, err, sizeof err);
}

#define PARSE(...) parse_words((const char *const[]){__VA_ARGS__, NULL})

/* An expected failure whose message starts with prefix. */
static void fails_with(int rc, const char *prefix, const char *name) {
  int good = rc == -1 && strncmp(err, prefix, strlen(prefix)) == 0;
  if (!ok(good, "%s", name)) printf("#   rc %d, message '%s', want prefix '%s'\n", rc, err, prefix);
}

int main(void) {
  /* commands */
  is_int(PARSE("wf.lua"), 0, "`wfengine wf.lua` parses");
  is_int(args.command, COMMAND_RUN, "`wfengine wf.lua` is run");
  is_str(args.workflow, "wf.lua", "... with the workflow");
  is_int(PARSE("run", "wf.lua"), 0, "run wf.lua");
  ok(args.command == COMMAND_RUN && args.workflow && strcmp(args.workflow, "wf.lua") == 0,
     "run: command and workflow");
  PARSE("check", "wf.lua");
  ok(args.command == COMMAND_CHECK && strcmp(args.workflow, "wf.lua") == 0, "check wf.lua");
  PARSE("plan", "wf.lua");
  ok(args.command == COMMAND_PLAN && strcmp(args.workflow, "wf.lua") == 0, "plan wf.lua");
  PARSE("resume", "20260101T000000Z-abcd");
  ok(args.command == COMMAND_RESUME && strcmp(args.run_id, "20260101T000000Z-abcd") == 0,
     "resume RUN_ID");
  PARSE("rollback", "R1", "-y");
  ok(args.command == COMMAND_ROLLBACK && strcmp(args.run_id, "R1") == 0 && args.yes,
     "rollback RUN_ID -y");
  is_int(PARSE("runs"), 0, "runs takes no argument");
  is_int(args.command, COMMAND_RUNS, "runs");
  PARSE("show", "R1", "--json");
  ok(args.command == COMMAND_SHOW && strcmp(args.run_id, "R1") == 0 && args.json,
     "show RUN_ID --json");
  PARSE("--help");
  is_int(args.command, COMMAND_HELP, "--help");
  PARSE("-h");
  is_int(args.command, COMMAND_HELP, "-h");
  PARSE("--version");
  is_int(args.command, COMMAND_VERSION, "--version");
  is_int(PARSE("run", "--help"), 0, "run --help is help, no workflow needed");
  is_int(args.command, COMMAND_HELP, "run --help: command help");

  /* missing arguments */
  const char *const nothing[] = {NULL};
  fails_with(parse_words(nothing), "no workflow given", "no arguments at all");
  fails_with(PARSE("run"), "run needs a WORKFLOW.lua", "run without workflow");
  fails_with(PARSE("check"), "check needs a WORKFLOW.lua", "check without workflow");
  fails_with(PARSE("plan"), "plan needs a WORKFLOW.lua", "plan without workflow");
  fails_with(PARSE("resume"), "resume needs a RUN_ID", "resume without run id");
  fails_with(PARSE("rollback"), "rollback needs a RUN_ID", "rollback without run id");
  fails_with(PARSE("show"), "show needs a RUN_ID", "show without run id");
  fails_with(PARSE("run", "a.lua", "b.lua"), "unexpected argument 'b.lua'", "two workflows");
  fails_with(PARSE("runs", "x"), "unexpected argument 'x'", "runs with an argument");
  fails_with(PARSE("show", "R1", "R2"), "unexpected argument 'R2'", "show with two run ids");
  fails_with(PARSE("-p", "a=1"), "no workflow given", "options only, no workflow");

  /* parameters: every spelling */
  is_int(PARSE("wf.lua", "-p", "a=1", "-pb=2", "--param", "c=3", "--param=d=4"), 0,
         "-p NAME=V, -pNAME=V, --param NAME=V, --param=NAME=V");
  is_int(args.param_count, 4, "four parameters");
  is_str(args.params[0], "a=1", "-p a=1");
  is_str(args.params[1], "b=2", "-pb=2");
  is_str(args.params[2], "c=3", "--param c=3");
  is_str(args.params[3], "d=4", "--param=d=4");
  PARSE("wf.lua", "-p", "url=http://x/?a=b");
  is_str(args.params[0], "url=http://x/?a=b", "value may hold '='");
  PARSE("wf.lua", "-p", "empty=");
  is_str(args.params[0], "empty=", "empty value is allowed");
  fails_with(PARSE("wf.lua", "-p", "novalue"), "-p takes NAME=VALUE, not 'novalue'",
             "-p without =");
  fails_with(PARSE("wf.lua", "-p", "=v"), "-p takes NAME=VALUE, not '=v'", "-p with empty name");
  fails_with(PARSE("wf.lua", "-p"), "option '-p' needs a value", "-p at the end");
  fails_with(PARSE("wf.lua", "--param"), "option '--param' needs a value", "--param at the end");
  is_int(PARSE("check", "wf.lua", "-p", "a=1"), 0, "check takes -p");
  is_int(args.param_count, 1, "check: one parameter");
  is_int(PARSE("resume", "R", "-p", "pw=1"), 0, "resume takes -p (secrets again)");

  /* every run option */
  is_int(PARSE("run", "wf.lua", "-c", "cfg.yaml", "-n", "--fail-at", "s1", "--fail-at=s2:3",
               "--skip", "a,b", "--on-failure", "pause", "-y", "--state", "/tmp/st", "--json",
               "-q"),
         0, "run with many options");
  is_str(args.config, "cfg.yaml", "-c");
  ok(args.dry_run && !args.simulate, "-n is dry-run");
  is_int(args.fail_at_count, 2, "--fail-at repeatable");
  is_str(args.fail_at[0], "s1", "--fail-at STEP");
  is_str(args.fail_at[1], "s2:3", "--fail-at=STEP:ATTEMPT");
  is_str(args.skip, "a,b", "--skip");
  is_str(args.on_failure, "pause", "--on-failure pause");
  ok(args.yes && args.json && args.quiet && !args.verbose, "-y --json -q");
  is_str(args.state, "/tmp/st", "--state");
  PARSE("wf.lua", "--config=c.yaml", "--dry-run", "--yes", "--verbose", "--from", "s3");
  ok(args.config && strcmp(args.config, "c.yaml") == 0 && args.dry_run && args.yes && args.verbose,
     "long forms --config= --dry-run --yes --verbose");
  is_str(args.from, "s3", "--from");
  PARSE("wf.lua", "--simulate", "--only", "x,y", "--on-failure=compensate", "-v");
  ok(args.simulate && args.verbose, "--simulate -v");
  is_str(args.only, "x,y", "--only");
  is_str(args.on_failure, "compensate", "--on-failure=compensate");
  PARSE("wf.lua", "--", "-odd.lua");
  fails_with(PARSE("wf.lua", "--", "-odd.lua"), "unexpected argument '-odd.lua'",
             "after --, a second positional is still one too many");
  is_int(PARSE("run", "--", "-odd.lua"), 0, "-- lets a workflow name start with '-'");
  is_str(args.workflow, "-odd.lua", "... and it is the workflow");
  is_int(PARSE("run", "-json.lua"), -1, "without --, '-json.lua' is an option");
  is_int(PARSE("run", "-"), 0, "a lone '-' is positional");

  /* plan --format */
  const char *formats[] = {"text", "markdown", "json", "dot"};
  for (int i = 0; i < 4; i++) {
    PARSE("plan", "wf.lua", "--format", formats[i]);
    is_str(args.format, formats[i], formats[i]);
  }
  fails_with(PARSE("plan", "wf.lua", "--format", "yaml"),
             "--format takes text, markdown, json or dot, not 'yaml'", "bad --format");
  fails_with(PARSE("plan", "wf.lua", "--format"), "option '--format' needs a value",
             "--format without value");

  /* values checked at parse time */
  fails_with(PARSE("wf.lua", "--on-failure", "retry"),
             "--on-failure takes compensate or pause, not 'retry'", "bad --on-failure");
  fails_with(PARSE("wf.lua", "--fail-at", ":2"), "--fail-at takes STEP or STEP:ATTEMPT",
             "--fail-at without step");
  fails_with(PARSE("wf.lua", "--fail-at="), "--fail-at takes STEP or STEP:ATTEMPT",
             "--fail-at with empty value");
  fails_with(PARSE("wf.lua", "-n", "--simulate"), "--dry-run and --simulate exclude each other",
             "--dry-run with --simulate");
  fails_with(PARSE("wf.lua", "--simulate", "--dry-run"),
             "--dry-run and --simulate exclude each other", "--simulate with --dry-run");
  fails_with(PARSE("wf.lua", "-q", "-v"), "--quiet and --verbose exclude each other", "-q with -v");
  fails_with(PARSE("wf.lua", "--only", "a", "--from", "b"), "--only and --from exclude each other",
             "--only with --from");

  /* unknown options and values given to flags */
  fails_with(PARSE("wf.lua", "--bogus"), "unknown option '--bogus'", "unknown long option");
  fails_with(PARSE("wf.lua", "-Z"), "unknown option '-Z'", "unknown short option");
  fails_with(PARSE("wf.lua", "--jso"), "unknown option '--jso'",
             "no prefix matching of long options");
  fails_with(PARSE("wf.lua", "--json=yes"), "option '--json=yes' takes no value",
             "flag with =value");
  fails_with(PARSE("wf.lua", "-yy"), "option '-yy' takes no value",
             "bundled short flags are refused");

  /* options that do not apply to a command */
  fails_with(PARSE("plan", "wf.lua", "-n"), "option '-n' does not apply", "plan --dry-run");
  fails_with(PARSE("plan", "wf.lua", "--json"), "option '--json' does not apply", "plan --json");
  fails_with(PARSE("check", "wf.lua", "--simulate"), "option '--simulate' does not apply",
             "check --simulate");
  fails_with(PARSE("check", "wf.lua", "--format", "json"), "option '--format' does not apply",
             "check --format");
  fails_with(PARSE("wf.lua", "--format", "json"), "--format goes with --report",
             "run --format without --report");
  PARSE("wf.lua", "-n", "--report", "r.json", "--format", "json");
  is_str(args.report, "r.json", "run -n --report FILE");
  is_str(args.format, "json", "run -n --report FILE --format json");
  fails_with(PARSE("wf.lua", "--report", "r.md"), "--report needs --dry-run",
             "--report without -n");
  fails_with(PARSE("wf.lua", "-n", "--approved", "r.md"), "--approved is for a real run",
             "--approved with -n");
  PARSE("wf.lua", "--approved", "r.md", "--tolerance", "2.5");
  is_str(args.tolerance, "2.5", "run --approved FILE --tolerance PCT");
  fails_with(PARSE("wf.lua", "--approved", "r.md", "--tolerance", "x"),
             "--tolerance takes a percentage", "--tolerance x");
  fails_with(PARSE("wf.lua", "--approved", "r.md", "--tolerance", "101"),
             "--tolerance takes a percentage", "--tolerance 101");
  fails_with(PARSE("wf.lua", "--tolerance", "5"), "--tolerance goes with --approved",
             "--tolerance without --approved");
  PARSE("plan", "wf.lua", "--estimate", "--state", "d");
  ok(args.estimate == 1, "plan --estimate");
  fails_with(PARSE("runs", "-p", "a=1"), "option '-p' does not apply", "runs -p");
  fails_with(PARSE("show", "R", "-y"), "option '-y' does not apply", "show -y");
  fails_with(PARSE("resume", "R", "--from", "s"), "option '--from' does not apply",
             "resume --from");
  fails_with(PARSE("rollback", "R", "--on-failure", "pause"),
             "option '--on-failure' does not apply", "rollback --on-failure");
  fails_with(PARSE("resume", "R", "--simulate"), "option '--simulate' does not apply",
             "resume --simulate");
  is_int(PARSE("resume", "R", "--on-failure", "pause", "--fail-at", "s"), 0,
         "resume takes --on-failure and --fail-at");
  is_int(PARSE("runs", "--state", "/x", "--json"), 0, "runs takes --state and --json");
  fails_with(PARSE("runs", "--state="), "--state needs a directory", "--state= (empty)");
  fails_with(PARSE("runs", "--state", ""), "--state needs a directory", "--state '' (empty)");
  PARSE("unlock", "k:x", "-y", "--state", "/x");
  ok(args.command == COMMAND_UNLOCK && strcmp(args.key, "k:x") == 0 && args.yes,
     "unlock KEY -y --state DIR");
  fails_with(PARSE("unlock"), "unlock needs a KEY", "unlock without a key");
  fails_with(PARSE("unlock", "a", "b"), "unexpected argument 'b'", "unlock with two keys");
  fails_with(PARSE("unlock", "a", "--json"), "option '--json' does not apply", "unlock --json");
  is_int(PARSE("plan", "wf.lua", "-q"), 0, "-q applies everywhere");
  PARSE("new", "deploy");
  ok(args.command == COMMAND_NEW && strcmp(args.workflow, "deploy") == 0, "new NAME");
  fails_with(PARSE("new"), "new needs a NAME", "new without a name");
  fails_with(PARSE("new", "a", "b"), "unexpected argument 'b'", "new with two names");
  fails_with(PARSE("new", "a", "--state", "/x"), "option '--state' does not apply", "new --state");

  /* an option before the command word: refused, not guessed */
  fails_with(PARSE("-y", "run", "wf.lua"), "unexpected argument", "-y before the command word");
  fails_with(PARSE("--json", "wf.lua"), "unexpected argument", "--json before the workflow");

  /* list limits */
  const char *many[2 * ARGS_MAX_LIST + 4];
  int n = 0;
  many[n++] = "wf.lua";
  for (int i = 0; i < ARGS_MAX_LIST + 1; i++) {
    many[n++] = "-p";
    many[n++] = "a=1";
  }
  many[n] = NULL;
  fails_with(parse_words(many), "too many", "more than ARGS_MAX_LIST parameters is an error");
  return tap_done();
}
