/* host.c: the Lua state: standard libraries, the engine's embedded Lua
 * modules and the bindings in package.preload, and the one protected entry
 * point for every call from C into Lua. */
#include <stdio.h>
#include <string.h>

#include <lauxlib.h>
#include <lualib.h>
#include "embedded.h"
#include "engine.h"
#include "host.h"

/* Keeps error tables intact (the runner reads their fields) and adds a
 * traceback to everything else, as lua.c's msghandler does. */
static int message_handler(lua_State *L) {
  if (lua_type(L, 1) == LUA_TTABLE) {
    if (lua_getfield(L, 1, "traceback") == LUA_TNIL) {
      luaL_traceback(L, L, NULL, 1);
      lua_setfield(L, 1, "traceback");
    }
    lua_settop(L, 1);
    return 1;
  }
  const char *message = lua_tostring(L, 1);
  if (message == NULL) {
    if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING) return 1;
    message = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
  }
  luaL_traceback(L, L, message, 1);
  return 1;
}

int host_pcall(lua_State *L, int nargs, int nresults) {
  int base = lua_gettop(L) - nargs;
  lua_pushcfunction(L, message_handler);
  lua_insert(L, base);
  int status = lua_pcall(L, nargs, nresults, base);
  lua_remove(L, base);
  return status;
}

static int load_embedded(lua_State *L) {
  const struct embedded_lua *entry = lua_touserdata(L, lua_upvalueindex(1));
  char chunkname[256];
  snprintf(chunkname, sizeof chunkname, "@%s", entry->path);
  if (luaL_loadbuffer(L, entry->text, entry->length, chunkname) != LUA_OK) return lua_error(L);
  lua_pushstring(L, entry->module);
  lua_call(L, 1, 1);
  return 1;
}

/* require "wfengine.assets": {file name = bytes} of engine/console/. */
static int open_assets(lua_State *L) {
  lua_newtable(L);
  for (const struct embedded_lua *e = embedded_assets; e->module; e++) {
    lua_pushlstring(L, e->text, e->length);
    lua_setfield(L, -2, e->module);
  }
  return 1;
}

void host_open(lua_State *L) {
  luaL_openlibs(L);
  /* Every module of the engine is in package.preload: nothing is searched on
   * disk (not the current directory), no C module is loaded. Workflows get
   * their own package table (engine/lua/dsl.lua). */
  lua_getglobal(L, "package");
  lua_pushliteral(L, "");
  lua_setfield(L, -2, "path");
  lua_pushliteral(L, "");
  lua_setfield(L, -2, "cpath");
  lua_pop(L, 1);
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
  lua_pushcfunction(L, engine_open_core);
  lua_setfield(L, -2, "wfengine.core");
  lua_pushcfunction(L, engine_open_files);
  lua_setfield(L, -2, "wfengine.files");
  lua_pushcfunction(L, open_assets);
  lua_setfield(L, -2, "wfengine.assets");
  for (const struct embedded_binding *b = embedded_bindings; b->module; b++) {
    lua_pushcfunction(L, b->open);
    lua_setfield(L, -2, b->module);
  }
  for (const struct embedded_lua *e = embedded_lua; e->module; e++) {
    lua_pushlightuserdata(L, (void *)e);
    lua_pushcclosure(L, load_embedded, 1);
    lua_setfield(L, -2, e->module);
  }
  lua_pop(L, 1);
}

static int protected_open(lua_State *L) {
  host_open(L);
  return 0;
}

lua_State *host_new(void) {
  lua_State *L = luaL_newstate();
  if (!L) return NULL;
  lua_pushcfunction(L, protected_open);
  if (lua_pcall(L, 0, 0, 0) != LUA_OK) {
    lua_close(L);
    return NULL;
  }
  return L;
}
