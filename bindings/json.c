/* json.c: the wf.json module (encode, decode, null, array, object) on jansson.
 *
 * Type mapping and limits are documented in docs/modules.md#wfjson.
 * Memory: every jansson tree and dumped text is owned by a "wf.json.box"
 * userdata held in a to-be-closed slot (wf_push_scratch), so a Lua error
 * (ours, or a memory error) can never leak them; containers are linked into
 * their parent before they are filled, so the box's root reaches everything
 * built so far.
 */
#include "json.h"

#include <jansson.h>
#include <lauxlib.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wf.h"

#define JSON_BOX "wf.json.box"

/* Owns jansson memory on behalf of one encode or decode call. */
struct json_box {
  json_t *root;
  char *text;
};

static int json_box_close(lua_State *L) {
  struct json_box *box = luaL_checkudata(L, 1, JSON_BOX);
  json_decref(box->root);
  box->root = NULL;
  free(box->text);
  box->text = NULL;
  return 0;
}

/* Pushes an empty box in a to-be-closed slot. */
static struct json_box *json_box_push(lua_State *L) {
  return wf_push_scratch(L, sizeof(struct json_box), JSON_BOX, json_box_close);
}

void wf_json_push_marker(lua_State *L, int array) {
  const char *name = array ? WF_JSON_ARRAY_META : WF_JSON_OBJECT_META;
  if (luaL_getmetatable(L, name) != LUA_TNIL) return;
  lua_pop(L, 1);
  /* Registered only once complete: a memory error half-way leaves nothing. */
  lua_createtable(L, 0, 2);
  lua_pushstring(L, array ? "array" : "object");
  lua_setfield(L, -2, "__jsontype");
  lua_pushstring(L, name);
  lua_setfield(L, -2, "__name");
  lua_pushvalue(L, -1);
  lua_setfield(L, LUA_REGISTRYINDEX, name);
}

static int json_null_tostring(lua_State *L) {
  lua_pushliteral(L, "json.null");
  return 1;
}

void wf_json_push_null(lua_State *L) {
  if (lua_getfield(L, LUA_REGISTRYINDEX, WF_JSON_NULL) != LUA_TNIL) return;
  lua_pop(L, 1);
  /* A full userdata: unique, cannot be indexed or assigned to by mistake. */
  lua_newuserdatauv(L, 0, 0);
  lua_createtable(L, 0, 2);
  lua_pushcfunction(L, json_null_tostring);
  lua_setfield(L, -2, "__tostring");
  lua_pushliteral(L, WF_JSON_NULL);
  lua_setfield(L, -2, "__name");
  lua_setmetatable(L, -2);
  lua_pushvalue(L, -1);
  lua_setfield(L, LUA_REGISTRYINDEX, WF_JSON_NULL);
}

/* ---------------------------------------------------------------- encode */

struct path_part {
  const char *key; /* NULL: an integer index or key */
  size_t key_len;
  lua_Integer index;
};

struct encoder {
  lua_State *L;
  int null_index; /* stack index of json.null */
  int precision;  /* digits the floats need to round-trip, the most of any */
  int depth;
  struct path_part path[WF_JSON_MAX_DEPTH + 2];
  char error[512];
};

/* Where a converted value goes: appended to an array, set in an object
 * under key, or stored as the root. */
struct dest {
  json_t *parent;
  const char *key;
  size_t key_len;
  json_t **root;
};

static int is_identifier(const char *s, size_t n) {
  if (n == 0 || !(s[0] == '_' || (s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z')))
    return 0;
  for (size_t i = 1; i < n; i++)
    if (!(s[i] == '_' || (s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
          (s[i] >= '0' && s[i] <= '9')))
      return 0;
  return 1;
}

/* A deep path shows its first and last PATH_SHOWN parts. */
#define PATH_SHOWN 8

/* Formats "json: $.a[2]["x y"]: <message>" into e->error; returns -1. */
static int encode_fail(struct encoder *e, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static int encode_fail(struct encoder *e, const char *fmt, ...) {
  size_t size = sizeof e->error, n;
  va_list ap;
  n = (size_t)snprintf(e->error, size, "json: $");
  for (int i = 1; i <= e->depth && n < size; i++) {
    const struct path_part *p = &e->path[i];
    if (e->depth > 2 * PATH_SHOWN && i == PATH_SHOWN + 1) {
      n += (size_t)snprintf(e->error + n, size - n, "...");
      i = e->depth - PATH_SHOWN;
      continue;
    }
    if (p->key == NULL) {
      n += (size_t)snprintf(e->error + n, size - n, "[%lld]", (long long)p->index);
    } else if (is_identifier(p->key, p->key_len)) {
      n += (size_t)snprintf(e->error + n, size - n, ".%.*s", (int)p->key_len, p->key);
    } else {
      n += (size_t)snprintf(e->error + n, size - n, "[\"");
      for (size_t k = 0; k < p->key_len && k < 60 && n + 5 < size; k++) {
        unsigned char c = (unsigned char)p->key[k];
        if (c < 0x20 || c == '"' || c == '\\' || c >= 0x7f)
          n += (size_t)snprintf(e->error + n, size - n, "\\x%02x", c);
        else
          e->error[n++] = (char)c;
      }
      if (n < size) n += (size_t)snprintf(e->error + n, size - n, "\"]");
    }
  }
  if (n < size) n += (size_t)snprintf(e->error + n, size - n, ": ");
  if (n < size) {
    va_start(ap, fmt);
    vsnprintf(e->error + n, size - n, fmt, ap);
    va_end(ap);
  }
  return -1;
}

/* Links value into its destination; takes ownership of value. */
static int put(struct encoder *e, const struct dest *d, json_t *value) {
  if (value == NULL) return encode_fail(e, "out of memory");
  if (d->parent == NULL) {
    *d->root = value;
    return 0;
  }
  if (json_is_array(d->parent))
    return json_array_append_new(d->parent, value) == 0 ? 0 : encode_fail(e, "out of memory");
  if (json_object_setn_new(d->parent, d->key, d->key_len, value) == 0) return 0;
  /* jansson refuses a key only when it is not UTF-8 (or memory is short). */
  json_t *probe = json_stringn(d->key, d->key_len);
  if (probe == NULL) return encode_fail(e, "key is not valid UTF-8");
  json_decref(probe);
  return encode_fail(e, "out of memory");
}

static int encode_value(struct encoder *e, int idx, const struct dest *d);

/* Digits %.*g needs for x to read back exactly: 15, 16 or 17. */
static int float_digits(double x) {
  char text[40];
  for (int digits = 15; digits < 17; digits++) {
    snprintf(text, sizeof text, "%.*g", digits, x);
    if (strtod(text, NULL) == x) return digits;
  }
  return 17;
}

enum table_kind { KIND_UNMARKED, KIND_ARRAY, KIND_OBJECT };

static int table_kind(struct encoder *e, int idx, enum table_kind *kind) {
  lua_State *L = e->L;
  *kind = KIND_UNMARKED;
  if (luaL_getmetafield(L, idx, "__jsontype") == LUA_TNIL) return 0;
  const char *type = lua_tostring(L, -1);
  if (type && strcmp(type, "array") == 0)
    *kind = KIND_ARRAY;
  else if (type && strcmp(type, "object") == 0)
    *kind = KIND_OBJECT;
  lua_pop(L, 1);
  if (*kind == KIND_UNMARKED)
    return encode_fail(e, "__jsontype of a table must be \"array\" or \"object\"");
  return 0;
}

static int encode_array(struct encoder *e, int idx, json_t *array, lua_Integer length) {
  lua_State *L = e->L;
  for (lua_Integer i = 1; i <= length; i++) {
    struct dest d = {array, NULL, 0, NULL};
    e->path[e->depth].key = NULL;
    e->path[e->depth].index = i;
    lua_rawgeti(L, idx, i); /* stack: ..., element */
    int status = encode_value(e, lua_gettop(L), &d);
    lua_pop(L, 1);
    if (status != 0) return -1;
  }
  return 0;
}

static int encode_object(struct encoder *e, int idx, json_t *object) {
  lua_State *L = e->L;
  lua_pushnil(L);
  while (lua_next(L, idx)) { /* stack: ..., key, value */
    char number[32];
    struct dest d = {object, NULL, 0, NULL};
    struct path_part *part = &e->path[e->depth];
    part->key = NULL;
    part->index = 0;
    if (lua_type(L, -2) == LUA_TSTRING) {
      d.key = lua_tolstring(L, -2, &d.key_len);
      part->key = d.key;
      part->key_len = d.key_len;
    } else if (lua_isinteger(L, -2)) {
      part->index = lua_tointeger(L, -2);
      d.key_len = (size_t)snprintf(number, sizeof number, "%lld", (long long)part->index);
      d.key = number;
    } else {
      int type = lua_type(L, -2);
      e->depth--; /* the key's own path is its table's */
      encode_fail(e, "a %s key cannot be encoded (object keys are strings or integers)",
                  type == LUA_TNUMBER ? "non-integer number" : lua_typename(L, type));
      e->depth++;
      lua_pop(L, 2);
      return -1;
    }
    int status = encode_value(e, lua_gettop(L), &d);
    lua_pop(L, 1);
    if (status != 0) {
      lua_pop(L, 1);
      return -1;
    }
  }
  return 0;
}

/* Scans the keys of an array-marked or unmarked table: *length is the largest
 * positive integer key, *count the number of keys, *only_indices whether
 * every key is a positive integer. */
static void scan_keys(lua_State *L, int idx, lua_Integer *length, lua_Integer *count,
                      int *only_indices) {
  *length = 0;
  *count = 0;
  *only_indices = 1;
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    lua_pop(L, 1);
    (*count)++;
    if (lua_isinteger(L, -1) && lua_tointeger(L, -1) > 0) {
      if (lua_tointeger(L, -1) > *length) *length = lua_tointeger(L, -1);
    } else {
      *only_indices = 0;
    }
  }
}

static int encode_table(struct encoder *e, int idx, const struct dest *d) {
  lua_State *L = e->L;
  enum table_kind kind;
  lua_Integer length, count;
  int only_indices;
  json_t *container;

  if (e->depth >= WF_JSON_MAX_DEPTH)
    return encode_fail(e, "nested deeper than %d levels (or a cycle)", WF_JSON_MAX_DEPTH);
  if (!lua_checkstack(L, 8)) return encode_fail(e, "Lua stack overflow");
  /* A read-only view (ctx.config, ctx.params) names the table it shows. */
  int source_type = luaL_getmetafield(L, idx, "__jsonsource");
  if (source_type == LUA_TTABLE) {
    e->depth++;
    int status = encode_table(e, lua_gettop(L), d);
    e->depth--;
    lua_pop(L, 1);
    return status;
  }
  if (source_type != LUA_TNIL) lua_pop(L, 1);
  if (table_kind(e, idx, &kind) != 0) return -1;

  if (kind == KIND_OBJECT) {
    only_indices = 0;
    length = count = 0;
  } else {
    scan_keys(L, idx, &length, &count, &only_indices);
    if (kind == KIND_ARRAY && !only_indices)
      return encode_fail(e, "a table marked as array has a key that is not a positive integer");
    if (kind == KIND_ARRAY && length > 2 * count + 16)
      return encode_fail(e, "array is too sparse: %lld elements for the largest index %lld",
                         (long long)count, (long long)length);
    /* Unmarked: an array when the keys are exactly 1..n, n > 0; an empty
     * table is an object. */
    if (kind == KIND_UNMARKED)
      kind = (count > 0 && only_indices && length == count) ? KIND_ARRAY : KIND_OBJECT;
  }

  container = kind == KIND_ARRAY ? json_array() : json_object();
  if (put(e, d, container) != 0) return -1;
  /* container is borrowed from here on: its parent (or the box) owns it. */
  e->depth++;
  int status = kind == KIND_ARRAY ? encode_array(e, idx, container, length)
                                  : encode_object(e, idx, container);
  e->depth--;
  return status;
}

static int encode_value(struct encoder *e, int idx, const struct dest *d) {
  lua_State *L = e->L;
  switch (lua_type(L, idx)) {
  case LUA_TNIL:
    return put(e, d, json_null());
  case LUA_TBOOLEAN:
    return put(e, d, json_boolean(lua_toboolean(L, idx)));
  case LUA_TNUMBER:
    if (lua_isinteger(L, idx)) return put(e, d, json_integer(lua_tointeger(L, idx)));
    {
      double x = lua_tonumber(L, idx);
      if (isnan(x)) return encode_fail(e, "NaN cannot be encoded");
      if (isinf(x)) return encode_fail(e, "%s cannot be encoded", x > 0 ? "inf" : "-inf");
      int digits = float_digits(x);
      if (digits > e->precision) e->precision = digits;
      return put(e, d, json_real(x));
    }
  case LUA_TSTRING: {
    size_t length;
    const char *text = lua_tolstring(L, idx, &length);
    json_t *string = json_stringn(text, length);
    if (string == NULL) return encode_fail(e, "string is not valid UTF-8");
    return put(e, d, string);
  }
  case LUA_TTABLE:
    return encode_table(e, idx, d);
  default:
    if (lua_rawequal(L, idx, e->null_index)) return put(e, d, json_null());
    if (luaL_getmetafield(L, idx, "__name") == LUA_TSTRING) {
      encode_fail(e, "a %s cannot be encoded", lua_tostring(L, -1));
      lua_pop(L, 1);
      return -1;
    }
    return encode_fail(e, "a %s cannot be encoded", luaL_typename(L, idx));
  }
}

/* stack: value, box; leaves the text on top or raises. flags as wf_json_encode. */
static int encode_protected(lua_State *L) {
  int flags = (int)lua_tointeger(L, 2);
  struct json_box *box;
  struct encoder *e;
  struct dest d = {NULL, NULL, 0, NULL};
  size_t jflags;

  lua_settop(L, 1);
  box = json_box_push(L);
  d.root = &box->root;
  wf_json_push_null(L);
  /* The encoder is big (the path); keep it out of the C stack and in Lua's
   * memory so that it goes away on any error. stack: value, box, null, encoder */
  e = lua_newuserdatauv(L, sizeof *e, 0);
  e->L = L;
  e->null_index = 3;
  e->precision = 1;
  e->depth = 0;
  e->error[0] = '\0';
  lua_pushvalue(L, 1);
  if (encode_value(e, lua_gettop(L), &d) != 0) {
    lua_pushstring(L, e->error);
    return lua_error(L); /* the box frees what was built */
  }
  jflags = JSON_ENCODE_ANY | JSON_REAL_PRECISION(e->precision);
  jflags |= (flags & 0x1F) ? JSON_INDENT(flags & 0x1F) : JSON_COMPACT;
  if (flags & WF_JSON_SORT_KEYS) jflags |= JSON_SORT_KEYS;
  box->text = json_dumps(box->root, jflags);
  if (box->text == NULL) {
    lua_pushliteral(L, "json: out of memory");
    return lua_error(L);
  }
  lua_pushstring(L, box->text);
  return 1;
}

int wf_json_encode(lua_State *L, int idx, int flags) {
  idx = lua_absindex(L, idx);
  lua_pushcfunction(L, encode_protected);
  lua_pushvalue(L, idx);
  lua_pushinteger(L, flags);
  return lua_pcall(L, 2, 1, 0);
}

/* Raises the message on top of the stack ("json: <where>: <problem>") as a
 * structured error of kind "json", so that tostring(err) reads the same.
 * A malformed text or an unencodable value is never worth a retry. */
static int raise_json_error(lua_State *L) {
  const char *message = lua_tostring(L, -1);
  if (message == NULL) return lua_error(L); /* a memory error object */
  if (strncmp(message, "json: ", 6) == 0) message += 6;
  return wf_raise(L, "json", NULL, 0, "%s", message);
}

/* json.encode(value [, {indent = N, sort_keys = bool}]) -> string */
static int json_encode(lua_State *L) {
  int flags = 0;
  luaL_checkany(L, 1);
  if (!lua_isnoneornil(L, 2)) {
    luaL_checktype(L, 2, LUA_TTABLE);
    if (lua_getfield(L, 2, "indent") != LUA_TNIL) {
      lua_Integer indent = lua_tointeger(L, -1);
      luaL_argcheck(L, lua_isinteger(L, -1) && indent >= 0 && indent <= 31, 2,
                    "indent must be an integer from 0 to 31");
      flags |= WF_JSON_INDENT((int)indent);
    }
    if (lua_getfield(L, 2, "sort_keys") != LUA_TNIL && lua_toboolean(L, -1))
      flags |= WF_JSON_SORT_KEYS;
    lua_pop(L, 2);
  }
  if (wf_json_encode(L, 1, flags) != LUA_OK) return raise_json_error(L);
  return 1;
}

/* ---------------------------------------------------------------- decode */

/* stack indexes used while decoding */
struct decoder {
  int null_index, array_meta, object_meta;
};

/* Finds where the nesting of a valid JSON text first exceeds the limit. */
static void locate_depth(const char *text, size_t length, int *line, int *column) {
  int depth = 0, in_string = 0;
  *line = 1;
  *column = 0;
  for (size_t i = 0; i < length; i++) {
    unsigned char c = (unsigned char)text[i];
    if (c == '\n') {
      (*line)++;
      *column = 0;
      continue;
    }
    if ((c & 0xC0) != 0x80) (*column)++; /* columns count characters, as jansson's */
    if (in_string) {
      if (c == '\\')
        i++, (*column)++;
      else if (c == '"')
        in_string = 0;
    } else if (c == '"') {
      in_string = 1;
    } else if (c == '[' || c == '{') {
      if (++depth > WF_JSON_MAX_DEPTH) return;
    } else if (c == ']' || c == '}') {
      depth--;
    }
  }
}

/* Line and column (from 1, counting characters) of the byte at offset. */
static void locate_offset(const char *text, size_t offset, int *line, int *column) {
  *line = 1;
  *column = 1;
  for (size_t i = 0; i < offset; i++) {
    if (text[i] == '\n') {
      (*line)++;
      *column = 1;
    } else if (((unsigned char)text[i] & 0xC0) != 0x80) {
      (*column)++;
    }
  }
}

static int decode_value(lua_State *L, const struct decoder *d, json_t *value, int depth) {
  switch (json_typeof(value)) {
  case JSON_NULL:
    lua_pushvalue(L, d->null_index);
    return 0;
  case JSON_TRUE:
  case JSON_FALSE:
    lua_pushboolean(L, json_is_true(value));
    return 0;
  case JSON_INTEGER:
    lua_pushinteger(L, (lua_Integer)json_integer_value(value));
    return 0;
  case JSON_REAL:
    lua_pushnumber(L, json_real_value(value));
    return 0;
  case JSON_STRING:
    lua_pushlstring(L, json_string_value(value), json_string_length(value));
    return 0;
  default:
    break;
  }
  if (depth >= WF_JSON_MAX_DEPTH) return -1;
  luaL_checkstack(L, 4, "json: nested too deep");
  if (json_is_array(value)) {
    size_t n = json_array_size(value);
    lua_createtable(L, n < INT_MAX ? (int)n : 0, 0);
    lua_pushvalue(L, d->array_meta);
    lua_setmetatable(L, -2);
    for (size_t i = 0; i < n; i++) {
      if (decode_value(L, d, json_array_get(value, i), depth + 1) != 0) return -1;
      lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
  } else {
    const char *key;
    size_t key_len;
    json_t *member;
    size_t n = json_object_size(value);
    lua_createtable(L, 0, n < INT_MAX ? (int)n : 0);
    lua_pushvalue(L, d->object_meta);
    lua_setmetatable(L, -2);
    json_object_keylen_foreach(value, key, key_len, member) {
      lua_pushlstring(L, key, key_len);
      if (decode_value(L, d, member, depth + 1) != 0) return -1;
      lua_rawset(L, -3);
    }
  }
  return 0;
}

/* json.decode(text) -> value */
static int json_decode(lua_State *L) {
  size_t length;
  const char *text = luaL_checklstring(L, 1, &length);
  json_error_t error;
  struct json_box *box;
  struct decoder d = {3, 4, 5};

  lua_settop(L, 1);
  box = json_box_push(L);
  wf_json_push_null(L);
  wf_json_push_marker(L, 1);
  wf_json_push_marker(L, 0); /* stack: text, box, null, array meta, object meta */
  /* jansson takes a raw NUL for the end of the text ("123\0" would read as
   * 123); no valid JSON text holds one, so refuse it where it is. */
  const char *nul = memchr(text, '\0', length);
  if (nul != NULL) {
    int line, column;
    locate_offset(text, (size_t)(nul - text), &line, &column);
    return wf_raise(L, "json", NULL, 0,
                    "line %d, column %d: a NUL byte (write \\u0000 inside a string)", line, column);
  }
  box->root = json_loadb(text, length, JSON_DECODE_ANY | JSON_ALLOW_NUL, &error);
  /* wf_raise, not luaL_error: no Lua position in front; the box frees the tree */
  if (box->root == NULL) {
    return wf_raise(L, "json", NULL, 0, "line %d, column %d: %s", error.line, error.column,
                    error.text);
  }
  if (decode_value(L, &d, box->root, 0) != 0) {
    int line, column;
    locate_depth(text, length, &line, &column);
    return wf_raise(L, "json", NULL, 0, "line %d, column %d: nested deeper than %d levels", line,
                    column, WF_JSON_MAX_DEPTH);
  }
  return 1; /* the box is closed on return: the tree is freed */
}

/* ---------------------------------------------------------------- markers */

static int mark(lua_State *L, int array) {
  if (lua_isnoneornil(L, 1)) {
    lua_settop(L, 0);
    lua_newtable(L);
  } else {
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
  }
  if (lua_getmetatable(L, 1)) {
    wf_json_push_marker(L, 1);
    wf_json_push_marker(L, 0);
    if (!lua_rawequal(L, -3, -2) && !lua_rawequal(L, -3, -1))
      return luaL_argerror(L, 1, "table already has a metatable (set __jsontype in it instead)");
    lua_settop(L, 1);
  }
  wf_json_push_marker(L, array);
  lua_setmetatable(L, 1);
  return 1;
}

/* json.array([t]) -> t, marked to encode as a JSON array */
static int json_array_mark(lua_State *L) {
  return mark(L, 1);
}

/* json.object([t]) -> t, marked to encode as a JSON object */
static int json_object_mark(lua_State *L) {
  return mark(L, 0);
}

static const luaL_Reg json_funcs[] = {
    {"encode", json_encode},
    {"decode", json_decode},
    {"array", json_array_mark},
    {"object", json_object_mark},
    {NULL, NULL},
};

int luaopen_wf_json(lua_State *L) {
  luaL_newlib(L, json_funcs);
  wf_json_push_null(L);
  lua_setfield(L, -2, "null");
  lua_pushinteger(L, WF_JSON_MAX_DEPTH);
  lua_setfield(L, -2, "max_depth");
  return 1;
}
