/* http.c: module "wf.http.core", the C primitives under wf.http (http.lua).
 * Uses curl_loop.c for the transfers; the prelude does the sugar (shorthands,
 * query encoding, JSON, idempotency keys, modes, raising on status).
 *
 *   core.perform(specs, limit) -> results
 *     specs: array of {method, url, headers = {"Name: value", ...}, body,
 *            timeout, connect_timeout (seconds), user, password, bearer,
 *            follow, max_redirects, insecure, max_body, user_agent}
 *     results: array in the same order of {status, headers (raw header
 *            block of the last response), body, time, url} or {error = err}
 *   Runs every transfer concurrently (at most limit at a time, 0: no limit)
 *   and returns when all are done; the step waits on the engine's loop.
 */
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#include "curl_loop.h"
#include "wf.h"

static double field_number(lua_State *L, int table, const char *name, double fallback) {
  lua_getfield(L, table, name);
  double value = fallback;
  if (lua_type(L, -1) == LUA_TNUMBER)
    value = lua_tonumber(L, -1);
  else if (!lua_isnil(L, -1))
    luaL_error(L, "http request field '%s' must be a number", name);
  lua_pop(L, 1);
  return value;
}

static int field_boolean(lua_State *L, int table, const char *name, int fallback) {
  lua_getfield(L, table, name);
  int value = lua_isnil(L, -1) ? fallback : lua_toboolean(L, -1);
  lua_pop(L, 1);
  return value;
}

/* Sets the easy handle of t from the spec at index spec; the batch keeps the
 * spec, and so the body string that curl borrows, alive (curl_batch_perform). */
static void http_configure(lua_State *L, curl_transfer *t, int spec) {
  CURL *easy = t->easy;
  size_t body_length = 0;
  const char *method = curl_spec_string(L, t, spec, "method", NULL);
  const char *url = curl_spec_string(L, t, spec, "url", NULL);
  const char *body = curl_spec_string(L, t, spec, "body", &body_length);
  const char *user = curl_spec_string(L, t, spec, "user", NULL);
  const char *password = curl_spec_string(L, t, spec, "password", NULL);
  const char *bearer = curl_spec_string(L, t, spec, "bearer", NULL);
  const char *agent = curl_spec_string(L, t, spec, "user_agent", NULL);
  if (!method || !url) luaL_error(L, "http request needs a method and a url");

  curl_easy_setopt(easy, CURLOPT_URL, url);
  curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(easy, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(easy, CURLOPT_ACCEPT_ENCODING, "");
  curl_easy_setopt(easy, CURLOPT_USERAGENT, agent ? agent : "wfengine");
  t->reset_head_on_status = 1;

  if (strcmp(method, "GET") == 0 && !body) {
    curl_easy_setopt(easy, CURLOPT_HTTPGET, 1L);
  } else if (strcmp(method, "HEAD") == 0) {
    curl_easy_setopt(easy, CURLOPT_NOBODY, 1L);
  } else {
    /* POSTFIELDS borrows the string; an empty body is sent as length 0. */
    curl_easy_setopt(easy, CURLOPT_POSTFIELDS, body ? body : "");
    curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_length);
    if (strcmp(method, "POST") != 0) curl_easy_setopt(easy, CURLOPT_CUSTOMREQUEST, method);
  }

  struct curl_slist *headers = NULL;
  lua_getfield(L, spec, "headers");
  if (lua_istable(L, -1)) {
    lua_Integer n = (lua_Integer)lua_rawlen(L, -1);
    for (lua_Integer i = 1; i <= n; i++) {
      lua_rawgeti(L, -1, i);
      size_t length = 0;
      const char *line = lua_tolstring(L, -1, &length);
      /* the prelude refuses these with the field's name; never send them */
      if (line && strcspn(line, "\r\n") != length) {
        curl_slist_free_all(headers);
        luaL_error(L, "http header %d contains a line break or NUL byte", (int)i);
      }
      struct curl_slist *grown = line ? curl_slist_append(headers, line) : headers;
      lua_pop(L, 1);
      if (!grown) {
        curl_slist_free_all(headers);
        luaL_error(L, "out of memory for http headers");
      }
      headers = grown;
    }
  }
  lua_pop(L, 1);
  /* No "Expect: 100-continue" round trip before a body. */
  struct curl_slist *grown = curl_slist_append(headers, "Expect:");
  if (!grown) {
    curl_slist_free_all(headers);
    luaL_error(L, "out of memory for http headers");
  }
  t->lists[0] = grown;
  curl_easy_setopt(easy, CURLOPT_HTTPHEADER, t->lists[0]);

  if (bearer) {
    curl_easy_setopt(easy, CURLOPT_HTTPAUTH, (long)CURLAUTH_BEARER);
    curl_easy_setopt(easy, CURLOPT_XOAUTH2_BEARER, bearer);
  } else if (user) {
    curl_easy_setopt(easy, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
    curl_easy_setopt(easy, CURLOPT_USERNAME, user);
    curl_easy_setopt(easy, CURLOPT_PASSWORD, password ? password : "");
  }

  curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS,
                   curl_seconds_to_ms(field_number(L, spec, "timeout", 0)));
  curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS,
                   curl_seconds_to_ms(field_number(L, spec, "connect_timeout", 0)));
  if (field_boolean(L, spec, "follow", 1)) {
    curl_easy_setopt(easy, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(easy, CURLOPT_MAXREDIRS, (long)field_number(L, spec, "max_redirects", 10));
  }
  if (field_boolean(L, spec, "insecure", 0)) {
    curl_easy_setopt(easy, CURLOPT_SSL_VERIFYPEER, 0L);
    curl_easy_setopt(easy, CURLOPT_SSL_VERIFYHOST, 0L);
  }
  double max_body = field_number(L, spec, "max_body", 0);
  if (max_body > 0) {
    t->max_body = max_body >= 9e15 ? (size_t)-1 : (size_t)max_body;
    /* refuses at once when the server announces a larger Content-Length */
    curl_easy_setopt(easy, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)t->max_body);
  }
}

/* stack: specs, limit, batch */
static int http_perform_done(lua_State *L, int status, lua_KContext ctx) {
  curl_batch *batch = (curl_batch *)ctx;
  (void)status;
  lua_createtable(L, (int)batch->count, 0);
  for (size_t i = 0; i < batch->count; i++) {
    curl_transfer *t = &batch->transfers[i];
    lua_createtable(L, 0, 6);
    lua_rawgeti(L, 1, (lua_Integer)i + 1);
    lua_getfield(L, -1, "method");
    lua_getfield(L, -2, "url");
    /* stack: results, result, spec, method, url */
    const char *context = lua_pushfstring(L, "%s %s", lua_tostring(L, -2), lua_tostring(L, -1));
    long code = 0;
    if (t->easy) curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &code);
    if (t->body_too_large || t->result == CURLE_FILESIZE_EXCEEDED) {
      lua_pushfstring(L, "%s: response body larger than max_body (%I bytes)", context,
                      (lua_Integer)t->max_body);
      wf_push_error(L, "http", "too_large", 0, lua_tostring(L, -1));
      lua_remove(L, -2);
      lua_pushinteger(L, code);
      lua_setfield(L, -2, "status");
      lua_setfield(L, -6, "error");
    } else if (t->result != CURLE_OK) {
      curl_transfer_push_error(L, t, "http", context);
      lua_setfield(L, -6, "error");
    } else {
      curl_off_t micros = 0;
      const char *effective = NULL;
      curl_easy_getinfo(t->easy, CURLINFO_TOTAL_TIME_T, &micros);
      curl_easy_getinfo(t->easy, CURLINFO_EFFECTIVE_URL, &effective);
      lua_pushinteger(L, code);
      lua_setfield(L, -6, "status");
      lua_pushlstring(L, t->head.data ? t->head.data : "", t->head.length);
      lua_setfield(L, -6, "headers");
      lua_pushlstring(L, t->body.data ? t->body.data : "", t->body.length);
      lua_setfield(L, -6, "body");
      lua_pushnumber(L, (double)micros / 1e6);
      lua_setfield(L, -6, "time");
      lua_pushstring(L, effective ? effective : "");
      lua_setfield(L, -6, "url");
    }
    lua_pop(L, 4); /* spec, method, url, context */
    lua_rawseti(L, -2, (lua_Integer)i + 1);
    curl_transfer_release(t);
  }
  return 1;
}

static int http_perform(lua_State *L) {
  lua_Integer limit = luaL_optinteger(L, 2, 0);
  lua_settop(L, 2);
  return curl_batch_perform(L, "http", limit > 0 ? (size_t)limit : 0, http_configure,
                            http_perform_done);
}

/* escape(text) -> text with every byte but ALPHA / DIGIT / "-._~" as %XX
 * (RFC 3986 unreserved), for query strings and path segments. */
static int http_escape(lua_State *L) {
  static const char hex[] = "0123456789ABCDEF";
  size_t length;
  const unsigned char *text = (const unsigned char *)luaL_checklstring(L, 1, &length);
  luaL_Buffer out;
  luaL_buffinit(L, &out);
  for (size_t i = 0; i < length; i++) {
    unsigned char c = text[i];
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
        c == '.' || c == '_' || c == '~') {
      luaL_addchar(&out, (char)c);
    } else {
      luaL_addchar(&out, '%');
      luaL_addchar(&out, hex[c >> 4]);
      luaL_addchar(&out, hex[c & 15]);
    }
  }
  luaL_pushresult(&out);
  return 1;
}

static const luaL_Reg http_funcs[] = {
    {"perform", http_perform}, {"escape", http_escape}, {NULL, NULL}};

int luaopen_wf_http_core(lua_State *L) {
  luaL_newlib(L, http_funcs);
  curl_loop_add_helpers(L);
  return 1;
}
