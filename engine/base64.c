/* base64.c: RFC 4648 base64 (with padding) for the journal's form of bytes
 * that are not UTF-8 and for the Basic credentials wf.http registers as a
 * secret; exposed to Lua as base64/unbase64 of wfengine.core and of the
 * bindings that need them. */
#include <lauxlib.h>
#include <string.h>

#include "wf.h"

static const char ALPHABET[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static int sextet(char c) {
  const char *at = c ? strchr(ALPHABET, c) : NULL;
  return at ? (int)(at - ALPHABET) : -1;
}

void wf_push_base64(lua_State *L, const char *data, size_t length) {
  const unsigned char *in = (const unsigned char *)data;
  luaL_Buffer b;
  char *out = luaL_buffinitsize(L, &b, (length + 2) / 3 * 4);
  size_t n = 0;
  for (size_t i = 0; i < length; i += 3) {
    size_t left = length - i;
    unsigned long v = (unsigned long)in[i] << 16;
    if (left > 1) v |= (unsigned long)in[i + 1] << 8;
    if (left > 2) v |= in[i + 2];
    out[n++] = ALPHABET[(v >> 18) & 63];
    out[n++] = ALPHABET[(v >> 12) & 63];
    out[n++] = left > 1 ? ALPHABET[(v >> 6) & 63] : '=';
    out[n++] = left > 2 ? ALPHABET[v & 63] : '=';
  }
  luaL_pushresultsize(&b, n);
}

/* Whether text is base64 as wf_push_base64 writes it: whole quads of the
 * alphabet, '=' only as the last one or two characters. */
static int well_formed(const char *text, size_t length) {
  if (length % 4 != 0) return 0;
  for (size_t i = 0; i < length; i++) {
    if (sextet(text[i]) >= 0) continue;
    if (text[i] != '=' || i + 2 < length) return 0;
    if (i + 2 == length && text[i + 1] != '=') return 0;
  }
  return 1;
}

int wf_push_unbase64(lua_State *L, const char *text, size_t length) {
  if (!well_formed(text, length)) return 0;
  luaL_Buffer b;
  char *out = luaL_buffinitsize(L, &b, length / 4 * 3);
  size_t n = 0;
  for (size_t i = 0; i < length; i += 4) {
    unsigned long v = 0;
    int pad = 0;
    for (int k = 0; k < 4; k++) {
      int s = sextet(text[i + (size_t)k]);
      if (s < 0)
        pad++;
      else
        v |= (unsigned long)s << (18 - 6 * k);
    }
    out[n++] = (char)((v >> 16) & 255);
    if (pad < 2) out[n++] = (char)((v >> 8) & 255);
    if (pad < 1) out[n++] = (char)(v & 255);
  }
  luaL_pushresultsize(&b, n);
  return 1;
}

int wf_lua_base64(lua_State *L) {
  size_t length;
  const char *data = luaL_checklstring(L, 1, &length);
  wf_push_base64(L, data, length);
  return 1;
}

int wf_lua_unbase64(lua_State *L) {
  size_t length;
  const char *text = luaL_checklstring(L, 1, &length);
  if (!wf_push_unbase64(L, text, length)) lua_pushnil(L);
  return 1;
}
