/* main.c: the command line. Parses argv (args.c), hands the result to the
 * Lua side of the engine (engine/lua/main.lua) and exits with its code. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <uv.h>
#include <lauxlib.h>
#include "engine.h"
#include "host.h"

#ifndef WFENGINE_VERSION
#define WFENGINE_VERSION "0.1.0"
#endif

static const char usage[] =
    "usage: wfengine WORKFLOW.lua [run options]       run a workflow (same as run)\n"
    "       wfengine run WORKFLOW.lua [run options]\n"
    "       wfengine check WORKFLOW.lua [-c FILE] [-p NAME=VALUE ...]\n"
    "       wfengine plan WORKFLOW.lua [--format text|markdown|json|dot] [--estimate [--state "
    "DIR]]\n"
    "       wfengine resume RUN_ID [-y] [-c FILE] [-p NAME=VALUE ...] [--fail-at STEP[:N]]\n"
    "                      [--on-failure compensate|pause] [--workflow FILE] "
    "[--confirm-from-state]\n"
    "                      [--state DIR|URL] [--json]\n"
    "       wfengine rollback RUN_ID [-y] [-c FILE] [-p NAME=VALUE ...] [--fail-at STEP[:N]]\n"
    "                      [--workflow FILE] [--confirm-from-state] [--state DIR|URL] [--json]\n"
    "       wfengine runs [--state DIR|URL] [--json]  list runs, newest first\n"
    "       wfengine show RUN_ID [--state DIR] [--json | --html]   one run, step by step\n"
    "       wfengine unlock KEY [-y] [--state DIR]    release a lock key by hand (asks to "
    "confirm)\n"
    "       wfengine new NAME                         write a commented starter NAME.lua\n"
    "       wfengine submit WORKFLOW.lua [run options] [--wait]   queue a run (--state "
    "postgresql://...)\n"
    "       wfengine worker [-c FILE] [--concurrency N] [--lease S] [--name NAME]\n"
    "       wfengine state init | import DIR --state postgresql://...\n"
    "       wfengine runs [--status S] [--workflow W] [--since T]\n"
    "       wfengine serve [--listen ADDR:PORT] [--state DIR] [--workflows DIR] [-c FILE]\n"
    "                      [--token-file F] [--tls-cert F --tls-key F]   the web console\n"
    "       wfengine --help | --version               this text | version and libraries\n"
    "\n"
    "run options (STEP is a step id or its number in `wfengine plan`):\n"
    "  -p, --param NAME=VALUE     a workflow parameter (repeatable)\n"
    "  -c, --config FILE          YAML config: ctx.config; its params: are defaults\n"
    "  -n, --dry-run              perform reads, report changes instead of making them\n"
    "      --simulate             touch nothing outside the process (virtual time)\n"
    "      --fail-at STEP[:N]     inject a failure into STEP (every attempt, or attempt N)\n"
    "      --from STEP            start at STEP (earlier steps are skipped)\n"
    "      --only STEP[,STEP]     run only these steps\n"
    "      --skip STEP[,STEP]     skip these steps\n"
    "      --on-failure compensate|pause   override the workflow's failure policy\n"
    "      --report FILE          with --dry-run: write the change report (markdown; JSON\n"
    "                             with --format json)\n"
    "      --approved FILE        run only if a fresh dry-run still matches this report\n"
    "      --tolerance PCT        with --approved: counts may differ by PCT percent (default 0)\n"
    "  -y, --yes                  answer yes to every confirm prompt\n"
    "      --confirm-from-state   a confirm step waits for its answer in the state (a console)\n"
    "      --state DIR|URL        journal directory or postgresql:// URL (default "
    "$WFENGINE_STATE,\n"
    "                             else ./.wfengine)\n"
    "      --confirm-from-state   wait for confirm answers in the state (the web console)\n"
    "      --json                 print journal events as JSON lines instead of the view\n"
    "  -q, --quiet                print only failures (also hides logs and print output)\n"
    "  -v, --verbose              also print each attempt as it starts\n"
    "\n"
    "exit codes: 0 succeeded, 1 failed and compensated, 2 usage or validation error,\n"
    "3 compensation failed (see show), 4 interrupted (resumable), 5 paused (resume or rollback)\n";

static void set_string(lua_State *L, const char *name, const char *value) {
  if (!value) return;
  lua_pushstring(L, value);
  lua_setfield(L, -2, name);
}

static void set_list(lua_State *L, const char *name, const char *const *values, int count) {
  lua_createtable(L, count, 0);
  for (int i = 0; i < count; i++) {
    lua_pushstring(L, values[i]);
    lua_rawseti(L, -2, i + 1);
  }
  lua_setfield(L, -2, name);
}

/* stack: -> args table */
static void push_args(lua_State *L, const struct args *args) {
  static const char *const names[] = {"",       "run",    "check",  "plan", "resume", "rollback",
                                      "runs",   "show",   "unlock", "new",  "help",   "version",
                                      "submit", "worker", "state",  "serve"};
  lua_newtable(L);
  set_string(L, "command", names[args->command]);
  set_string(L, "workflow", args->workflow);
  set_string(L, "run_id", args->run_id);
  set_string(L, "key", args->key);
  set_string(L, "config", args->config);
  set_string(L, "from", args->from);
  set_string(L, "only", args->only);
  set_string(L, "skip", args->skip);
  set_string(L, "on_failure", args->on_failure);
  set_string(L, "state", args->state);
  set_string(L, "action", args->action);
  set_string(L, "path", args->path);
  set_string(L, "status", args->status);
  set_string(L, "workflow_option", args->workflow_option);
  set_string(L, "since", args->since);
  set_string(L, "concurrency", args->concurrency);
  set_string(L, "lease", args->lease);
  set_string(L, "name", args->name);
  set_string(L, "epoch", args->epoch);
  set_string(L, "format", args->format);
  set_string(L, "listen", args->listen);
  set_string(L, "workflows", args->workflows);
  set_string(L, "token_file", args->token_file);
  set_string(L, "tls_cert", args->tls_cert);
  set_string(L, "tls_key", args->tls_key);
  set_string(L, "report", args->report);
  set_string(L, "approved", args->approved);
  set_string(L, "tolerance", args->tolerance);
  set_list(L, "params", args->params, args->param_count);
  set_list(L, "fail_at", args->fail_at, args->fail_at_count);
  const struct {
    const char *name;
    int value;
  } flags[] = {{"dry_run", args->dry_run},
               {"simulate", args->simulate},
               {"yes", args->yes},
               {"json", args->json},
               {"quiet", args->quiet},
               {"verbose", args->verbose},
               {"wait", args->wait},
               {"html", args->html},
               {"confirm_from_state", args->confirm_from_state},
               {"estimate", args->estimate}};
  for (size_t i = 0; i < sizeof flags / sizeof flags[0]; i++) {
    lua_pushboolean(L, flags[i].value);
    lua_setfield(L, -2, flags[i].name);
  }
  lua_pushstring(L, WFENGINE_VERSION);
  lua_setfield(L, -2, "version");
}

/* As lua.c's pmain, everything that may raise runs in the one protected
 * call: the libraries, the engine's modules, the arguments and
 * engine/lua/main.lua, whose result is the exit code. */
static int pmain(lua_State *L) {
  const struct args *args = lua_touserdata(L, 1);
  host_open(L);
  lua_getglobal(L, "require");
  lua_pushliteral(L, "wfengine.main");
  lua_call(L, 1, 1);
  push_args(L, args);
  lua_call(L, 1, 1);
  lua_pushinteger(L, luaL_optinteger(L, -1, EXIT_SUCCEEDED));
  return 1;
}

static int run_lua(const struct args *args) {
  lua_State *L = luaL_newstate();
  if (!L) {
    fprintf(stderr, "wfengine: out of memory\n");
    return EXIT_COMPENSATION_FAILED;
  }
  int code = EXIT_COMPENSATION_FAILED;
  engine_set_second_signal_exit(EXIT_INTERRUPTED);
  lua_pushcfunction(L, pmain);
  lua_pushlightuserdata(L, (void *)args);
  if (host_pcall(L, 1, 1) == LUA_OK)
    code = (int)lua_tointeger(L, -1);
  else /* the Lua side reports its own errors: reaching here is an engine bug */
    fprintf(stderr, "wfengine: internal error: %s\n", luaL_tolstring(L, -1, NULL));
  lua_close(L); /* runs __gc of every handle before the loop closes */
  engine_shutdown();
  engine_forget_secrets();
  return code;
}

int main(int argc, char **argv) {
  /* first, before any set-up: a child wf_spawn started, to become pg_dump or psql */
  if (argc > 1 && strcmp(argv[1], CHILD_EXEC_FLAG) == 0) return child_exec(argc, argv);
  struct args args;
  char err[512];
  if (args_parse(&args, argc, argv, err, sizeof err) < 0) {
    fprintf(stderr, "wfengine: %s\n", err);
    return EXIT_USAGE;
  }
  if (args.command == COMMAND_HELP) {
    fputs(usage, stdout);
    return EXIT_SUCCEEDED;
  }
  if (args.command == COMMAND_VERSION) {
    printf("wfengine %s (%s, libuv %s, %s)\n", WFENGINE_VERSION, LUA_RELEASE, uv_version_string(),
           curl_version());
    return EXIT_SUCCEEDED;
  }
  if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0) {
    fprintf(stderr, "wfengine: cannot initialise libcurl\n");
    return EXIT_COMPENSATION_FAILED;
  }
  int code = run_lua(&args);
  curl_global_cleanup();
  return code;
}
