/* test_base64.c: wf_push_base64 / wf_push_unbase64 (engine/base64.c): the
 * RFC 4648 test vectors both ways, every byte value round trip, and the
 * malformed texts unbase64 refuses. */
#include <lauxlib.h>
#include <lualib.h>
#include <string.h>

#include "tap.h"
#include "wf.h"

static const char *const VECTORS[][2] = {
    {"", ""},
    {"f", "Zg=="},
    {"fo", "Zm8="},
    {"foo", "Zm9v"},
    {"foob", "Zm9vYg=="},
    {"fooba", "Zm9vYmE="},
    {"foobar", "Zm9vYmFy"},
};

static void vectors(lua_State *L) {
  for (size_t i = 0; i < sizeof VECTORS / sizeof VECTORS[0]; i++) {
    const char *plain = VECTORS[i][0], *coded = VECTORS[i][1];
    wf_push_base64(L, plain, strlen(plain));
    is_str(lua_tostring(L, -1), coded, "base64 of an RFC 4648 vector");
    ok(wf_push_unbase64(L, coded, strlen(coded)) == 1, "unbase64 accepts '%s'", coded);
    is_str(lua_tostring(L, -1), plain, "... and gives the bytes back");
    lua_settop(L, 0);
  }
}

static void every_byte(lua_State *L) {
  char bytes[256];
  for (int i = 0; i < 256; i++)
    bytes[i] = (char)i;
  int same = 1;
  for (size_t n = 0; n <= sizeof bytes && same; n++) {
    wf_push_base64(L, bytes, n);
    size_t length;
    const char *coded = lua_tolstring(L, -1, &length);
    size_t back_length = 0;
    same = wf_push_unbase64(L, coded, length) == 1;
    const char *back = same ? lua_tolstring(L, -1, &back_length) : NULL;
    same = same && back_length == n && memcmp(back, bytes, n) == 0;
    lua_settop(L, 0);
  }
  ok(same, "every prefix of the 256 byte values round-trips");
}

static void malformed(lua_State *L) {
  static const char *const bad[] = {"Zg=", "Zg", "Z===", "=Zg=", "Zg==Zg==", "Zm9v!A==", "Zm9\n"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    int top = lua_gettop(L);
    ok(wf_push_unbase64(L, bad[i], strlen(bad[i])) == 0 && lua_gettop(L) == top,
       "unbase64 refuses malformed text %zu and pushes nothing", i);
  }
}

int main(void) {
  lua_State *L = luaL_newstate();
  vectors(L);
  every_byte(L);
  malformed(L);
  lua_close(L);
  return tap_done();
}
