/* oom.h: the out-of-memory harness of the unit tests. A Lua state whose
 * allocator fails once a budget of allocations is spent, and a sweep that
 * runs one call under every budget in turn, so that a binding meets a
 * memory error at each allocation it makes and must fail cleanly (ASan and
 * valgrind then see what it leaked). Header-only, like tap.h. */
#ifndef WF_OOM_H
#define WF_OOM_H

#include <lauxlib.h>
#include <lualib.h>
#include <stdlib.h>

/* Allocations left before the allocator fails; -1: no limit. */
static long oom_budget = -1;

static void *oom_alloc(void *ud, void *ptr, size_t old_size, size_t new_size) {
  (void)ud;
  (void)old_size;
  if (new_size == 0) {
    free(ptr);
    return NULL;
  }
  if (oom_budget == 0) return NULL;
  if (oom_budget > 0) oom_budget--;
  return realloc(ptr, new_size);
}

/* A state on oom_alloc with the standard libraries and module `name` as
 * the global `global` (no limit until a sweep sets one). */
static lua_State *oom_state(const char *name, const char *global, lua_CFunction open)
    __attribute__((unused));
static lua_State *oom_state(const char *name, const char *global, lua_CFunction open) {
  lua_State *L = lua_newstate(oom_alloc, NULL);
  luaL_openlibs(L);
  luaL_requiref(L, name, open, 0);
  lua_setglobal(L, global);
  return L;
}

struct oom_counts {
  int failures, successes;
};

/* For budget = 0, 1, ... max - 1: push(L, budget) pushes a function and
 * its arguments and returns how many arguments; the call runs with the
 * allocator failing after `budget` allocations. Stops early after `enough`
 * successes (0: never). Returns how many calls failed and succeeded. */
static struct oom_counts oom_sweep(lua_State *L, long max, int enough,
                                   int (*push)(lua_State *L, long budget)) __attribute__((unused));
static struct oom_counts oom_sweep(lua_State *L, long max, int enough,
                                   int (*push)(lua_State *L, long budget)) {
  struct oom_counts counts = {0, 0};
  for (long budget = 0; budget < max && (enough == 0 || counts.successes < enough); budget++) {
    int top = lua_gettop(L);
    int nargs = push(L, budget);
    oom_budget = budget;
    int status = lua_pcall(L, nargs, 0, 0);
    oom_budget = -1;
    if (status == LUA_OK)
      counts.successes++;
    else
      counts.failures++;
    lua_settop(L, top);
  }
  return counts;
}

#endif
