/* curl_loop.h: libcurl transfers driven by the engine's libuv loop, shared by
 * wf.http and wf.mail.
 *
 * One CURLM for the process (so one connection cache, DNS cache and TLS
 * session cache), driven with curl_multi_socket_action from uv_poll and
 * uv_timer handles on wf_loop(L). A binding fills a batch of transfers (one
 * CURL easy handle each), starts it and awaits it with wf_await; the batch
 * wakes the step once every transfer has finished. Curl callbacks only
 * buffer in C; the binding's continuation turns the buffers into Lua values.
 */
#ifndef WF_CURL_LOOP_H
#define WF_CURL_LOOP_H

#include <stddef.h>
#include <curl/curl.h>
#include <lua.h>

#include "wf.h"

typedef struct curl_buffer {
  char *data;
  size_t length, capacity;
} curl_buffer;

typedef enum {
  CURL_TRANSFER_IDLE = 0, /* not started yet (waiting for a concurrency slot) */
  CURL_TRANSFER_RUNNING,  /* inside the multi */
  CURL_TRANSFER_DONE,     /* finished; result and buffers are final */
  CURL_TRANSFER_RELEASED  /* cancelled or collected: easy handle gone */
} curl_transfer_state;

typedef struct curl_batch curl_batch;

typedef struct curl_transfer {
  CURL *easy; /* owned; NULL once released */
  curl_batch *batch;
  curl_transfer_state state;
  CURLcode result;
  char error[CURL_ERROR_SIZE];
  curl_buffer body;         /* response body (or IMAP command output) */
  curl_buffer head;         /* response header lines (or IMAP/SMTP server replies) */
  size_t max_body;          /* 0: no limit */
  int body_too_large;       /* the write callback refused more than max_body */
  int reset_head_on_status; /* HTTP: keep only the last response's headers */
  const char *upload;       /* borrowed: kept alive by the batch's user value */
  size_t upload_length, upload_offset;
  struct curl_slist *lists[2]; /* owned: request headers, mail recipients */
} curl_transfer;

struct curl_batch {
  wf_wait wait;     /* first: fixed address inside the userdata */
  const char *what; /* "http" or "mail", for messages; a static string */
  size_t count, started, finished, limit;
  int awaiting; /* wf_await was called: wake it when the last transfer ends */
  curl_transfer transfers[];
};

/* Sets the easy handle of t from the request table at stack index spec;
 * may raise (the batch's __gc frees what was acquired). */
typedef void (*curl_configure_function)(lua_State *L, curl_transfer *t, int spec);

/* The body of a binding's perform(specs, ...): specs, at stack index 1, is an
 * array of request tables. Pushes a batch (userdata "wf.curl.batch") of one
 * transfer per spec, each with a fresh easy handle carrying the common
 * options (private pointer, buffers, no signals, shared caches), and calls
 * configure for each; a spec that is not a table raises "<what> request N is
 * not a table". The batch's user value is specs, so the strings curl borrows
 * from them (bodies, uploads) live as long as the transfers. Then adds up to
 * limit transfers (0: all) to the multi and awaits the whole batch: k runs
 * with ctx = the batch once every transfer is done, the batch on top of the
 * stack. An empty specs returns a new empty table at once. */
int curl_batch_perform(lua_State *L, const char *what, size_t limit,
                       curl_configure_function configure, lua_KFunction k);

/* Makes transfer t upload the bytes text[0..length) through the read
 * callback; text must be a string of the request's spec (which the batch
 * keeps alive). */
void curl_transfer_upload(curl_transfer *t, const char *text, size_t length);

/* The string field name of t's request spec (at stack index spec), or NULL
 * when it is nil; any other type raises "<what> request field 'name' must
 * be a string". length, unless NULL, receives the string's length. The
 * spec, kept by the batch, keeps the string alive. */
const char *curl_spec_string(lua_State *L, const curl_transfer *t, int spec, const char *name,
                             size_t *length);

/* A timeout in seconds as curl's milliseconds: 0 (none) unless positive,
 * rounded up, at most about 116 days (curl's long stays in range). */
long curl_seconds_to_ms(double seconds);

/* Retryable or not, from curl's own result codes: connection-level problems
 * (refused, reset, DNS, TLS handshake, empty reply) are; misuse, refused
 * logins, certificate verification and server refusals are not. */
int curl_code_retryable(CURLcode code);

/* A short stable name for a curl result ("couldnt_connect"), for err.code. */
const char *curl_code_name(CURLcode code);

/* Removes t's easy handle from the multi if needed, cleans it up and frees
 * the buffers and lists; idempotent. Continuations call it once they have
 * copied a finished transfer into Lua, so large bodies are not held twice. */
void curl_transfer_release(curl_transfer *t);

/* Pushes the structured error for a failed transfer: kind "timeout" when
 * curl timed out, else kind; code from curl_code_name, message
 * "context: curl's message", retryable from curl_code_retryable, and the
 * numeric curl_code. */
void curl_transfer_push_error(lua_State *L, const curl_transfer *t, const char *kind,
                              const char *context);

/* Sets into the table on top of the stack the helpers both preludes use:
 * wf_add_helpers' (wf.h), getdate(text) and time() (whole seconds). */
void curl_loop_add_helpers(lua_State *L);

#endif
