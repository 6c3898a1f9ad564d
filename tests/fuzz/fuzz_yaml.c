/* fuzz_yaml.c: libFuzzer target for YAML to Lua conversion (bindings/yaml.c),
 * with `${VAR}` interpolation on: any input must load or fail with an error
 * table of kind "yaml" naming a position ("line L, column C: ..."), never
 * crash, leak or
 * hang. A loaded value that JSON can hold must encode. */
#include <lauxlib.h>
#include <lualib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"

int luaopen_wf_yaml(lua_State *L);

static lua_State *L;

static const char check[] =
    "local yaml, json, text = ...\n"
    "local opts = { env = { HOME = '/home/x', EMPTY = '', PW = 'p$w{d}' }, max_nodes = 20000 }\n"
    "local ok, value = pcall(yaml.load, text, opts)\n"
    "if not ok then\n"
    "  assert(type(value) == 'table' and value.kind == 'yaml', 'error is a ' .. type(value))\n"
    "  assert(value.message:match('line %d+, column %d+: ') or value.message:match('^yaml: '),\n"
    "    value.message)\n"
    "  return\n"
    "end\n"
    /* NaN, inf, non-UTF-8 text and aliases back to an ancestor (none exist:
     * an alias must follow its node) are refused by encode with a message */
    "local ok2, err = pcall(json.encode, value)\n"
    "assert(ok2 or type(err) == 'string' or (type(err) == 'table' and err.kind == 'json'),\n"
    "  'encode raised a ' .. type(err))\n";

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size) {
  L = luaL_newstate();
  luaL_openlibs(L);
  {
    if (luaL_loadbuffer(L, check, sizeof check - 1, "=fuzz_yaml") != LUA_OK) abort();
    lua_setglobal(L, "check");
  }
  lua_getglobal(L, "check");
  luaL_requiref(L, "wf.yaml", luaopen_wf_yaml, 0);
  luaL_requiref(L, "wf.json", luaopen_wf_json, 0);
  lua_pushlstring(L, (const char *)data, size);
  if (lua_pcall(L, 3, 0, 0) != LUA_OK) {
    fprintf(stderr, "fuzz_yaml: %s\n", lua_tostring(L, -1));
    abort();
  }
  lua_close(L);
  return 0;
}
