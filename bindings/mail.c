/* mail.c: module "wf.mail.core", the C primitives under wf.mail (mail.lua):
 * IMAP commands and SMTP submissions as curl transfers on the engine's loop
 * (curl_loop.c), and the sandbox address rewrite (mail.h).
 *
 *   core.perform(specs) -> results
 *     specs: array of {url, user, password, request (an IMAP command sent
 *            as is), upload (bytes: IMAP APPEND or SMTP DATA), mail_from,
 *            rcpt = {address, ...}, timeout, connect_timeout, insecure, tls}
 *     results: array of {output (untagged command output), replies (server
 *            reply lines)} or {error = err, replies = ...}
 *   core.sandbox_address(address, domain) -> rewritten address
 * The prelude builds messages, quotes mailbox names and refines errors from
 * the server's reply codes.
 */
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#include "curl_loop.h"
#include "mail.h"
#include "wf.h"

/* --- sandbox addresses (pure) -------------------------------------------- */

static int is_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

static char lower_ascii(char c) {
  return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
}

static void trim(const char **text, size_t *length) {
  while (*length && is_space((*text)[0])) {
    (*text)++;
    (*length)--;
  }
  while (*length && is_space((*text)[*length - 1]))
    (*length)--;
}

int mail_sandbox_domain_valid(const char *domain, size_t domain_length) {
  trim(&domain, &domain_length);
  if (domain_length == 0) return 0;
  for (size_t i = 0; i < domain_length; i++) {
    unsigned char c = (unsigned char)domain[i];
    if (c == '@' || c <= ' ' || c == 127) return 0;
  }
  return 1;
}

size_t mail_sandbox_address(const char *address, size_t address_length, const char *domain,
                            size_t domain_length, char *out) {
  const char *at = memrchr(address, '@', address_length);
  if (!at) {
    if (address_length) memcpy(out, address, address_length);
    return address_length;
  }
  trim(&address, &address_length);
  trim(&domain, &domain_length);
  at = memrchr(address, '@', address_length); /* still there: '@' is not space */
  size_t local_length = (size_t)(at - address);
  const char *part = at + 1;
  size_t part_length = address_length - local_length - 1;

  int same = part_length == domain_length;
  for (size_t i = 0; same && i < part_length; i++)
    same = lower_ascii(part[i]) == lower_ascii(domain[i]);
  if (same) {
    memcpy(out, address, address_length);
    return address_length;
  }
  size_t n = 0;
  memcpy(out, address, local_length);
  n += local_length;
  out[n++] = '_';
  for (size_t i = 0; i < part_length; i++)
    out[n++] = lower_ascii(part[i]);
  out[n++] = '@';
  for (size_t i = 0; i < domain_length; i++)
    out[n++] = lower_ascii(domain[i]);
  return n;
}

/* sandbox_address(address, domain): nil stays nil, as NULL does in SQL. */
static int mail_lua_sandbox_address(lua_State *L) {
  size_t address_length, domain_length;
  const char *domain = luaL_checklstring(L, 2, &domain_length);
  if (!mail_sandbox_domain_valid(domain, domain_length))
    return luaL_argerror(L, 2, "not a mail domain");
  if (lua_isnoneornil(L, 1)) {
    lua_pushnil(L);
    return 1;
  }
  const char *address = luaL_checklstring(L, 1, &address_length);
  luaL_Buffer out;
  char *space = luaL_buffinitsize(L, &out, address_length + domain_length + 2);
  size_t length = mail_sandbox_address(address, address_length, domain, domain_length, space);
  luaL_pushresultsize(&out, length);
  return 1;
}

/* --- transfers ------------------------------------------------------------- */

static long field_ms(lua_State *L, int table, const char *name) {
  lua_getfield(L, table, name);
  double seconds = lua_isnumber(L, -1) ? lua_tonumber(L, -1) : 0;
  lua_pop(L, 1);
  return curl_seconds_to_ms(seconds);
}

static void mail_configure(lua_State *L, curl_transfer *t, int spec) {
  CURL *easy = t->easy;
  size_t upload_length = 0;
  const char *url = curl_spec_string(L, t, spec, "url", NULL);
  const char *user = curl_spec_string(L, t, spec, "user", NULL);
  const char *password = curl_spec_string(L, t, spec, "password", NULL);
  const char *request = curl_spec_string(L, t, spec, "request", NULL);
  const char *upload = curl_spec_string(L, t, spec, "upload", &upload_length);
  const char *mail_from = curl_spec_string(L, t, spec, "mail_from", NULL);
  const char *tls = curl_spec_string(L, t, spec, "tls", NULL);
  if (!url) luaL_error(L, "mail request needs a url");

  curl_easy_setopt(easy, CURLOPT_URL, url);
  curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "imap,imaps,smtp,smtps");
  if (user) curl_easy_setopt(easy, CURLOPT_USERNAME, user);
  if (password) curl_easy_setopt(easy, CURLOPT_PASSWORD, password);
  if (request) curl_easy_setopt(easy, CURLOPT_CUSTOMREQUEST, request);
  if (mail_from) curl_easy_setopt(easy, CURLOPT_MAIL_FROM, mail_from);
  if (upload) {
    curl_transfer_upload(t, upload, upload_length);
    curl_easy_setopt(easy, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(easy, CURLOPT_INFILESIZE_LARGE, (curl_off_t)upload_length);
  }
  /* STARTTLS is required (no AUTH in clear) unless the prelude says "try"
   * (loopback, insecure = true) or "none"; imaps:// and smtps:// are TLS
   * from the start. */
  long use_ssl = CURLUSESSL_ALL;
  if (tls && strcmp(tls, "try") == 0) use_ssl = CURLUSESSL_TRY;
  if (tls && strcmp(tls, "none") == 0) use_ssl = CURLUSESSL_NONE;
  curl_easy_setopt(easy, CURLOPT_USE_SSL, use_ssl);

  lua_getfield(L, spec, "rcpt");
  if (lua_istable(L, -1)) {
    lua_Integer n = (lua_Integer)lua_rawlen(L, -1);
    for (lua_Integer i = 1; i <= n; i++) {
      lua_rawgeti(L, -1, i);
      const char *address = lua_tostring(L, -1);
      struct curl_slist *grown = address ? curl_slist_append(t->lists[1], address) : t->lists[1];
      lua_pop(L, 1);
      if (!grown) luaL_error(L, "out of memory for mail recipients"); /* __gc frees */
      t->lists[1] = grown;
    }
    if (t->lists[1]) curl_easy_setopt(easy, CURLOPT_MAIL_RCPT, t->lists[1]);
  }
  lua_pop(L, 1);

  curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, field_ms(L, spec, "timeout"));
  curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS, field_ms(L, spec, "connect_timeout"));
  lua_getfield(L, spec, "insecure");
  if (lua_toboolean(L, -1)) {
    curl_easy_setopt(easy, CURLOPT_SSL_VERIFYPEER, 0L);
    curl_easy_setopt(easy, CURLOPT_SSL_VERIFYHOST, 0L);
  }
  lua_pop(L, 1);
}

/* stack: specs, batch */
static int mail_perform_done(lua_State *L, int status, lua_KContext ctx) {
  curl_batch *batch = (curl_batch *)ctx;
  (void)status;
  lua_createtable(L, (int)batch->count, 0);
  for (size_t i = 0; i < batch->count; i++) {
    curl_transfer *t = &batch->transfers[i];
    lua_createtable(L, 0, 3);
    lua_pushlstring(L, t->head.data ? t->head.data : "", t->head.length);
    lua_setfield(L, -2, "replies");
    if (t->result != CURLE_OK) {
      lua_rawgeti(L, 1, (lua_Integer)i + 1);
      lua_getfield(L, -1, "what");
      curl_transfer_push_error(L, t, "mail", luaL_optstring(L, -1, "mail"));
      /* stack: results, result, spec, what, err */
      lua_setfield(L, -4, "error");
      lua_pop(L, 2);
    } else {
      lua_pushlstring(L, t->body.data ? t->body.data : "", t->body.length);
      lua_setfield(L, -2, "output");
    }
    lua_rawseti(L, -2, (lua_Integer)i + 1);
    curl_transfer_release(t);
  }
  return 1;
}

static int mail_perform(lua_State *L) {
  lua_settop(L, 1);
  return curl_batch_perform(L, "mail", 0, mail_configure, mail_perform_done);
}

static const luaL_Reg mail_funcs[] = {
    {"perform", mail_perform}, {"sandbox_address", mail_lua_sandbox_address}, {NULL, NULL}};

int luaopen_wf_mail_core(lua_State *L) {
  luaL_newlib(L, mail_funcs);
  curl_loop_add_helpers(L);
  return 1;
}
