/* curl_loop.c: the one CURLM of the process, driven by the engine's libuv
 * loop (curl_multi_socket_action from uv_poll and uv_timer callbacks), and
 * batches of transfers that a step awaits. Uses libcurl, libuv and wf.h;
 * knows nothing of HTTP or mail (http.c and mail.c set the protocol options).
 *
 * Ownership: a batch is a Lua userdata; it owns its easy handles, buffers
 * and lists. An easy handle is removed from the multi before it is cleaned
 * up, whether the transfer finished, was cancelled by the engine or the
 * batch was collected. Curl callbacks never call Lua: they fill buffers, and
 * the last finished transfer wakes the waiting step with wf_wake.
 */
#include "curl_loop.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <lauxlib.h>
#include <uv.h>

#define BATCH_METATABLE "wf.curl.batch"

/* The process-wide driver, created on first use with the engine's loop. The
 * engine has one loop and one Lua state, so static storage is the owner. */
static struct {
  int initialized;
  uv_loop_t *loop;
  CURLM *multi;
  CURLSH *share;
  uv_timer_t timer;
  uv_idle_t kick; /* "act now" from curl: runs before the loop next blocks */
} driver;

typedef struct socket_watch {
  uv_poll_t poll;
  curl_socket_t fd;
  int events; /* what curl asked to watch */
} socket_watch;

static void driver_check_finished(void);

/* --- buffers ------------------------------------------------------------ */

static int buffer_append(curl_buffer *buffer, const char *data, size_t length) {
  if (buffer->length + length + 1 > buffer->capacity) {
    size_t capacity = buffer->capacity ? buffer->capacity : 1024;
    while (capacity < buffer->length + length + 1)
      capacity *= 2;
    char *grown = realloc(buffer->data, capacity);
    if (!grown) return -1;
    buffer->data = grown;
    buffer->capacity = capacity;
  }
  memcpy(buffer->data + buffer->length, data, length);
  buffer->length += length;
  buffer->data[buffer->length] = '\0';
  return 0;
}

static void buffer_free(curl_buffer *buffer) {
  free(buffer->data);
  buffer->data = NULL;
  buffer->length = buffer->capacity = 0;
}

/* --- curl callbacks: C only --------------------------------------------- */

static size_t on_body(char *data, size_t size, size_t count, void *userdata) {
  curl_transfer *t = userdata;
  size_t length = size * count;
  if (t->max_body && t->body.length + length > t->max_body) {
    t->body_too_large = 1;
    return 0; /* CURLE_WRITE_ERROR: curl stops and closes the connection */
  }
  return buffer_append(&t->body, data, length) == 0 ? length : 0;
}

static size_t on_header(char *data, size_t size, size_t count, void *userdata) {
  curl_transfer *t = userdata;
  size_t length = size * count;
  /* A redirect or a 100 Continue starts a new header block: keep the last. */
  if (t->reset_head_on_status && length >= 5 && memcmp(data, "HTTP/", 5) == 0) t->head.length = 0;
  return buffer_append(&t->head, data, length) == 0 ? length : 0;
}

static size_t on_read(char *data, size_t size, size_t count, void *userdata) {
  curl_transfer *t = userdata;
  size_t room = size * count, left = t->upload_length - t->upload_offset;
  size_t length = left < room ? left : room;
  if (length) memcpy(data, t->upload + t->upload_offset, length);
  t->upload_offset += length;
  return length;
}

static int on_seek(void *userdata, curl_off_t offset, int origin) {
  curl_transfer *t = userdata;
  /* curl rewinds an upload to resend it after a redirect or an auth challenge */
  if (origin != SEEK_SET || offset < 0 || (size_t)offset > t->upload_length)
    return CURL_SEEKFUNC_CANTSEEK;
  t->upload_offset = (size_t)offset;
  return CURL_SEEKFUNC_OK;
}

/* --- the driver: curl's socket and timer callbacks on libuv --------------- */

static void watch_closed(uv_handle_t *handle) {
  free(handle->data);
}

static void on_socket_ready(uv_poll_t *poll, int status, int events) {
  socket_watch *watch = poll->data;
  int flags = 0, running;
  if (status < 0) flags = CURL_CSELECT_ERR;
  if (events & UV_READABLE) flags |= CURL_CSELECT_IN;
  if (events & UV_WRITABLE) flags |= CURL_CSELECT_OUT;
  curl_multi_socket_action(driver.multi, watch->fd, flags, &running);
  /* On a socket error libuv stopped the handle. curl calls back only when
   * what it wants changes, so a socket it keeps would never be watched
   * again: watch it as before (curl's own timeouts still bound the wait). */
  if (status < 0 && !uv_is_closing((uv_handle_t *)poll) && watch->events)
    uv_poll_start(poll, watch->events, on_socket_ready);
  driver_check_finished();
}

static int on_curl_socket(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp) {
  socket_watch *watch = socketp;
  (void)easy;
  (void)userp;
  if (what == CURL_POLL_REMOVE) {
    if (watch) {
      uv_poll_stop(&watch->poll);
      uv_close((uv_handle_t *)&watch->poll, watch_closed);
      curl_multi_assign(driver.multi, fd, NULL);
    }
    return 0;
  }
  if (!watch) {
    watch = calloc(1, sizeof *watch);
    if (!watch) return -1;
    if (uv_poll_init_socket(driver.loop, &watch->poll, fd) != 0) {
      free(watch);
      return -1;
    }
    watch->fd = fd;
    watch->poll.data = watch;
    curl_multi_assign(driver.multi, fd, watch);
  }
  int events = 0;
  if (what & CURL_POLL_IN) events |= UV_READABLE;
  if (what & CURL_POLL_OUT) events |= UV_WRITABLE;
  watch->events = events;
  return uv_poll_start(&watch->poll, events, on_socket_ready) == 0 ? 0 : -1;
}

static void on_timer(uv_timer_t *timer) {
  int running;
  (void)timer;
  curl_multi_socket_action(driver.multi, CURL_SOCKET_TIMEOUT, 0, &running);
  driver_check_finished();
}

static void on_kick(uv_idle_t *idle) {
  uv_idle_stop(idle);
  on_timer(&driver.timer);
}

static int on_curl_timer(CURLM *multi, long timeout_ms, void *userp) {
  (void)multi;
  (void)userp;
  /* Never drive curl from inside its own callback: let the loop fire it. A
   * zero timeout goes to an idle handle, which also keeps the loop from
   * blocking in its poll first (a 0 ms uv_timer may only run after it). */
  uv_timer_stop(&driver.timer);
  uv_idle_stop(&driver.kick);
  if (timeout_ms < 0) return 0;
  if (timeout_ms == 0) return uv_idle_start(&driver.kick, on_kick) == 0 ? 0 : -1;
  return uv_timer_start(&driver.timer, on_timer, (uint64_t)timeout_ms, 0) == 0 ? 0 : -1;
}

static void driver_start(lua_State *L) {
  if (driver.initialized) return;
  if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
    luaL_error(L, "libcurl could not be initialised");
  driver.loop = wf_loop(L);
  driver.multi = curl_multi_init();
  driver.share = curl_share_init();
  if (!driver.multi || !driver.share || uv_timer_init(driver.loop, &driver.timer) != 0 ||
      uv_idle_init(driver.loop, &driver.kick) != 0) {
    if (driver.multi) curl_multi_cleanup(driver.multi);
    if (driver.share) curl_share_cleanup(driver.share);
    driver.multi = NULL;
    driver.share = NULL;
    luaL_error(L, "libcurl could not be initialised");
  }
  curl_multi_setopt(driver.multi, CURLMOPT_SOCKETFUNCTION, on_curl_socket);
  curl_multi_setopt(driver.multi, CURLMOPT_TIMERFUNCTION, on_curl_timer);
  /* DNS answers and TLS sessions survive from one transfer to the next; the
   * connection cache is the multi's own. */
  curl_share_setopt(driver.share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
  curl_share_setopt(driver.share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
  driver.initialized = 1;
}

/* --- batches -------------------------------------------------------------- */

void curl_transfer_release(curl_transfer *t) {
  if (t->easy) {
    if (t->state == CURL_TRANSFER_RUNNING) curl_multi_remove_handle(driver.multi, t->easy);
    curl_easy_cleanup(t->easy);
    t->easy = NULL;
  }
  for (size_t i = 0; i < sizeof t->lists / sizeof t->lists[0]; i++) {
    curl_slist_free_all(t->lists[i]);
    t->lists[i] = NULL;
  }
  buffer_free(&t->body);
  buffer_free(&t->head);
  t->state = CURL_TRANSFER_RELEASED;
}

static void batch_finish(curl_transfer *t, CURLcode result);

static void batch_start_next(curl_batch *batch) {
  while (batch->started < batch->count &&
         (batch->limit == 0 || batch->started - batch->finished < batch->limit)) {
    curl_transfer *t = &batch->transfers[batch->started++];
    if (t->state != CURL_TRANSFER_IDLE) continue;
    CURLMcode code = curl_multi_add_handle(driver.multi, t->easy);
    if (code == CURLM_OK) {
      t->state = CURL_TRANSFER_RUNNING;
    } else {
      snprintf(t->error, sizeof t->error, "%s", curl_multi_strerror(code));
      batch_finish(t, CURLE_FAILED_INIT);
    }
  }
}

static void batch_finish(curl_transfer *t, CURLcode result) {
  curl_batch *batch = t->batch;
  t->result = result;
  t->state = CURL_TRANSFER_DONE;
  batch->finished++;
  if (batch->finished == batch->count) {
    if (batch->awaiting) {
      batch->awaiting = 0;
      wf_wake(&batch->wait);
    }
  } else {
    batch_start_next(batch);
  }
}

static void driver_check_finished(void) {
  CURLMsg *message;
  int left;
  while ((message = curl_multi_info_read(driver.multi, &left))) {
    if (message->msg != CURLMSG_DONE) continue;
    CURL *easy = message->easy_handle;
    CURLcode result = message->data.result; /* read before the message dies */
    curl_transfer *t = NULL;
    curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&t);
    curl_multi_remove_handle(driver.multi, easy);
    if (t) batch_finish(t, result); /* out of the multi: DONE */
  }
}

static void batch_release(curl_batch *batch) {
  for (size_t i = 0; i < batch->count; i++)
    curl_transfer_release(&batch->transfers[i]);
  batch->awaiting = 0;
}

/* The engine abandons the step (timeout, Ctrl-C, failed sibling): stop every
 * transfer now, which closes its connection, and never wake. */
static void batch_cancel(wf_wait *wait) {
  batch_release((curl_batch *)wait);
}

static int batch_gc(lua_State *L) {
  batch_release(luaL_checkudata(L, 1, BATCH_METATABLE));
  return 0;
}

/* Pushes a new batch userdata of count transfers, each with a fresh easy
 * handle carrying the common options (private pointer, buffers, no signals,
 * shared caches), and the table at specs as its user value. Raises on
 * allocation failure; __gc releases whatever was acquired. */
static curl_batch *batch_push(lua_State *L, size_t count, int specs) {
  driver_start(L);
  if (count > (((size_t)-1) - sizeof(curl_batch)) / sizeof(curl_transfer))
    luaL_error(L, "too many transfers");
  size_t size = sizeof(curl_batch) + count * sizeof(curl_transfer);
  curl_batch *batch = wf_push_collected(L, size, 1, BATCH_METATABLE, batch_gc);
  batch->count = count;
  lua_pushvalue(L, specs);
  lua_setiuservalue(L, -2, 1);
  /* stack: batch. From here __gc frees whatever is acquired, so raising is safe. */
  for (size_t i = 0; i < count; i++) {
    curl_transfer *t = &batch->transfers[i];
    t->batch = batch;
    t->state = CURL_TRANSFER_RELEASED;
    t->easy = curl_easy_init();
    if (!t->easy) luaL_error(L, "libcurl could not create a transfer");
    t->state = CURL_TRANSFER_IDLE;
    curl_easy_setopt(t->easy, CURLOPT_PRIVATE, (char *)t);
    curl_easy_setopt(t->easy, CURLOPT_ERRORBUFFER, t->error);
    curl_easy_setopt(t->easy, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(t->easy, CURLOPT_WRITEDATA, t);
    curl_easy_setopt(t->easy, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(t->easy, CURLOPT_HEADERDATA, t);
    curl_easy_setopt(t->easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(t->easy, CURLOPT_SHARE, driver.share);
  }
  return batch;
}

void curl_transfer_upload(curl_transfer *t, const char *text, size_t length) {
  t->upload = text;
  t->upload_length = length;
  t->upload_offset = 0;
  curl_easy_setopt(t->easy, CURLOPT_READFUNCTION, on_read);
  curl_easy_setopt(t->easy, CURLOPT_READDATA, t);
  curl_easy_setopt(t->easy, CURLOPT_SEEKFUNCTION, on_seek);
  curl_easy_setopt(t->easy, CURLOPT_SEEKDATA, t);
}

int curl_batch_perform(lua_State *L, const char *what, size_t limit,
                       curl_configure_function configure, lua_KFunction k) {
  luaL_checktype(L, 1, LUA_TTABLE);
  size_t count = lua_rawlen(L, 1);
  if (count == 0) {
    lua_newtable(L);
    return 1;
  }
  curl_batch *batch = batch_push(L, count, 1);
  batch->what = what;
  for (size_t i = 0; i < count; i++) {
    if (lua_rawgeti(L, 1, (lua_Integer)i + 1) != LUA_TTABLE)
      luaL_error(L, "%s request %d is not a table", what, (int)i + 1);
    configure(L, &batch->transfers[i], lua_gettop(L));
    lua_pop(L, 1);
  }
  /* stack: specs, ..., batch */
  batch->limit = limit;
  batch->wait.cancel = batch_cancel;
  batch_start_next(batch);
  lua_KContext ctx = (lua_KContext)batch;
  /* Only a refused curl_multi_add_handle finishes a transfer synchronously. */
  if (batch->finished == batch->count) return k(L, LUA_OK, ctx);
  batch->awaiting = 1;
  return wf_await(L, &batch->wait, ctx, k);
}

const char *curl_spec_string(lua_State *L, const curl_transfer *t, int spec, const char *name,
                             size_t *length) {
  lua_getfield(L, spec, name);
  const char *value = NULL;
  if (lua_type(L, -1) == LUA_TSTRING)
    value = lua_tolstring(L, -1, length);
  else if (!lua_isnil(L, -1))
    luaL_error(L, "%s request field '%s' must be a string", t->batch->what, name);
  lua_pop(L, 1); /* the spec table still references the string */
  return value;
}

long curl_seconds_to_ms(double seconds) {
  if (!(seconds > 0)) return 0;
  if (seconds > 1e7) return 10000000000L;
  return (long)ceil(seconds * 1000.0);
}

int curl_code_retryable(CURLcode code) {
  switch (code) {
  case CURLE_COULDNT_RESOLVE_PROXY:
  case CURLE_COULDNT_RESOLVE_HOST:
  case CURLE_COULDNT_CONNECT:
  case CURLE_HTTP2:
  case CURLE_PARTIAL_FILE:
  case CURLE_OPERATION_TIMEDOUT:
  case CURLE_SSL_CONNECT_ERROR:
  case CURLE_GOT_NOTHING:
  case CURLE_SEND_ERROR:
  case CURLE_RECV_ERROR:
  case CURLE_SEND_FAIL_REWIND:
  case CURLE_AGAIN:
  case CURLE_HTTP2_STREAM:
  case CURLE_HTTP3:
  case CURLE_QUIC_CONNECT_ERROR:
  case CURLE_PROXY:
    return 1;
  default:
    return 0;
  }
}

const char *curl_code_name(CURLcode code) {
  switch (code) {
  case CURLE_UNSUPPORTED_PROTOCOL:
    return "unsupported_protocol";
  case CURLE_URL_MALFORMAT:
    return "url_malformat";
  case CURLE_COULDNT_RESOLVE_PROXY:
    return "couldnt_resolve_proxy";
  case CURLE_COULDNT_RESOLVE_HOST:
    return "couldnt_resolve_host";
  case CURLE_COULDNT_CONNECT:
    return "couldnt_connect";
  case CURLE_WEIRD_SERVER_REPLY:
    return "weird_server_reply";
  case CURLE_PARTIAL_FILE:
    return "partial_file";
  case CURLE_QUOTE_ERROR:
    return "quote_error";
  case CURLE_WRITE_ERROR:
    return "write_error";
  case CURLE_UPLOAD_FAILED:
    return "upload_failed";
  case CURLE_OPERATION_TIMEDOUT:
    return "timeout";
  case CURLE_SSL_CONNECT_ERROR:
    return "ssl_connect_error";
  case CURLE_TOO_MANY_REDIRECTS:
    return "too_many_redirects";
  case CURLE_GOT_NOTHING:
    return "got_nothing";
  case CURLE_SEND_ERROR:
    return "send_error";
  case CURLE_RECV_ERROR:
    return "recv_error";
  case CURLE_PEER_FAILED_VERIFICATION:
    return "peer_failed_verification";
  case CURLE_FILESIZE_EXCEEDED:
    return "filesize_exceeded";
  case CURLE_LOGIN_DENIED:
    return "login_denied";
  case CURLE_REMOTE_FILE_NOT_FOUND:
    return "remote_file_not_found";
  case CURLE_ABORTED_BY_CALLBACK:
    return "aborted";
  default: {
    static char name[32];
    snprintf(name, sizeof name, "curl_%d", (int)code);
    return name;
  }
  }
}

void curl_transfer_push_error(lua_State *L, const curl_transfer *t, const char *kind,
                              const char *context) {
  const char *reason = t->error[0] ? t->error : curl_easy_strerror(t->result);
  int timed_out = t->result == CURLE_OPERATION_TIMEDOUT;
  lua_pushfstring(L, "%s: %s", context, reason);
  wf_push_error(L, timed_out ? "timeout" : kind, curl_code_name(t->result),
                curl_code_retryable(t->result), lua_tostring(L, -1));
  lua_remove(L, -2);
  lua_pushinteger(L, (lua_Integer)t->result);
  lua_setfield(L, -2, "curl_code");
}

/* --- helpers both preludes use (registered into wf.http.core and
 * wf.mail.core) besides wf_add_helpers': HTTP dates and the wall clock. --- */

/* getdate(text) -> seconds since the epoch, or nil: curl's own parser of
 * HTTP dates (RFC 7231 and the obsolete forms). */
static int helper_getdate(lua_State *L) {
  time_t when = curl_getdate(luaL_checkstring(L, 1), NULL);
  if (when == -1) return 0;
  lua_pushinteger(L, (lua_Integer)when);
  return 1;
}

static int helper_time(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)time(NULL));
  return 1;
}

static const luaL_Reg helper_funcs[] = {
    {"getdate", helper_getdate}, {"time", helper_time}, {NULL, NULL}};

void curl_loop_add_helpers(lua_State *L) {
  wf_add_helpers(L);
  luaL_setfuncs(L, helper_funcs, 0);
}
