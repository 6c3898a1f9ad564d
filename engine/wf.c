/* wf.c: the services of wf.h besides waiting (engine/loop.c): the mode
 * and the clocks, logging and progress through the Lua hooks the runner
 * sets (core.set_hooks), secrets and their redaction, the calling step,
 * structured errors, scratch memory, and wf_add_helpers, the functions
 * every binding's Lua prelude shares. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include "engine.h"
#include "loop.h"

static struct services {
  wf_mode mode;
  int virtual_clock;
  double virtual_now;
  char **secrets; /* owned, each strdup'd; grows as secrets are registered */
  size_t secret_count, secret_capacity;
} services;

wf_mode wf_get_mode(lua_State *L) {
  (void)L;
  return services.mode;
}

void services_set_mode(wf_mode mode) {
  services.mode = mode;
  services.virtual_clock = mode == WF_MODE_SIMULATE;
  services.virtual_now = 0;
}

void services_set_virtual_now(double now) {
  services.virtual_now = now;
}

double wf_now(lua_State *L) {
  (void)L;
  return services.virtual_clock ? services.virtual_now : (double)uv_hrtime() / 1e9;
}

void engine_forget_secrets(void) {
  for (size_t i = 0; i < services.secret_count; i++)
    free(services.secrets[i]);
  free(services.secrets);
  services.secrets = NULL;
  services.secret_count = services.secret_capacity = 0;
}

/* Calls the Lua hook registered under name in core.set_hooks with nargs
 * arguments already on the stack; results are left on the stack. */
static int call_hook(lua_State *L, const char *name, int nargs, int nresults) {
  lua_getfield(L, LUA_REGISTRYINDEX, HOOKS_KEY);
  if (lua_istable(L, -1))
    lua_getfield(L, -1, name);
  else
    lua_pushnil(L);
  lua_remove(L, -2);
  if (!lua_isfunction(L, -1)) {
    lua_pop(L, nargs + 1);
    return 0;
  }
  lua_insert(L, -nargs - 1);
  lua_call(L, nargs, nresults);
  return 1;
}

/* The C library's printf, not lua_pushfstring's subset: bindings format
 * with %.*s, %zu and the like. */
void wf_log(lua_State *L, const char *level, const char *fmt, ...) {
  char small[512];
  va_list ap;
  va_start(ap, fmt);
  int length = vsnprintf(small, sizeof small, fmt, ap);
  va_end(ap);
  if (length < 0) return;
  lua_pushstring(L, level);
  if ((size_t)length < sizeof small) {
    lua_pushlstring(L, small, (size_t)length);
  } else {
    /* Lua owns the buffer, so a memory error cannot leak it. */
    luaL_Buffer buffer;
    char *text = luaL_buffinitsize(L, &buffer, (size_t)length + 1);
    va_start(ap, fmt);
    vsnprintf(text, (size_t)length + 1, fmt, ap);
    va_end(ap);
    luaL_pushresultsize(&buffer, (size_t)length);
  }
  const char *text = lua_tostring(L, -1); /* still alive after the pop: nothing allocates */
  if (!call_hook(L, "log", 2, 0)) fprintf(stderr, "%s: %s\n", level, text);
}

void wf_progress(lua_State *L, double done, double total, const char *unit) {
  lua_pushnumber(L, done);
  lua_pushnumber(L, total);
  lua_pushstring(L, unit ? unit : "");
  call_hook(L, "progress", 3, 0);
}

void wf_push_redacted(lua_State *L, const char *text, size_t length) {
  size_t out_length;
  char *out;
  if (services.secret_count == 0) {
    lua_pushlstring(L, text, length);
    return;
  }
  out = redact_text(text, length, (const char *const *)services.secrets, services.secret_count,
                    &out_length);
  if (!out) {
    lua_pushliteral(L, "***");
    return;
  }
  lua_pushlstring(L, out, out_length); /* may raise: copy made, free after */
  free(out);
}

/* Adds one text to the list unless it is there already; -1 when out of memory. */
static int secret_remember(const char *text) {
  for (size_t i = 0; i < services.secret_count; i++)
    if (strcmp(services.secrets[i], text) == 0) return 0;
  if (services.secret_count == services.secret_capacity) {
    size_t capacity = services.secret_capacity ? services.secret_capacity * 2 : 16;
    char **grown = realloc(services.secrets, capacity * sizeof *grown);
    if (!grown) return -1;
    services.secrets = grown;
    services.secret_capacity = capacity;
  }
  char *copy = strdup(text);
  if (!copy) return -1;
  services.secrets[services.secret_count++] = copy;
  return 0;
}

int wf_add_secret(lua_State *L, const char *value) {
  if (!value || !*value) return 0;
  size_t length = strlen(value);
  if (length < WF_SECRET_MIN) return -1;
  char *forms[REDACT_MAX_FORMS];
  int count = redact_forms(value, length, forms);
  int failed = count < 0 || secret_remember(value) < 0;
  for (int i = 0; i < count; i++) {
    if (!failed && secret_remember(forms[i]) < 0) failed = 1;
    free(forms[i]);
  }
  /* A secret half registered would be printed in the clear: stop instead. */
  if (failed) return luaL_error(L, "out of memory registering a secret");
  return 0;
}

int wf_push_add_secret(lua_State *L, const char *value) {
  if (wf_add_secret(L, value) == 0) {
    lua_pushboolean(L, 1);
    return 1;
  }
  lua_pushnil(L);
  lua_pushfstring(L, "shorter than %d bytes: too short to redact safely", WF_SECRET_MIN);
  return 2;
}

int wf_current_step(lua_State *L, const char **run_id, const char **step_id, int *attempt) {
  int found = 0;
  if (!call_hook(L, "current", 0, 3)) return 0;
  if (lua_isstring(L, -3) && lua_isstring(L, -2)) {
    /* The strings stay referenced by the step's record until it ends. */
    *run_id = lua_tostring(L, -3);
    *step_id = lua_tostring(L, -2);
    *attempt = (int)lua_tointeger(L, -1);
    found = 1;
  }
  lua_pop(L, 3);
  return found;
}

void wf_push_error(lua_State *L, const char *kind, const char *code, int retryable,
                   const char *message) {
  lua_createtable(L, 0, 5);
  lua_pushstring(L, message);
  lua_setfield(L, -2, "message");
  lua_pushstring(L, kind);
  lua_setfield(L, -2, "kind");
  if (code) {
    lua_pushstring(L, code);
    lua_setfield(L, -2, "code");
  }
  lua_pushboolean(L, retryable);
  lua_setfield(L, -2, "retryable");
  if (luaL_getmetatable(L, ERROR_META) == LUA_TTABLE)
    lua_setmetatable(L, -2);
  else
    lua_pop(L, 1);
}

int wf_raise(lua_State *L, const char *kind, const char *code, int retryable, const char *fmt,
             ...) {
  va_list ap;
  va_start(ap, fmt);
  lua_pushvfstring(L, fmt, ap);
  va_end(ap);
  wf_push_error(L, kind, code, retryable, lua_tostring(L, -1));
  lua_remove(L, -2);
  return lua_error(L);
}

void *wf_push_scratch(lua_State *L, size_t size, const char *name, lua_CFunction close) {
  void *box = lua_newuserdatauv(L, size, 0);
  memset(box, 0, size);
  if (luaL_getmetatable(L, name) == LUA_TNIL) {
    lua_pop(L, 1);
    lua_createtable(L, 0, 3);
    lua_pushcfunction(L, close);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, close);
    lua_setfield(L, -2, "__close");
    lua_pushstring(L, name);
    lua_setfield(L, -2, "__name");
    lua_pushvalue(L, -1);
    lua_setfield(L, LUA_REGISTRYINDEX, name);
  }
  lua_setmetatable(L, -2);
  lua_toclose(L, -1);
  return box;
}

void *wf_push_collected(lua_State *L, size_t size, int nuvalue, const char *name,
                        lua_CFunction gc) {
  void *box = lua_newuserdatauv(L, size, nuvalue);
  memset(box, 0, size);
  if (luaL_newmetatable(L, name)) {
    lua_pushcfunction(L, gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_setmetatable(L, -2);
  return box;
}

static int error_tostring(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_getfield(L, 1, "kind");
  lua_getfield(L, 1, "code");
  lua_getfield(L, 1, "message");
  const char *kind = lua_tostring(L, 2), *code = lua_tostring(L, 3);
  const char *message = luaL_optstring(L, 4, "error");
  if (kind && code)
    lua_pushfstring(L, "%s %s: %s", kind, code, message);
  else if (kind)
    lua_pushfstring(L, "%s: %s", kind, message);
  else
    lua_pushstring(L, message);
  return 1;
}

void services_open_error_meta(lua_State *L) {
  luaL_newmetatable(L, ERROR_META);
  lua_pushcfunction(L, error_tostring);
  lua_setfield(L, -2, "__tostring");
  lua_pop(L, 1);
}

/* ---- the functions every binding's prelude shares (wf_add_helpers) ---- */

static int helper_mode(lua_State *L) {
  static const char *const names[] = {"run", "dry-run", "simulate"};
  wf_mode mode = wf_get_mode(L);
  lua_pushstring(L, names[mode >= WF_MODE_RUN && mode <= WF_MODE_SIMULATE ? mode : 0]);
  return 1;
}

static int helper_log(lua_State *L) {
  const char *level = luaL_checkstring(L, 1);
  const char *text = luaL_checkstring(L, 2);
  wf_log(L, level, "%s", text);
  return 0;
}

static int helper_now(lua_State *L) {
  lua_pushnumber(L, wf_now(L));
  return 1;
}

/* add_secret(value) -> true, or nil and why it was refused (too short). */
static int helper_add_secret(lua_State *L) {
  return wf_push_add_secret(L, luaL_optstring(L, 1, NULL));
}

static int helper_redact(lua_State *L) {
  size_t length;
  const char *text = luaL_checklstring(L, 1, &length);
  wf_push_redacted(L, text, length);
  return 1;
}

/* error(kind, code, retryable, message) -> the structured error table, not
 * raised, so the prelude can add fields (body, retry_after) first. */
static int helper_error(lua_State *L) {
  const char *kind = luaL_checkstring(L, 1);
  const char *code = luaL_optstring(L, 2, NULL);
  int retryable = lua_toboolean(L, 3);
  const char *message = luaL_checkstring(L, 4);
  wf_push_error(L, kind, code, retryable, message);
  return 1;
}

static int helper_current_step(lua_State *L) {
  const char *run_id = NULL, *step_id = NULL;
  int attempt = 0;
  if (!wf_current_step(L, &run_id, &step_id, &attempt)) return 0;
  lua_pushstring(L, run_id);
  lua_pushstring(L, step_id);
  lua_pushinteger(L, attempt);
  return 3;
}

static const luaL_Reg helper_funcs[] = {{"mode", helper_mode},
                                        {"log", helper_log},
                                        {"now", helper_now},
                                        {"add_secret", helper_add_secret},
                                        {"redact", helper_redact},
                                        {"error", helper_error},
                                        {"current_step", helper_current_step},
                                        {"base64", wf_lua_base64},
                                        {NULL, NULL}};

void wf_add_helpers(lua_State *L) {
  luaL_setfuncs(L, helper_funcs, 0);
}
