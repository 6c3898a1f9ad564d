/* httpd.c: wf.httpd, an HTTP/1.1 and HTTP/2 server on the engine's libuv
 * loop, for `wfengine serve` (engine/lua/console.lua). The protocol is
 * libh2o's (Debian libh2o-dev, built on libuv); this file only queues the
 * requests h2o parsed and hands them to Lua one at a time.
 *
 *   server = httpd.listen(host, port [, cert_file, key_file])  -- or nil, message
 *   req, info = server:accept()     -- waits; info: method, path, headers, body
 *   req:respond(status, headers, body)
 *   req:start(status, headers); req:send(text) -> ok; req:finish()  -- streamed
 *   req:closed()                    -- the client went away
 *
 * h2o owns each request; the C side keeps one exchange per request in the
 * request's memory pool, released (dispose) when h2o is done with it. The
 * Lua handle points to the exchange and is cut off from it on dispose, so a
 * handle outliving its request answers closed() and sends nothing. No Lua
 * is called from an h2o or libuv callback: accept() waits with wf_await. */
#include <stdlib.h>
#include <string.h>

#include <h2o.h>
#include <h2o/http2.h>
#include <lauxlib.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <openssl/ssl.h>

#include "wf.h"

#define SERVER_META "wf.httpd.server"
#define REQUEST_META "wf.httpd.request"
#define MAX_BODY (1024 * 1024)
#define MAX_PENDING (8 * 1024 * 1024)

typedef struct server server;
typedef struct request_handle request_handle;

typedef struct exchange {
  h2o_generator_t generator; /* first: h2o hands it back to proceed and stop */
  h2o_req_t *req;            /* NULL once h2o has disposed of the request */
  server *srv;
  struct exchange *next; /* in the server's queue until accepted */
  int queued, streaming, inflight, finishing, done, stopped;
  request_handle *owner; /* the Lua handle, NULL when it was collected */
  char *pending, *sending;
  size_t pending_length, pending_capacity;
} exchange;

struct request_handle {
  exchange *ex;
};

struct server {
  wf_wait wait; /* first */
  int waiting;
  uv_tcp_t *listener;
  h2o_globalconf_t config;
  h2o_context_t context;
  h2o_accept_ctx_t accept;
  exchange *head, *tail;
};

typedef struct {
  h2o_handler_t super;
  server *srv;
} server_handler;

typedef struct {
  server *srv; /* the userdata holds a pointer: the server lives as long as the process */
} server_box;

/* ---- the queue of requests Lua has not taken yet ---- */

static void unqueue(exchange *ex) {
  server *srv = ex->srv;
  exchange **at = &srv->head;
  while (*at && *at != ex)
    at = &(*at)->next;
  if (*at) *at = ex->next;
  srv->tail = NULL;
  for (exchange *e = srv->head; e; e = e->next)
    srv->tail = e;
  ex->queued = 0;
  ex->next = NULL;
}

static exchange *pop(server *srv) {
  exchange *ex = srv->head;
  if (ex) unqueue(ex);
  return ex;
}

static void exchange_dispose(void *p) {
  exchange *ex = p;
  if (ex->queued) unqueue(ex);
  if (ex->owner) ex->owner->ex = NULL;
  ex->req = NULL;
  free(ex->pending);
  free(ex->sending);
}

/* ---- streaming: at most one h2o_send in flight, the rest waits in pending ---- */

static void flush(exchange *ex) {
  if (ex->inflight || !ex->req || ex->done) return;
  if (ex->pending_length > 0) {
    h2o_iovec_t buf = h2o_iovec_init(ex->pending, ex->pending_length);
    free(ex->sending);
    ex->sending = ex->pending;
    ex->pending = NULL;
    ex->pending_length = ex->pending_capacity = 0;
    ex->inflight = 1;
    if (ex->finishing) ex->done = 1;
    h2o_send(ex->req, &buf, 1, ex->done ? H2O_SEND_STATE_FINAL : H2O_SEND_STATE_IN_PROGRESS);
  } else if (ex->finishing) {
    ex->done = 1;
    h2o_send(ex->req, NULL, 0, H2O_SEND_STATE_FINAL);
  }
}

static void on_proceed(h2o_generator_t *generator, h2o_req_t *req) {
  exchange *ex = (exchange *)generator;
  (void)req;
  ex->inflight = 0;
  free(ex->sending);
  ex->sending = NULL;
  flush(ex);
}

static void on_stop(h2o_generator_t *generator, h2o_req_t *req) {
  exchange *ex = (exchange *)generator;
  (void)req;
  ex->done = ex->stopped = 1; /* the client is gone; dispose follows */
}

/* ---- accepting connections and requests ---- */

static int on_req(h2o_handler_t *self, h2o_req_t *req) {
  server *srv = ((server_handler *)self)->srv;
  exchange *ex = h2o_mem_alloc_shared(&req->pool, sizeof *ex, exchange_dispose);
  memset(ex, 0, sizeof *ex);
  ex->generator.proceed = on_proceed;
  ex->generator.stop = on_stop;
  ex->req = req;
  ex->srv = srv;
  ex->queued = 1;
  if (srv->tail)
    srv->tail->next = ex;
  else
    srv->head = ex;
  srv->tail = ex;
  if (srv->waiting) {
    srv->waiting = 0;
    wf_wake(&srv->wait);
  }
  return 0;
}

static void on_connection(uv_stream_t *listener, int status) {
  server *srv = listener->data;
  if (status != 0) return;
  uv_tcp_t *conn = malloc(sizeof *conn);
  if (!conn) return;
  uv_tcp_init(listener->loop, conn);
  if (uv_accept(listener, (uv_stream_t *)conn) != 0) {
    uv_close((uv_handle_t *)conn, (uv_close_cb)free);
    return;
  }
  h2o_socket_t *sock = h2o_uv_socket_create((uv_stream_t *)conn, (uv_close_cb)free);
  h2o_accept(&srv->accept, sock);
}

/* ---- Lua: the request handle ---- */

static request_handle *check_request(lua_State *L) {
  return luaL_checkudata(L, 1, REQUEST_META);
}

/* Adds the headers of the table at index idx (name -> value) to the response. */
static void add_headers(lua_State *L, int idx, h2o_req_t *req) {
  if (lua_type(L, idx) != LUA_TTABLE) return;
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    size_t nlen, vlen;
    const char *name = lua_tolstring(L, -2, &nlen);
    const char *value = lua_tolstring(L, -1, &vlen);
    if (name && value) {
      h2o_iovec_t n = h2o_strdup(&req->pool, name, nlen);
      h2o_iovec_t v = h2o_strdup(&req->pool, value, vlen);
      h2o_add_header_by_str(&req->pool, &req->res.headers, n.base, n.len, 1, NULL, v.base, v.len);
    }
    lua_pop(L, 1);
  }
}

static int usable(exchange *ex) {
  return ex && ex->req && !ex->done && !ex->finishing;
}

static int request_respond(lua_State *L) {
  request_handle *h = check_request(L);
  int status = (int)luaL_checkinteger(L, 2);
  size_t length;
  const char *body = luaL_optlstring(L, 4, "", &length);
  exchange *ex = h->ex;
  if (!usable(ex) || ex->streaming) {
    lua_pushboolean(L, 0);
    return 1;
  }
  ex->req->res.status = status;
  ex->req->res.reason = status < 400 ? "OK" : "Error";
  add_headers(L, 3, ex->req);
  ex->done = 1;
  h2o_send_inline(ex->req, body, length);
  lua_pushboolean(L, 1);
  return 1;
}

static int request_start(lua_State *L) {
  request_handle *h = check_request(L);
  int status = (int)luaL_checkinteger(L, 2);
  exchange *ex = h->ex;
  if (!usable(ex) || ex->streaming) {
    lua_pushboolean(L, 0);
    return 1;
  }
  ex->req->res.status = status;
  ex->req->res.reason = "OK";
  add_headers(L, 3, ex->req);
  ex->streaming = 1;
  h2o_start_response(ex->req, &ex->generator);
  lua_pushboolean(L, 1);
  return 1;
}

static int append_pending(exchange *ex, const char *text, size_t length) {
  if (ex->pending_length + length > MAX_PENDING) return -1;
  if (ex->pending_length + length > ex->pending_capacity) {
    size_t capacity = (ex->pending_length + length) * 2;
    char *grown = realloc(ex->pending, capacity);
    if (!grown) return -1;
    ex->pending = grown;
    ex->pending_capacity = capacity;
  }
  memcpy(ex->pending + ex->pending_length, text, length);
  ex->pending_length += length;
  return 0;
}

/* req:send(text) -> true, or false when the client is gone or too slow
 * (more than MAX_PENDING bytes waiting: the stream is ended). */
static int request_send(lua_State *L) {
  request_handle *h = check_request(L);
  size_t length;
  const char *text = luaL_checklstring(L, 2, &length);
  exchange *ex = h->ex;
  if (!usable(ex) || !ex->streaming) {
    lua_pushboolean(L, 0);
    return 1;
  }
  if (append_pending(ex, text, length) < 0) {
    ex->finishing = 1;
    flush(ex);
    lua_pushboolean(L, 0);
    return 1;
  }
  flush(ex);
  lua_pushboolean(L, 1);
  return 1;
}

static void finish_exchange(exchange *ex) {
  if (!ex || !ex->req || ex->done) return;
  if (ex->streaming) {
    ex->finishing = 1;
    flush(ex);
  } else {
    ex->req->res.status = 500;
    ex->req->res.reason = "Internal Server Error";
    ex->done = 1;
    h2o_send_inline(ex->req, "no answer\n", 10);
  }
}

static int request_finish(lua_State *L) {
  finish_exchange(check_request(L)->ex);
  return 0;
}

static int request_closed(lua_State *L) {
  exchange *ex = check_request(L)->ex;
  lua_pushboolean(L, !ex || !ex->req || ex->stopped);
  return 1;
}

static int request_gc(lua_State *L) {
  request_handle *h = check_request(L);
  if (h->ex) {
    finish_exchange(h->ex);
    if (h->ex) h->ex->owner = NULL;
    h->ex = NULL;
  }
  return 0;
}

/* Pushes the request handle and the info table of ex. */
static int push_request(lua_State *L, exchange *ex) {
  request_handle *h = lua_newuserdatauv(L, sizeof *h, 0);
  h->ex = ex;
  ex->owner = h;
  luaL_setmetatable(L, REQUEST_META);
  h2o_req_t *req = ex->req;
  lua_createtable(L, 0, 5);
  lua_pushlstring(L, req->method.base, req->method.len);
  lua_setfield(L, -2, "method");
  lua_pushlstring(L, req->path.base, req->path.len);
  lua_setfield(L, -2, "path");
  lua_pushlstring(L, req->authority.base ? req->authority.base : "", req->authority.len);
  lua_setfield(L, -2, "authority"); /* Host (HTTP/1) or :authority (HTTP/2) */
  lua_pushlstring(L, req->entity.base ? req->entity.base : "",
                  req->entity.base ? req->entity.len : 0);
  lua_setfield(L, -2, "body");
  lua_createtable(L, 0, (int)req->headers.size);
  for (size_t i = 0; i < req->headers.size; i++) {
    h2o_header_t *hd = req->headers.entries + i;
    lua_pushlstring(L, hd->name->base, hd->name->len);
    lua_pushlstring(L, hd->value.base, hd->value.len);
    lua_rawset(L, -3);
  }
  lua_setfield(L, -2, "headers");
  return 2;
}

/* ---- Lua: the server ---- */

static server *check_server(lua_State *L) {
  return ((server_box *)luaL_checkudata(L, 1, SERVER_META))->srv;
}

static void accept_cancel(wf_wait *wait) {
  ((server *)wait)->waiting = 0;
}

static int accept_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  exchange *ex = pop((server *)ctx);
  if (!ex) return luaL_error(L, "httpd: woken with no request");
  return push_request(L, ex);
}

static int server_accept(lua_State *L) {
  server *srv = check_server(L);
  exchange *ex = pop(srv);
  if (ex) return push_request(L, ex);
  srv->waiting = 1;
  srv->wait.cancel = accept_cancel;
  return wf_await(L, &srv->wait, (lua_KContext)srv, accept_k);
}

static int server_gc(lua_State *L) {
  server *srv = ((server_box *)luaL_checkudata(L, 1, SERVER_META))->srv;
  if (srv && srv->listener && !uv_is_closing((uv_handle_t *)srv->listener))
    uv_close((uv_handle_t *)srv->listener, (uv_close_cb)free);
  return 0;
}

static SSL_CTX *tls_context(const char *cert, const char *key, char *err, size_t size) {
  SSL_CTX *ssl = SSL_CTX_new(TLS_server_method());
  if (!ssl) {
    snprintf(err, size, "cannot create a TLS context");
    return NULL;
  }
  SSL_CTX_set_min_proto_version(ssl, TLS1_2_VERSION);
  if (SSL_CTX_use_certificate_chain_file(ssl, cert) != 1) {
    snprintf(err, size, "--tls-cert %s: not a readable PEM certificate", cert);
  } else if (SSL_CTX_use_PrivateKey_file(ssl, key, SSL_FILETYPE_PEM) != 1) {
    snprintf(err, size, "--tls-key %s: not a readable PEM key", key);
  } else if (SSL_CTX_check_private_key(ssl) != 1) {
    snprintf(err, size, "--tls-key %s does not match the certificate %s", key, cert);
  } else {
    h2o_ssl_register_alpn_protocols(ssl, h2o_http2_alpn_protocols);
    return ssl;
  }
  SSL_CTX_free(ssl);
  return NULL;
}

static int bind_listener(server *srv, uv_loop_t *loop, const char *host, int port, char *err,
                         size_t size) {
  struct sockaddr_storage addr;
  int rc = uv_ip4_addr(host, port, (struct sockaddr_in *)&addr);
  if (rc != 0) rc = uv_ip6_addr(host, port, (struct sockaddr_in6 *)&addr);
  if (rc != 0) {
    snprintf(err, size, "--listen %s: not an IP address", host);
    return -1;
  }
  srv->listener = malloc(sizeof *srv->listener);
  if (!srv->listener) return -1;
  uv_tcp_init(loop, srv->listener);
  srv->listener->data = srv;
  rc = uv_tcp_bind(srv->listener, (struct sockaddr *)&addr, 0);
  if (rc == 0) rc = uv_listen((uv_stream_t *)srv->listener, 128, on_connection);
  if (rc != 0) {
    snprintf(err, size, "--listen %s:%d: %s", host, port, uv_strerror(rc));
    uv_close((uv_handle_t *)srv->listener, (uv_close_cb)free);
    srv->listener = NULL;
    return -1;
  }
  return 0;
}

static void configure(server *srv, uv_loop_t *loop) {
  h2o_config_init(&srv->config);
  srv->config.max_request_entity_size = MAX_BODY;
  h2o_hostconf_t *host =
      h2o_config_register_host(&srv->config, h2o_iovec_init(H2O_STRLIT("default")), 65535);
  h2o_pathconf_t *path = h2o_config_register_path(host, "/", 0);
  server_handler *handler = (server_handler *)h2o_create_handler(path, sizeof *handler);
  handler->super.on_req = on_req;
  handler->srv = srv;
  h2o_context_init(&srv->context, loop, &srv->config);
  srv->accept.ctx = &srv->context;
  srv->accept.hosts = srv->config.hosts;
}

/* httpd.listen(host, port [, cert, key]) -> server, or nil and a message */
static int httpd_listen(lua_State *L) {
  const char *host = luaL_checkstring(L, 1);
  int port = (int)luaL_checkinteger(L, 2);
  const char *cert = luaL_optstring(L, 3, NULL), *key = luaL_optstring(L, 4, NULL);
  char err[512] = "out of memory";
  SSL_CTX *ssl = NULL;
  if (cert && key && !(ssl = tls_context(cert, key, err, sizeof err))) goto failed;
  server_box *box = lua_newuserdatauv(L, sizeof *box, 0);
  box->srv = calloc(1, sizeof *box->srv);
  if (!box->srv) goto failed;
  luaL_setmetatable(L, SERVER_META);
  uv_loop_t *loop = wf_loop(L);
  if (bind_listener(box->srv, loop, host, port, err, sizeof err) < 0) goto failed;
  configure(box->srv, loop);
  box->srv->accept.ssl_ctx = ssl;
  return 1;
failed:
  if (ssl) SSL_CTX_free(ssl);
  lua_pushnil(L);
  lua_pushstring(L, err);
  return 2;
}

/* httpd.sha256_base64(text): for the hashes of a Content-Security-Policy. */
static int httpd_sha256(lua_State *L) {
  size_t length;
  const char *text = luaL_checklstring(L, 1, &length);
  unsigned char digest[32], encoded[48];
  SHA256((const unsigned char *)text, length, digest);
  int n = EVP_EncodeBlock(encoded, digest, sizeof digest);
  lua_pushlstring(L, (const char *)encoded, (size_t)n);
  return 1;
}

static void new_meta(lua_State *L, const char *name, const luaL_Reg *methods, lua_CFunction gc) {
  luaL_newmetatable(L, name);
  lua_newtable(L);
  luaL_setfuncs(L, methods, 0);
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, gc);
  lua_setfield(L, -2, "__gc");
  lua_pop(L, 1);
}

int luaopen_wf_httpd(lua_State *L) {
  static const luaL_Reg server_methods[] = {{"accept", server_accept}, {NULL, NULL}};
  static const luaL_Reg request_methods[] = {
      {"respond", request_respond}, {"start", request_start},   {"send", request_send},
      {"finish", request_finish},   {"closed", request_closed}, {NULL, NULL}};
  static const luaL_Reg functions[] = {
      {"listen", httpd_listen}, {"sha256_base64", httpd_sha256}, {NULL, NULL}};
  new_meta(L, SERVER_META, server_methods, server_gc);
  new_meta(L, REQUEST_META, request_methods, request_gc);
  luaL_newlib(L, functions);
  return 1;
}
