/* host.h: creating the Lua state and calling into it (host.c). */
#ifndef WF_HOST_H
#define WF_HOST_H

#include <lua.h>

/* Opens in L the standard libraries and makes the engine's Lua modules and
 * every binding available to require. Raises when out of memory: call it
 * inside a protected call (as main.c's pmain does). */
void host_open(lua_State *L);

/* A new Lua state with host_open done; NULL when out of memory. */
lua_State *host_new(void);

/* lua_pcall with the engine's message handler: a table error comes back
 * intact (with a traceback field added), anything else as a string with a
 * traceback. */
int host_pcall(lua_State *L, int nargs, int nresults);

#endif
