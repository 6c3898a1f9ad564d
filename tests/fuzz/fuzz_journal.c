/* fuzz_journal.c: libFuzzer target for journal reading: the input is written
 * as a run's events.jsonl and read back the way `wfengine show` and `runs`
 * do (journal.read, wf.json decode per line, record.replay, history.show in
 * text and JSON), in a Lua state made by host_new with the embedded modules.
 *
 * A C-level crash, leak or UB is always a finding. A Lua error escaping
 * show (which the user would see as "internal error") is one only with
 * WF_FUZZ_STRICT=1: journals are written by the engine, and the engine's Lua
 * side is not this target's to fix; strict mode finds the repros. */
#include <lauxlib.h>
#include <lualib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "host.h"

static lua_State *L;
static char state[64], path[128];
static int strict;

static const char check[] =
    "local state, strict = ...\n"
    "io.stderr = NULL_STDERR -- show warns on stderr; keep the fuzzer's output readable\n"
    "local journal = require 'wfengine.journal'\n"
    "local history = require 'wfengine.history'\n"
    "local events, warning = journal.read(state, 'fuzz')\n"
    "if not events then\n"
    "  assert(type(warning) == 'string' and not warning:find('\\n'), 'journal.read message')\n"
    "  return\n"
    "end\n"
    "local ok, err = pcall(function()\n"
    "  history.show(state, 'fuzz', false)\n"
    "  history.show(state, 'fuzz', true)\n"
    "  history.runs(state, false)\n"
    "  history.runs(state, true)\n"
    "end)\n"
    "if not ok and strict then error(err, 0) end\n";

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size) {
  static int ready;
  if (!ready) {
    ready = 1;
    char dir[96];
    strict = getenv("WF_FUZZ_STRICT") && strcmp(getenv("WF_FUZZ_STRICT"), "1") == 0;
    snprintf(state, sizeof state, "/tmp/wf-fuzz-journal.%d", (int)getpid());
    snprintf(dir, sizeof dir, "mkdir -p %s/runs/fuzz", state);
    if (system(dir) != 0) abort();
    snprintf(path, sizeof path, "%s/runs/fuzz/events.jsonl", state);
    if (!freopen("/dev/null", "w", stdout)) abort(); /* show prints */
  }
  /* a fresh state per input: libFuzzer's leak check sees what one read leaves */
  L = host_new();
  if (luaL_dostring(L, "NULL_STDERR = io.open('/dev/null', 'w')") != LUA_OK) abort();
  if (luaL_loadbuffer(L, check, sizeof check - 1, "=fuzz_journal") != LUA_OK) abort();
  lua_setglobal(L, "check");
  FILE *file = fopen(path, "wb");
  if (!file || fwrite(data, 1, size, file) != size || fclose(file) != 0) abort();
  lua_getglobal(L, "check");
  lua_pushstring(L, state);
  lua_pushboolean(L, strict);
  if (host_pcall(L, 2, 0) != LUA_OK) {
    fprintf(stderr, "fuzz_journal: %s\n", luaL_tolstring(L, -1, NULL));
    abort();
  }
  lua_close(L);
  return 0;
}
