/* lua_helpers.h: a Lua state for unit tests, and a way to run a snippet and
 * compare what it returns. Header-only, like tap.h. */
#ifndef WF_LUA_HELPERS_H
#define WF_LUA_HELPERS_H

#include <lauxlib.h>
#include <lualib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tap.h"

/* A state with the standard libraries and module `name` as a global too. */
static lua_State *test_state(const char *name, const char *global, lua_CFunction open)
    __attribute__((unused));
static lua_State *test_state(const char *name, const char *global, lua_CFunction open) {
  lua_State *L = luaL_newstate();
  luaL_openlibs(L);
  luaL_requiref(L, name, open, 0);
  lua_setglobal(L, global);
  return L;
}

/* Runs code; returns its first result converted with tostring, or
 * "ERROR: <message>" (a static buffer, valid until the next call). */
static const char *run_lua(lua_State *L, const char *code) __attribute__((unused));
static const char *run_lua(lua_State *L, const char *code) {
  static char result[8192];
  int status = luaL_loadstring(L, code);
  if (status == LUA_OK) status = lua_pcall(L, 0, 1, 0);
  size_t length;
  const char *text = luaL_tolstring(L, -1, &length);
  snprintf(result, sizeof result, "%s%.*s", status == LUA_OK ? "" : "ERROR: ", (int)length, text);
  lua_pop(L, 2);
  return result;
}

/* Asserts that code returns (tostring of) want. */
#define is_lua(L, code, want, name) is_str(run_lua(L, code), want, name)

/* Asserts that code raises an error whose message contains want. */
#define lua_fails_with(L, code, want, name)                                                        \
  do {                                                                                             \
    const char *got_ = run_lua(L, code);                                                           \
    if (!ok(strncmp(got_, "ERROR: ", 7) == 0 && strstr(got_, want) != NULL, "%s", name))           \
      printf("#   got '%s', want an error containing '%s'\n", got_, want);                         \
  } while (0)

#endif
