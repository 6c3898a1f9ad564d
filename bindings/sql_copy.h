/* sql_copy.h: the parts of module "wf.sql.copy" kept in separate files:
 * sql_copy.c (the streaming pool, and luaopen) calls sql_pipeline.c's
 * registration. */
#ifndef WF_SQL_COPY_H
#define WF_SQL_COPY_H

#include <lua.h>

/* Adds spawn, private_dir and write_private to the module table on top of
 * the stack, and registers the pipeline's metatable. */
void sql_pipeline_register(lua_State *L);

#endif
