/* fuzz_json.c: libFuzzer target for wf.json decode (bindings/json.c).
 * Any input must decode or fail with an error table of kind "json" whose
 * message is "line L, column C: ...";
 * what decodes must encode again, and decode to the same text. A fresh Lua state
 * per input, closed after it, so that libFuzzer's leak check sees exactly
 * what one decode leaves behind. */
#include <lauxlib.h>
#include <lualib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"

static lua_State *L;

static const char check[] =
    "local json, text = ...\n"
    "local ok, value = pcall(json.decode, text)\n"
    "if not ok then\n"
    "  assert(type(value) == 'table' and value.kind == 'json' and value.retryable == false\n"
    "    and value.message:match('^line %d+, column %d+: '), tostring(value.message or value))\n"
    "  return\n"
    "end\n"
    /* sort_keys: a Lua table has no key order, the text must still be stable */
    "local ok2, again = pcall(json.encode, value, { sort_keys = true })\n"
    /* decoded strings may hold bytes jansson let through only as \\u escapes:
     * encode may refuse nothing that decode produced */
    "assert(ok2, again)\n"
    "local third = json.encode(json.decode(again), { sort_keys = true })\n"
    "assert(third == again, 'encode(decode(x)) is not stable')\n";

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size) {
  L = luaL_newstate();
  luaL_openlibs(L);
  {
    if (luaL_loadbuffer(L, check, sizeof check - 1, "=fuzz_json") != LUA_OK) abort();
    lua_setglobal(L, "check");
  }
  lua_getglobal(L, "check");
  luaL_requiref(L, "wf.json", luaopen_wf_json, 0);
  lua_pushlstring(L, (const char *)data, size);
  if (lua_pcall(L, 2, 0, 0) != LUA_OK) {
    fprintf(stderr, "fuzz_json: %s\n", lua_tostring(L, -1));
    abort();
  }
  lua_close(L);
  return 0;
}
