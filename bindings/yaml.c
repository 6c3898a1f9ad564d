/* yaml.c: the wf.yaml module (load, load_file) on libyaml's event parser.
 *
 * One document becomes Lua values: plain scalars resolved with the YAML 1.2
 * core schema, quoted and block scalars as strings, sequences and mappings as
 * tables marked with wf.json's array/object metatables (json.h), anchors and
 * aliases shared by reference under a node budget, `<<` merge keys, and
 * optional `${VAR}` interpolation (engine/interp.h). docs/modules.md#wfyaml
 * is the user's description.
 *
 * Memory: the parser, the current event, the file's text and scratch buffers
 * belong to a "wf.yaml.loader" userdata in a to-be-closed slot
 * (wf_push_scratch), so errors are raised directly (raise_error) and never
 * leak.
 */
#include <errno.h>
#include <lauxlib.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "interp.h"
#include "json.h"
#include "wf.h"

#define YAML_LOADER "wf.yaml.loader"
#define YAML_DEFAULT_MAX_DEPTH 200
#define YAML_DEFAULT_MAX_NODES 1000000
#define YAML_TAG_PREFIX "tag:yaml.org,2002:"

/* What C owns during one load. */
struct yaml_loader {
  yaml_parser_t parser;
  int parser_live;
  yaml_event_t event;
  int event_live;
  char *file_text;   /* load_file: the file's contents */
  char *scratch;     /* an interpolated scalar until it is pushed */
  char **vars;       /* {env = table}: name, value, name, value, ... */
  size_t vars_count; /* entries in vars (2 per variable) */
};

static int yaml_loader_close(lua_State *L) {
  struct yaml_loader *box = luaL_checkudata(L, 1, YAML_LOADER);
  if (box->event_live) yaml_event_delete(&box->event);
  box->event_live = 0;
  if (box->parser_live) yaml_parser_delete(&box->parser);
  box->parser_live = 0;
  free(box->file_text);
  box->file_text = NULL;
  free(box->scratch);
  box->scratch = NULL;
  for (size_t i = 0; i < box->vars_count; i++)
    free(box->vars[i]);
  free(box->vars);
  box->vars = NULL;
  box->vars_count = 0;
  return 0;
}

static struct yaml_loader *yaml_loader_push(lua_State *L) {
  return wf_push_scratch(L, sizeof(struct yaml_loader), YAML_LOADER, yaml_loader_close);
}

/* Raises a structured error of kind "yaml" (never retryable: the text will
 * not change) whose message is "<name>:<line>:<col>: <problem>"; unlike
 * luaL_error, no Lua position in front. */
static int raise_error(lua_State *L, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  lua_pushvfstring(L, fmt, ap);
  va_end(ap);
  wf_push_error(L, "yaml", NULL, 0, lua_tostring(L, -1));
  return lua_error(L);
}

/* The state of one load; stack indexes refer to the loading function's frame. */
struct load {
  lua_State *L;
  struct yaml_loader *box;
  const char *name; /* file path or opts.name, for messages; NULL: neither */
  const char *text;
  size_t length;
  int anchors;    /* stack index: anchor name -> value */
  int weights;    /* stack index: anchor name -> nodes it expands to */
  int null_index; /* stack index of the value for null (nil by default) */
  int array_meta; /* stack indexes of the marker metatables */
  int object_meta;
  int env; /* 0: no interpolation, 1: environment, 2: box->vars */
  int max_depth;
  lua_Integer nodes, max_nodes;
};

static int load_error(struct load *ld, yaml_mark_t mark, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int load_error(struct load *ld, yaml_mark_t mark, const char *fmt, ...) {
  char message[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(message, sizeof message, fmt, ap);
  va_end(ap);
  if (ld->name == NULL) /* yaml.load without opts.name */
    return raise_error(ld->L, "line %d, column %d: %s", (int)mark.line + 1, (int)mark.column + 1,
                       message);
  return raise_error(ld->L, "%s:%d:%d: %s", ld->name, (int)mark.line + 1, (int)mark.column + 1,
                     message);
}

/* Line and column (0-based, columns in characters, as libyaml's marks) of a
 * byte offset: for reader errors, which come with an offset only. */
static yaml_mark_t mark_at(const char *text, size_t length, size_t offset) {
  yaml_mark_t mark = {offset, 0, 0};
  for (size_t i = 0; i < offset && i < length; i++) {
    if (text[i] == '\n') {
      mark.line++;
      mark.column = 0;
    } else if (((unsigned char)text[i] & 0xC0) != 0x80) {
      mark.column++;
    }
  }
  return mark;
}

static int parser_error(struct load *ld) {
  yaml_parser_t *parser = &ld->box->parser;
  const char *problem = parser->problem ? parser->problem : "cannot parse";
  switch (parser->error) {
  case YAML_MEMORY_ERROR:
    return raise_error(ld->L, "%s: out of memory", ld->name ? ld->name : "text");
  case YAML_READER_ERROR:
    if (parser->problem_value != -1)
      return load_error(ld, mark_at(ld->text, ld->length, parser->problem_offset),
                        "%s (byte 0x%02x)", problem, parser->problem_value & 0xff);
    return load_error(ld, mark_at(ld->text, ld->length, parser->problem_offset), "%s", problem);
  default:
    if (parser->context)
      return load_error(ld, parser->problem_mark, "%s (%s at line %d, column %d)", problem,
                        parser->context, (int)parser->context_mark.line + 1,
                        (int)parser->context_mark.column + 1);
    return load_error(ld, parser->problem_mark, "%s", problem);
  }
}

static yaml_event_t *next_event(struct load *ld) {
  struct yaml_loader *box = ld->box;
  if (box->event_live) yaml_event_delete(&box->event);
  box->event_live = 0;
  if (!yaml_parser_parse(&box->parser, &box->event)) parser_error(ld);
  box->event_live = 1;
  return &box->event;
}

/* ------------------------------------------------------------- scalars */

enum scalar_kind { SCALAR_NULL, SCALAR_BOOL, SCALAR_INT, SCALAR_FLOAT, SCALAR_STRING };

static int is_one_of(const char *text, const char *const *words) {
  for (; *words; words++)
    if (strcmp(text, *words) == 0) return 1;
  return 0;
}

static int all_digits(const char *s, const char *end, int base) {
  if (s == end) return 0;
  for (; s < end; s++) {
    int c = (unsigned char)*s;
    int ok = base == 16 ? (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')
             : base == 8 ? c >= '0' && c <= '7'
                         : c >= '0' && c <= '9';
    if (!ok) return 0;
  }
  return 1;
}

/* Matches [-+]? ( \. [0-9]+ | [0-9]+ ( \. [0-9]* )? ) ( [eE] [-+]? [0-9]+ )? */
static int is_core_float(const char *s, const char *end) {
  const char *digits;
  if (s < end && (*s == '-' || *s == '+')) s++;
  digits = s;
  while (s < end && *s >= '0' && *s <= '9')
    s++;
  if (s < end && *s == '.') {
    const char *fraction = ++s;
    while (s < end && *s >= '0' && *s <= '9')
      s++;
    if (fraction == s && digits == fraction - 1) return 0; /* "." alone */
  } else if (digits == s) {
    return 0;
  }
  if (s < end && (*s == 'e' || *s == 'E')) {
    s++;
    if (s < end && (*s == '-' || *s == '+')) s++;
    if (!all_digits(s, end, 10)) return 0;
    return 1;
  }
  return s == end;
}

/* Parses digits in base into a 64-bit integer with sign; 0 on overflow. */
static int parse_integer(const char *s, const char *end, int base, int negative,
                         lua_Integer *value) {
  uint64_t magnitude = 0, limit = negative ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
  for (; s < end; s++) {
    int c = (unsigned char)*s;
    int digit = c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10;
    if (magnitude > (limit - (uint64_t)digit) / (uint64_t)base) return 0;
    magnitude = magnitude * (uint64_t)base + (uint64_t)digit;
  }
  /* Two's complement: -(2^63) is representable, its magnitude is not. */
  *value = negative ? (lua_Integer)(0 - magnitude) : (lua_Integer)magnitude;
  return 1;
}

/* Resolves a plain scalar with the core schema and pushes its value (for
 * SCALAR_NULL: the null value). Returns the kind; *overflow set when it looks
 * like an integer that does not fit 64 bits (nothing is pushed then). */
static enum scalar_kind resolve_plain(struct load *ld, const char *text, size_t length,
                                      int *overflow) {
  static const char *const nulls[] = {"~", "null", "Null", "NULL", NULL};
  static const char *const trues[] = {"true", "True", "TRUE", NULL};
  static const char *const falses[] = {"false", "False", "FALSE", NULL};
  static const char *const infs[] = {".inf", ".Inf", ".INF", NULL};
  static const char *const nans[] = {".nan", ".NaN", ".NAN", NULL};
  lua_State *L = ld->L;
  const char *end = text + length, *digits = text;
  lua_Integer integer;

  *overflow = 0;
  if (length == 0 || is_one_of(text, nulls)) {
    lua_pushvalue(L, ld->null_index);
    return SCALAR_NULL;
  }
  if (is_one_of(text, trues) || is_one_of(text, falses)) {
    lua_pushboolean(L, text[0] == 't' || text[0] == 'T');
    return SCALAR_BOOL;
  }
  if (length > 2 && text[0] == '0' && (text[1] == 'x' || text[1] == 'o')) {
    int base = text[1] == 'x' ? 16 : 8;
    if (all_digits(text + 2, end, base)) {
      if (!parse_integer(text + 2, end, base, 0, &integer)) {
        *overflow = 1;
        return SCALAR_INT;
      }
      lua_pushinteger(L, integer);
      return SCALAR_INT;
    }
  }
  if (*digits == '-' || *digits == '+') digits++;
  if (all_digits(digits, end, 10)) {
    if (!parse_integer(digits, end, 10, text[0] == '-', &integer)) {
      *overflow = 1;
      return SCALAR_INT;
    }
    lua_pushinteger(L, integer);
    return SCALAR_INT;
  }
  if (strlen(text) == length) { /* no NUL inside: safe for strtod */
    if (is_core_float(text, end)) {
      lua_pushnumber(L, strtod(text, NULL));
      return SCALAR_FLOAT;
    }
    if (is_one_of(digits, infs) && (digits == text || length == 5)) {
      lua_pushnumber(L, text[0] == '-' ? -HUGE_VAL : HUGE_VAL);
      return SCALAR_FLOAT;
    }
    if (is_one_of(text, nans)) {
      lua_pushnumber(L, NAN);
      return SCALAR_FLOAT;
    }
  }
  lua_pushlstring(L, text, length);
  return SCALAR_STRING;
}

static const char *lookup_vars(const char *name, void *data) {
  struct yaml_loader *box = data;
  for (size_t i = 0; i + 1 < box->vars_count; i += 2)
    if (box->vars[i] && strcmp(box->vars[i], name) == 0) return box->vars[i + 1];
  return NULL;
}

/* Column (0-based) of a byte offset inside a one-line plain scalar. */
static yaml_mark_t mark_inside(const yaml_event_t *event, const char *text, size_t offset) {
  yaml_mark_t mark = event->start_mark;
  if (event->data.scalar.style != YAML_PLAIN_SCALAR_STYLE ||
      event->end_mark.line != event->start_mark.line)
    return mark;
  for (size_t i = 0; i < offset; i++)
    if (((unsigned char)text[i] & 0xC0) != 0x80) mark.column++;
  return mark;
}

/* Pushes the value of the current scalar event. */
static void load_scalar(struct load *ld, int is_key) {
  lua_State *L = ld->L;
  yaml_event_t *event = &ld->box->event;
  const char *text = (const char *)event->data.scalar.value;
  size_t length = event->data.scalar.length;
  const char *tag = (const char *)event->data.scalar.tag;
  int plain = event->data.scalar.style == YAML_PLAIN_SCALAR_STYLE && tag == NULL;
  int overflow;

  if (ld->env && !is_key && memchr(text, '$', length)) {
    struct interp_error err;
    size_t out_len;
    if (interp_expand(text, length, ld->env == 1 ? interp_lookup_env : lookup_vars, ld->box,
                      &ld->box->scratch, &out_len, &err) != 0)
      load_error(ld, mark_inside(event, text, err.offset), "%s", err.message);
    text = ld->box->scratch;
    length = out_len;
  }

  if (tag == NULL && !plain) {
    lua_pushlstring(L, text, length);
  } else if (tag == NULL || strcmp(tag, "!") != 0) {
    const char *want = tag && strncmp(tag, YAML_TAG_PREFIX, strlen(YAML_TAG_PREFIX)) == 0
                           ? tag + strlen(YAML_TAG_PREFIX)
                           : tag;
    if (want && strcmp(want, "str") == 0) {
      lua_pushlstring(L, text, length);
    } else {
      enum scalar_kind kind = resolve_plain(ld, text, length, &overflow);
      if (overflow)
        load_error(ld, event->start_mark,
                   "integer %.*s does not fit in 64 bits (quote it to keep it as a string)",
                   length > 60 ? 60 : (int)length, text);
      if (want) {
        int fits = (strcmp(want, "null") == 0 && kind == SCALAR_NULL) ||
                   (strcmp(want, "bool") == 0 && kind == SCALAR_BOOL) ||
                   (strcmp(want, "int") == 0 && kind == SCALAR_INT) ||
                   (strcmp(want, "float") == 0 && (kind == SCALAR_FLOAT || kind == SCALAR_INT));
        if (!fits && strcmp(want, "null") && strcmp(want, "bool") && strcmp(want, "int") &&
            strcmp(want, "float"))
          load_error(ld, event->start_mark, "unsupported tag %s", tag);
        if (!fits)
          load_error(ld, event->start_mark, "'%.*s' is not a valid !!%s",
                     length > 60 ? 60 : (int)length, text, want);
        if (kind == SCALAR_INT && strcmp(want, "float") == 0) {
          lua_pushnumber(L, (lua_Number)lua_tointeger(L, -1));
          lua_remove(L, -2);
        }
      }
    }
  } else { /* the non-specific tag "!": a string */
    lua_pushlstring(L, text, length);
  }
  free(ld->box->scratch);
  ld->box->scratch = NULL;
}

/* ------------------------------------------------------------- nodes */

static void count_nodes(struct load *ld, lua_Integer n, yaml_mark_t mark, const char *alias) {
  ld->nodes += n;
  if (ld->nodes <= ld->max_nodes) return;
  if (alias)
    load_error(ld, mark,
               "alias *%s makes the document larger than %lld nodes (too many aliases: "
               "\"billion laughs\"?)",
               alias, (long long)ld->max_nodes);
  load_error(ld, mark, "document larger than %lld nodes", (long long)ld->max_nodes);
}

static void load_node(struct load *ld, int depth, int is_key);

/* Copies the keys of the merge sources (stack index merges, in order) that the
 * mapping at index map does not have: explicit keys win (also those set to a
 * nil null, listed in the table at index nulls, or nil), then earlier sources. */
static void apply_merges(struct load *ld, int map, int merges, int nulls) {
  lua_State *L = ld->L;
  lua_Integer n = (lua_Integer)lua_rawlen(L, merges);
  for (lua_Integer i = 1; i <= n; i++) {
    lua_rawgeti(L, merges, i); /* stack: ..., source */
    lua_pushnil(L);
    while (lua_next(L, -2)) { /* stack: ..., source, key, value */
      lua_pushvalue(L, -2);
      int present = lua_rawget(L, map) != LUA_TNIL;
      if (!present && !lua_isnil(L, nulls)) {
        lua_pop(L, 1);
        lua_pushvalue(L, -2);
        present = lua_rawget(L, nulls) != LUA_TNIL;
      }
      if (!present) {
        lua_pop(L, 1);
        lua_pushvalue(L, -2);
        lua_insert(L, -2);
        lua_rawset(L, map);
      } else {
        lua_pop(L, 2);
      }
    }
    lua_pop(L, 1);
  }
}

/* Adds the value on top (a mapping, or a sequence of mappings) as a merge
 * source to the list at index merges (created on first use at that slot). */
static void add_merge(struct load *ld, int merges, yaml_mark_t mark) {
  lua_State *L = ld->L;
  int value = lua_gettop(L);
  if (lua_isnil(L, merges)) {
    lua_newtable(L);
    lua_replace(L, merges);
  }
  if (!lua_getmetatable(L, value)) lua_pushnil(L);
  if (lua_rawequal(L, -1, ld->object_meta)) {
    lua_pop(L, 1);
    lua_rawseti(L, merges, (lua_Integer)lua_rawlen(L, merges) + 1);
    return;
  }
  if (lua_rawequal(L, -1, ld->array_meta)) {
    lua_pop(L, 1);
    for (lua_Integer i = 1;; i++) {
      if (lua_rawgeti(L, value, i) == LUA_TNIL) break;
      if (!lua_getmetatable(L, -1) || !lua_rawequal(L, -1, ld->object_meta))
        load_error(ld, mark, "a merge key '<<' takes a mapping or a sequence of mappings");
      lua_pop(L, 1);
      lua_rawseti(L, merges, (lua_Integer)lua_rawlen(L, merges) + 1);
    }
    lua_settop(L, value - 1);
    return;
  }
  load_error(ld, mark, "a merge key '<<' takes a mapping or a sequence of mappings");
}

static void load_mapping(struct load *ld, int depth, int map) {
  lua_State *L = ld->L;
  int merges = map + 1; /* nil until a '<<' appears */
  int nulls = map + 2;  /* nil until a key's value is a nil null: its keys */
  lua_pushnil(L);
  lua_pushnil(L);
  for (;;) {
    yaml_event_t *event = next_event(ld);
    if (event->type == YAML_MAPPING_END_EVENT) break;
    yaml_mark_t key_mark = event->start_mark;
    int is_merge = event->type == YAML_SCALAR_EVENT &&
                   event->data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
                   event->data.scalar.tag == NULL && event->data.scalar.length == 2 &&
                   memcmp(event->data.scalar.value, "<<", 2) == 0;
    if (event->type == YAML_SEQUENCE_START_EVENT || event->type == YAML_MAPPING_START_EVENT)
      load_error(ld, key_mark, "a mapping key must be a scalar");
    load_node(ld, depth, 1); /* stack: ..., key */
    if (is_merge) {
      lua_pop(L, 1);
      next_event(ld);
      load_node(ld, depth, 0);
      add_merge(ld, merges, key_mark);
      continue;
    }
    if (lua_istable(L, -1)) load_error(ld, key_mark, "a mapping key must be a scalar");
    if (lua_isnil(L, -1) || lua_rawequal(L, -1, ld->null_index))
      load_error(ld, key_mark, "a mapping key cannot be null");
    if (lua_type(L, -1) == LUA_TNUMBER && isnan(lua_tonumber(L, -1)))
      load_error(ld, key_mark, "a mapping key cannot be NaN");
    lua_pushvalue(L, -1);
    int duplicate = lua_rawget(L, map) != LUA_TNIL;
    lua_pop(L, 1);
    if (!duplicate && !lua_isnil(L, nulls)) {
      lua_pushvalue(L, -1);
      duplicate = lua_rawget(L, nulls) != LUA_TNIL;
      lua_pop(L, 1);
    }
    if (duplicate) {
      const char *shown = luaL_tolstring(L, -1, NULL);
      load_error(ld, key_mark, "duplicate key '%.60s'", shown);
    }
    next_event(ld);
    load_node(ld, depth, 0); /* stack: ..., key, value */
    if (lua_isnil(L, -1)) {
      if (lua_isnil(L, nulls)) {
        lua_newtable(L);
        lua_replace(L, nulls);
      }
      lua_pushvalue(L, -2);
      lua_pushboolean(L, 1);
      lua_rawset(L, nulls);
    }
    lua_rawset(L, map);
  }
  if (!lua_isnil(L, merges)) apply_merges(ld, map, merges, nulls);
  lua_pop(L, 2);
}

static void load_sequence(struct load *ld, int depth, int seq) {
  lua_State *L = ld->L;
  for (lua_Integer i = 1;; i++) {
    yaml_event_t *event = next_event(ld);
    if (event->type == YAML_SEQUENCE_END_EVENT) break;
    load_node(ld, depth, 0);
    lua_rawseti(L, seq, i); /* a nil leaves a hole: the position is kept */
  }
}

static void check_collection_tag(struct load *ld, const yaml_char_t *tag, const char *want) {
  const char *t = (const char *)tag;
  if (t == NULL || strcmp(t, "!") == 0) return;
  if (strncmp(t, YAML_TAG_PREFIX, strlen(YAML_TAG_PREFIX)) == 0 &&
      strcmp(t + strlen(YAML_TAG_PREFIX), want) == 0)
    return;
  load_error(ld, ld->box->event.start_mark, "unsupported tag %s", t);
}

/* Pushes the value of the node whose first event is current. */
static void load_node(struct load *ld, int depth, int is_key) {
  lua_State *L = ld->L;
  yaml_event_t *event = &ld->box->event;
  yaml_mark_t mark = event->start_mark;
  const yaml_char_t *anchor = NULL;
  lua_Integer before = ld->nodes;
  int base;

  luaL_checkstack(L, 12, "yaml: nested too deep");
  base = lua_gettop(L) + 1;
  switch (event->type) {
  case YAML_ALIAS_EVENT: {
    const char *name = (const char *)event->data.alias.anchor;
    lua_pushstring(L, name);
    if (lua_rawget(L, ld->weights) == LUA_TNIL)
      load_error(ld, mark, "unknown anchor *%s (an alias must follow its anchor's node)", name);
    count_nodes(ld, lua_tointeger(L, -1), mark, name);
    lua_pop(L, 1);
    lua_pushstring(L, name);
    lua_rawget(L, ld->anchors);
    if (lua_isnil(L, -1)) {
      lua_pop(L, 1);
      lua_pushvalue(L, ld->null_index);
    }
    return;
  }
  case YAML_SCALAR_EVENT:
    anchor = event->data.scalar.anchor;
    if (anchor) lua_pushstring(L, (const char *)anchor);
    count_nodes(ld, 1, mark, NULL);
    load_scalar(ld, is_key);
    break;
  case YAML_SEQUENCE_START_EVENT:
  case YAML_MAPPING_START_EVENT: {
    int is_map = event->type == YAML_MAPPING_START_EVENT;
    if (depth >= ld->max_depth) load_error(ld, mark, "nested deeper than %d levels", ld->max_depth);
    check_collection_tag(ld,
                         is_map ? event->data.mapping_start.tag : event->data.sequence_start.tag,
                         is_map ? "map" : "seq");
    anchor = is_map ? event->data.mapping_start.anchor : event->data.sequence_start.anchor;
    if (anchor) lua_pushstring(L, (const char *)anchor);
    count_nodes(ld, 1, mark, NULL);
    lua_newtable(L);
    lua_pushvalue(L, is_map ? ld->object_meta : ld->array_meta);
    lua_setmetatable(L, -2);
    if (is_map)
      load_mapping(ld, depth + 1, lua_gettop(L));
    else
      load_sequence(ld, depth + 1, lua_gettop(L));
    break;
  }
  default:
    load_error(ld, mark, "unexpected YAML event %d", (int)event->type);
  }
  /* stack: [anchor name], value */
  if (lua_gettop(L) > base) {
    lua_pushvalue(L, base);
    lua_pushvalue(L, -2);
    lua_rawset(L, ld->anchors);
    lua_pushvalue(L, base);
    lua_pushinteger(L, ld->nodes - before);
    lua_rawset(L, ld->weights);
    lua_remove(L, base);
  }
}

/* ------------------------------------------------------------- loading */

static lua_Integer opt_integer(lua_State *L, int opts, const char *field, lua_Integer fallback,
                               lua_Integer least) {
  lua_Integer value = fallback;
  if (opts && lua_getfield(L, opts, field) != LUA_TNIL) {
    if (!lua_isinteger(L, -1) || lua_tointeger(L, -1) < least)
      luaL_error(L, "yaml: option %s must be an integer >= %d", field, (int)least);
    value = lua_tointeger(L, -1);
  }
  if (opts) lua_pop(L, 1);
  return value;
}

/* Copies {env = table} into C memory owned by the box, so that lookups during
 * interpolation call no Lua. */
static void copy_vars(lua_State *L, struct yaml_loader *box, int table) {
  size_t n = 0;
  lua_pushnil(L);
  while (lua_next(L, table)) {
    n++;
    lua_pop(L, 1);
  }
  box->vars = calloc(n * 2 + 1, sizeof *box->vars);
  if (box->vars == NULL) luaL_error(L, "yaml: out of memory");
  box->vars_count = n * 2; /* entries stay NULL until copied */
  n = 0;
  lua_pushnil(L);
  while (lua_next(L, table)) { /* stack: ..., key, value */
    if (lua_type(L, -2) != LUA_TSTRING || !(lua_type(L, -1) == LUA_TSTRING || lua_isnumber(L, -1)))
      luaL_error(L, "yaml: option env: names and values must be strings");
    lua_pushvalue(L, -1);
    const char *value = lua_tostring(L, -1); /* a copy: never converts the table's number */
    if ((box->vars[n] = strdup(lua_tostring(L, -3))) == NULL ||
        (box->vars[n + 1] = strdup(value)) == NULL)
      luaL_error(L, "yaml: out of memory");
    n += 2;
    lua_pop(L, 2);
  }
}

/* stack: 1 text-or-path, 2 opts; loads text (length bytes) named name. */
static int load_text(lua_State *L, struct yaml_loader *box, const char *text, size_t length,
                     const char *name) {
  struct load ld;
  int opts = lua_istable(L, 2) ? 2 : 0;
  yaml_event_t *event;

  memset(&ld, 0, sizeof ld);
  ld.L = L;
  ld.box = box;
  ld.name = name;
  ld.text = text;
  ld.length = length;
  ld.max_depth = (int)opt_integer(L, opts, "max_depth", YAML_DEFAULT_MAX_DEPTH, 1);
  if (ld.max_depth > 10000) ld.max_depth = 10000;
  ld.max_nodes = opt_integer(L, opts, "max_nodes", YAML_DEFAULT_MAX_NODES, 1);
  lua_newtable(L);
  ld.anchors = lua_gettop(L);
  lua_newtable(L);
  ld.weights = lua_gettop(L);
  if (opts)
    lua_getfield(L, opts, "null");
  else
    lua_pushnil(L);
  ld.null_index = lua_gettop(L);
  wf_json_push_marker(L, 1);
  ld.array_meta = lua_gettop(L);
  wf_json_push_marker(L, 0);
  ld.object_meta = lua_gettop(L);
  if (opts) {
    int type = lua_getfield(L, opts, "env");
    if (type == LUA_TTABLE) {
      copy_vars(L, box, lua_gettop(L));
      ld.env = 2;
    } else if (type == LUA_TBOOLEAN) {
      ld.env = lua_toboolean(L, -1);
    } else if (type != LUA_TNIL) {
      luaL_error(L, "yaml: option env must be true or a table of variables");
    }
    lua_pop(L, 1);
  }

  if (!yaml_parser_initialize(&box->parser)) return luaL_error(L, "yaml: out of memory");
  box->parser_live = 1;
  yaml_parser_set_input_string(&box->parser, (const unsigned char *)text, length);

  next_event(&ld); /* stream start */
  event = next_event(&ld);
  if (event->type == YAML_STREAM_END_EVENT) { /* no document (empty, comments): nil, not a null */
    lua_pushnil(L);
    return 1;
  }
  next_event(&ld);
  load_node(&ld, 0, 0); /* stack: ..., value */
  next_event(&ld);      /* document end */
  event = next_event(&ld);
  if (event->type != YAML_STREAM_END_EVENT)
    load_error(&ld, event->start_mark,
               "a second document: wf.yaml loads one document per text or file");
  return 1;
}

static const char *opt_name(lua_State *L, const char *fallback) {
  if (!lua_istable(L, 2)) return fallback;
  lua_getfield(L, 2, "name");
  const char *name = lua_isstring(L, -1) ? lua_tostring(L, -1) : fallback;
  lua_replace(L, 3); /* keep it referenced: slot 3 is reserved for the name */
  return name;
}

/* yaml.load(text [, opts]) -> value */
static int yaml_load(lua_State *L) {
  size_t length;
  const char *text = luaL_checklstring(L, 1, &length);
  if (!lua_isnoneornil(L, 2)) luaL_checktype(L, 2, LUA_TTABLE);
  lua_settop(L, 3);
  const char *name = opt_name(L, NULL);
  struct yaml_loader *box = yaml_loader_push(L); /* stack: text, opts, name, box */
  return load_text(L, box, text, length, name);
}

/* yaml.load_file(path [, opts]) -> value */
static int yaml_load_file(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  if (!lua_isnoneornil(L, 2)) luaL_checktype(L, 2, LUA_TTABLE);
  lua_settop(L, 3);
  const char *name = opt_name(L, path);
  struct yaml_loader *box = yaml_loader_push(L); /* stack: path, opts, name, box */
  size_t length = 0, capacity = 0;
  FILE *file = fopen(path, "rb");
  if (file == NULL) return raise_error(L, "%s: cannot open: %s", path, strerror(errno));
  for (;;) { /* no Lua call until the file is closed */
    if (length == capacity) {
      char *bigger =
          capacity < SIZE_MAX / 2 ? realloc(box->file_text, capacity ? capacity * 2 : 8192) : NULL;
      if (bigger == NULL) {
        fclose(file);
        return raise_error(L, "%s: out of memory", path);
      }
      box->file_text = bigger;
      capacity = capacity ? capacity * 2 : 8192;
    }
    size_t got = fread(box->file_text + length, 1, capacity - length, file);
    length += got;
    if (got == 0) break;
  }
  int failed = ferror(file);
  int saved_errno = errno;
  fclose(file);
  if (failed) return raise_error(L, "%s: cannot read: %s", path, strerror(saved_errno));
  return load_text(L, box, box->file_text, length, name);
}

static const luaL_Reg yaml_funcs[] = {
    {"load", yaml_load},
    {"load_file", yaml_load_file},
    {NULL, NULL},
};

int luaopen_wf_yaml(lua_State *L) {
  luaL_newlib(L, yaml_funcs);
  return 1;
}
