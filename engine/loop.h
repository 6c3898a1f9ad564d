/* loop.h: what loop.c (the loop and signals), wf.c (the wf.h services) and
 * core.c (the "wfengine.core" module) share; internal to engine/. */
#ifndef WF_LOOP_H
#define WF_LOOP_H

#include <lua.h>
#include "wf.h"

/* loop.c */
int loop_interrupted(void); /* whether a signal asked the loop to stop */
/* The lua_CFunctions behind core.poll, core.cancel and core.mark_task. */
int loop_lua_poll(lua_State *L);
int loop_lua_cancel(lua_State *L);
int loop_lua_mark_task(lua_State *L);

/* wf.c: the mode and the clock (core.set_mode, core.set_virtual_now), the
 * Lua hooks the services call (core.set_hooks stores them under HOOKS_KEY)
 * and the error metatable (made by core.c's opener). */
#define HOOKS_KEY "wfengine.hooks"
#define ERROR_META "wfengine.error"
void services_set_mode(wf_mode mode);
void services_set_virtual_now(double now);
void services_open_error_meta(lua_State *L);

#endif
