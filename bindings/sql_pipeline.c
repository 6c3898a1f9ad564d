/* sql_pipeline.c: the child processes and scratch files of
 * sql.copy_database, in module "wf.sql.copy" (registered by sql_copy.c).
 *
 * spawn({ {argv, env}, {argv, env} }, capture) runs a pipeline of child
 * processes through the loop (pg_dump | psql), the first's stdout piped into
 * the second's stdin by the kernel, capturing each one's stderr and, when
 * asked, the last one's stdout. The children die with the engine (wf_spawn)
 * and get SIGTERM when the wait is cancelled or the pipeline collected.
 *
 * private_dir() and write_private(path, text) make the scratch files of a
 * copy (pg_dump's post-data archive, pg_restore's entry lists): a directory
 * of mode 0700 and files of mode 0600 created there, never an existing one. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <lauxlib.h>

#include "sql.h"
#include "sql_copy.h"

#define PIPELINE_META "wf.sql.copy.pipeline"
#define STDERR_MAX 65536

extern char **environ;

/* ---- child processes ----------------------------------------------------- */

typedef struct copy_child {
  uv_process_t process;
  uv_pipe_t error_pipe;
  char *error_text;
  size_t error_length;
  int64_t exit_status;
  int term_signal, exited, spawned;
  char *spawn_error;
} copy_child;

typedef struct copy_pipeline {
  copy_child children[2];
  int count;
  uv_pipe_t out_pipe;
  int capture;
  char *out_text;
  size_t out_length, out_capacity;
  int open_handles; /* handles not yet closed: the pipeline is done at 0 */
  int waiting, orphaned;
  wf_wait wait;
} copy_pipeline;

typedef struct {
  copy_pipeline *pipeline;
} pipeline_box;

static void pipeline_maybe_done(copy_pipeline *pipeline) {
  if (pipeline->open_handles > 0) return;
  if (pipeline->orphaned) {
    for (int i = 0; i < pipeline->count; i++) {
      free(pipeline->children[i].error_text);
      free(pipeline->children[i].spawn_error);
    }
    free(pipeline->out_text);
    free(pipeline);
    return;
  }
  if (pipeline->waiting) {
    pipeline->waiting = 0;
    pipeline->wait.cancel = NULL;
    wf_wake(&pipeline->wait);
  }
}

static void handle_closed(uv_handle_t *handle) {
  copy_pipeline *pipeline = handle->data;
  pipeline->open_handles--;
  pipeline_maybe_done(pipeline);
}

static void read_alloc(uv_handle_t *handle, size_t suggested, uv_buf_t *buf) {
  (void)handle;
  (void)suggested;
  static char chunk[65536]; /* the loop is single-threaded; read_done copies it out */
  buf->base = chunk;
  buf->len = sizeof chunk;
}

static int append(char **text, size_t *length, size_t *capacity, const char *data, size_t n) {
  if (*length + n + 1 > *capacity) {
    size_t grown = *capacity ? *capacity : 65536;
    while (grown < *length + n + 1)
      grown *= 2;
    char *bigger = realloc(*text, grown);
    if (!bigger) return -1;
    *text = bigger;
    *capacity = grown;
  }
  memcpy(*text + *length, data, n);
  *length += n;
  (*text)[*length] = '\0';
  return 0;
}

static void read_done(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf) {
  copy_pipeline *pipeline = stream->data;
  if (nread < 0) {
    uv_close((uv_handle_t *)stream, handle_closed);
    return;
  }
  if (nread == 0) return;
  if ((uv_pipe_t *)stream == &pipeline->out_pipe) {
    append(&pipeline->out_text, &pipeline->out_length, &pipeline->out_capacity, buf->base,
           (size_t)nread);
    return;
  }
  for (int i = 0; i < pipeline->count; i++) {
    copy_child *child = &pipeline->children[i];
    if ((uv_pipe_t *)stream != &child->error_pipe) continue;
    size_t keep = child->error_length + (size_t)nread > STDERR_MAX
                      ? STDERR_MAX - child->error_length
                      : (size_t)nread;
    size_t capacity = child->error_text ? STDERR_MAX + 1 : 0;
    if (!child->error_text) {
      child->error_text = malloc(STDERR_MAX + 1);
      if (!child->error_text) return;
      capacity = STDERR_MAX + 1;
    }
    append(&child->error_text, &child->error_length, &capacity, buf->base, keep);
  }
}

static void child_exited(uv_process_t *process, int64_t status, int term_signal) {
  copy_child *child = (copy_child *)(void *)process;
  child->exit_status = status;
  child->term_signal = term_signal;
  child->exited = 1;
  uv_close((uv_handle_t *)process, handle_closed);
}

static void pipeline_kill(copy_pipeline *pipeline) {
  for (int i = 0; i < pipeline->count; i++) {
    copy_child *child = &pipeline->children[i];
    if (child->spawned && !child->exited) uv_process_kill(&child->process, SIGTERM);
  }
}

static void pipeline_wait_cancel(wf_wait *wait) {
  copy_pipeline *pipeline = (copy_pipeline *)(void *)((char *)wait - offsetof(copy_pipeline, wait));
  pipeline->waiting = 0;
  wait->cancel = NULL;
  pipeline_kill(pipeline);
}

/* Builds argv and envp for one process; the strings stay on the Lua stack and
 * the arrays are Lua userdata, so nothing leaks if this raises. stack: spec */
static void build_command(lua_State *L, int spec, char ***argv, char ***envp) {
  lua_getfield(L, spec, "argv");
  luaL_argcheck(L, lua_istable(L, -1), 1, "argv must be a table");
  int argv_index = lua_gettop(L);
  int argc = (int)luaL_len(L, argv_index);
  luaL_argcheck(L, argc > 0, 1, "argv is empty");
  *argv = lua_newuserdatauv(L, sizeof(char *) * (size_t)(argc + 1), 0);
  for (int i = 0; i < argc; i++) {
    lua_rawgeti(L, argv_index, i + 1);
    (*argv)[i] = (char *)luaL_checkstring(L, -1);
    lua_rawseti(L, argv_index, i + 1); /* keep it referenced */
  }
  (*argv)[argc] = NULL;
  lua_getfield(L, spec, "env");
  int env_index = lua_gettop(L);
  int extra = 0;
  if (lua_istable(L, env_index)) {
    lua_pushnil(L);
    while (lua_next(L, env_index)) {
      extra++;
      lua_pop(L, 1);
    }
  }
  int inherited = 0;
  while (environ[inherited])
    inherited++;
  *envp = lua_newuserdatauv(L, sizeof(char *) * (size_t)(inherited + extra + 1), 1);
  lua_createtable(L, extra, 0); /* the "K=V" strings, referenced by the userdata */
  int n = 0;
  if (extra) {
    lua_pushnil(L);
    while (lua_next(L, env_index)) {
      lua_pushfstring(L, "%s=%s", luaL_checkstring(L, -2), luaL_checkstring(L, -1));
      (*envp)[n++] = (char *)lua_tostring(L, -1);
      lua_rawseti(L, -4, n);
      lua_pop(L, 1);
    }
  }
  for (int i = 0; i < inherited; i++) {
    const char *equals = strchr(environ[i], '=');
    size_t key_length = equals ? (size_t)(equals - environ[i]) : strlen(environ[i]);
    int overridden = 0;
    for (int j = 0; j < extra; j++)
      if (strncmp((*envp)[j], environ[i], key_length + 1) == 0) overridden = 1;
    if (!overridden) (*envp)[n++] = environ[i];
  }
  (*envp)[n] = NULL;
  lua_setiuservalue(L, -2, 1);
  /* stack: argv table, argv array, env table, envp array */
}

static int pipeline_wait_k(lua_State *L, int status, lua_KContext ctx);

/* copy.spawn({ {argv = {...}, env = {...}}, ... }, capture_stdout) -> pipeline */
static int copy_spawn(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  int count = (int)luaL_len(L, 1);
  int capture = lua_toboolean(L, 2);
  luaL_argcheck(L, count >= 1 && count <= 2, 1, "one or two commands");
  lua_settop(L, 2);
  pipeline_box *box = lua_newuserdatauv(L, sizeof *box, 0); /* 3 */
  box->pipeline = NULL;
  luaL_setmetatable(L, PIPELINE_META);
  char **argv[2], **envp[2];
  for (int i = 0; i < count; i++) {
    lua_rawgeti(L, 1, i + 1);
    luaL_checktype(L, -1, LUA_TTABLE);
    build_command(L, lua_gettop(L), &argv[i], &envp[i]);
  }
  copy_pipeline *pipeline = calloc(1, sizeof *pipeline);
  if (!pipeline) return luaL_error(L, "out of memory");
  box->pipeline = pipeline;
  pipeline->count = count;
  pipeline->capture = capture;
  uv_loop_t *loop = wf_loop(L);
  uv_file link[2] = {-1, -1};
  if (count == 2 && uv_pipe(link, 0, 0) < 0) link[0] = link[1] = -1;
  if (capture) {
    uv_pipe_init(loop, &pipeline->out_pipe, 0);
    pipeline->out_pipe.data = pipeline;
    pipeline->open_handles++;
  }
  /* The last command (psql) starts first. Children are tied to the engine's
   * life (wf_spawn), and when it dies the kernel signals them in the order
   * they were started: psql must be killed before pg_dump's end could reach
   * it as an end of input, which it would take for the end of the script
   * and COMMIT a partial schema. */
  int failed = 0;
  for (int i = count - 1; i >= 0; i--) {
    copy_child *child = &pipeline->children[i];
    uv_pipe_init(loop, &child->error_pipe, 0);
    child->error_pipe.data = pipeline;
    pipeline->open_handles++;
    uv_stdio_container_t stdio[3];
    if (i == 0)
      stdio[0].flags = UV_IGNORE;
    else {
      stdio[0].flags = UV_INHERIT_FD;
      stdio[0].data.fd = link[0];
    }
    if (i == count - 1) {
      if (capture) {
        stdio[1].flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE;
        stdio[1].data.stream = (uv_stream_t *)&pipeline->out_pipe;
      } else {
        stdio[1].flags = UV_IGNORE;
      }
    } else {
      stdio[1].flags = UV_INHERIT_FD;
      stdio[1].data.fd = link[1];
    }
    stdio[2].flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE;
    stdio[2].data.stream = (uv_stream_t *)&child->error_pipe;
    uv_process_options_t options;
    memset(&options, 0, sizeof options);
    options.exit_cb = child_exited;
    options.file = argv[i][0];
    options.args = argv[i];
    options.env = envp[i];
    options.stdio_count = 3;
    options.stdio = stdio;
    child->process.data = pipeline;
    int rc = failed                        ? UV_ECANCELED
             : (count == 2 && link[0] < 0) ? UV_EMFILE
                                           : wf_spawn(L, &child->process, &options);
    if (rc < 0) {
      failed = 1;
      child->spawn_error = strdup(uv_strerror(rc));
      child->exited = 1;
      child->exit_status = 127;
      uv_close((uv_handle_t *)&child->error_pipe, handle_closed);
      /* a pipeline without its other half would hang: stop what started */
      pipeline_kill(pipeline);
      continue;
    }
    child->spawned = 1;
    pipeline->open_handles++;
    uv_read_start((uv_stream_t *)&child->error_pipe, read_alloc, read_done);
  }
  if (link[0] >= 0) {
    close(link[0]);
    close(link[1]);
  }
  if (capture) {
    if (pipeline->children[count - 1].spawned)
      uv_read_start((uv_stream_t *)&pipeline->out_pipe, read_alloc, read_done);
    else
      uv_close((uv_handle_t *)&pipeline->out_pipe, handle_closed);
  }
  lua_settop(L, 3);
  return 1;
}

static copy_pipeline *pipeline_check(lua_State *L) {
  pipeline_box *box = luaL_checkudata(L, 1, PIPELINE_META);
  if (!box->pipeline) luaL_error(L, "pipeline is finished");
  return box->pipeline;
}

/* pipeline:wait() -> { stdout =, [i] = {status =, signal =, stderr =, error =} } */
static int pipeline_wait(lua_State *L) {
  copy_pipeline *pipeline = pipeline_check(L);
  lua_settop(L, 1);
  if (pipeline->open_handles == 0) return pipeline_wait_k(L, LUA_OK, 0);
  pipeline->waiting = 1;
  pipeline->wait.cancel = pipeline_wait_cancel;
  return wf_await(L, &pipeline->wait, 0, pipeline_wait_k);
}

static int pipeline_wait_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  (void)ctx;
  copy_pipeline *pipeline = pipeline_check(L);
  lua_createtable(L, pipeline->count, 1);
  if (pipeline->capture) {
    lua_pushlstring(L, pipeline->out_text ? pipeline->out_text : "", pipeline->out_length);
    lua_setfield(L, -2, "stdout");
  }
  for (int i = 0; i < pipeline->count; i++) {
    copy_child *child = &pipeline->children[i];
    lua_createtable(L, 0, 4);
    lua_pushinteger(L, (lua_Integer)child->exit_status);
    lua_setfield(L, -2, "status");
    lua_pushinteger(L, child->term_signal);
    lua_setfield(L, -2, "signal");
    wf_push_redacted(L, child->error_text ? child->error_text : "", child->error_length);
    lua_setfield(L, -2, "stderr");
    if (child->spawn_error) {
      lua_pushstring(L, child->spawn_error);
      lua_setfield(L, -2, "error");
    }
    lua_rawseti(L, -2, i + 1);
  }
  return 1;
}

static int pipeline_gc(lua_State *L) {
  pipeline_box *box = luaL_checkudata(L, 1, PIPELINE_META);
  copy_pipeline *pipeline = box->pipeline;
  if (!pipeline) return 0;
  box->pipeline = NULL;
  pipeline->orphaned = 1;
  pipeline->waiting = 0;
  pipeline_kill(pipeline);
  pipeline_maybe_done(pipeline);
  return 0;
}

/* ---- scratch files ---------------------------------------------------------- */

/* copy.private_dir() -> path of a new directory under $TMPDIR (else /tmp)
 * that only this user can enter (mkdtemp: mode 0700) */
static int copy_private_dir(lua_State *L) {
  char path[PATH_MAX];
  if (wf_private_dir("wf-copy", path, sizeof path) < 0)
    return luaL_error(L, "cannot create a directory under $TMPDIR: %s", strerror(errno));
  lua_pushstring(L, path);
  return 1;
}

/* copy.write_private(path, text): creates the file, which must not exist yet
 * (no symlink followed), mode 0600, holding text */
static int copy_write_private(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  size_t length;
  const char *text = luaL_checklstring(L, 2, &length);
  int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) return luaL_error(L, "cannot create %s: %s", path, strerror(errno));
  size_t done = 0;
  while (done < length) {
    ssize_t n = write(fd, text + done, length - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) break;
    done += (size_t)n;
  }
  int failed = done < length, saved = errno;
  if (close(fd) != 0 && !failed) {
    failed = 1;
    saved = errno;
  }
  if (failed) return luaL_error(L, "cannot write %s: %s", path, strerror(saved));
  return 0;
}

static const luaL_Reg pipeline_methods[] = {{"wait", pipeline_wait}, {NULL, NULL}};
static const luaL_Reg pipeline_meta[] = {
    {"__gc", pipeline_gc}, {"__close", pipeline_gc}, {NULL, NULL}};
static const luaL_Reg pipeline_funcs[] = {{"spawn", copy_spawn},
                                          {"private_dir", copy_private_dir},
                                          {"write_private", copy_write_private},
                                          {NULL, NULL}};

void sql_pipeline_register(lua_State *L) {
  if (luaL_newmetatable(L, PIPELINE_META)) {
    luaL_setfuncs(L, pipeline_meta, 0);
    luaL_newlib(L, pipeline_methods);
    lua_setfield(L, -2, "__index");
  }
  lua_pop(L, 1);
  luaL_setfuncs(L, pipeline_funcs, 0);
}
