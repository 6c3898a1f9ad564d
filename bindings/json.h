/* json.h: what wf.json shares with C callers and with wf.yaml.
 *
 * Markers. A table's JSON kind is the `__jsontype` field of its metatable:
 * "array" or "object". json.array()/json.object(), json.decode and wf.yaml
 * give tables the two shared metatables below (registry names); any other
 * metatable may carry `__jsontype` too.
 */
#ifndef WF_JSON_H
#define WF_JSON_H

#include <lua.h>

/* Registry names of the shared marker metatables and of the null sentinel. */
#define WF_JSON_ARRAY_META "wf.json.array"
#define WF_JSON_OBJECT_META "wf.json.object"
#define WF_JSON_NULL "wf.json.null"

/* Nesting limit of json.decode and json.encode (deeper, or a cycle: error). */
#define WF_JSON_MAX_DEPTH 200

/* The module (registered as "wf.json" in package.preload). */
int luaopen_wf_json(lua_State *L);

/* Flags for wf_json_encode. */
#define WF_JSON_INDENT(n) ((n)&0x1F) /* pretty-print with n spaces (0: compact) */
#define WF_JSON_SORT_KEYS 0x100      /* object keys in byte order */

/* Encodes the value at idx. Returns LUA_OK and pushes the JSON text, or
 * another status and pushes the error message ("json: $.a.b: NaN cannot be
 * encoded"). Never raises: it runs in protected mode. */
int wf_json_encode(lua_State *L, int idx, int flags);

/* Pushes the shared marker metatable (array != 0: arrays), creating it on
 * first use. */
void wf_json_push_marker(lua_State *L, int array);

/* Pushes json.null, creating it on first use. */
void wf_json_push_null(lua_State *L);

#endif
