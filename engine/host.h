/* host.h: creating the Lua state and calling into it (host.c). */
#ifndef WF_HOST_H
#define WF_HOST_H

#include <lua.h>

/* A Lua state with the standard libraries, the engine's Lua modules and
 * every binding available to require; NULL when out of memory. */
lua_State *host_new(void);

/* lua_pcall with the engine's message handler: a table error comes back
 * intact (with a traceback field added), anything else as a string with a
 * traceback. */
int host_pcall(lua_State *L, int nargs, int nresults);

#endif
