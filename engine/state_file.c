/* state_file.c: "wfengine.files", the primitives of the file state backend
 * (engine/lua/state_file.lua): private directories and files, the fsync'd
 * journal file, OFD locks, and the run's ending a second signal writes
 * (installed with engine_set_last_words). Uses nothing of the loop. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <lauxlib.h>
#include "engine.h"
#include "wf.h"

/* The journal a second signal may append its run_interrupted to: armed by
 * the runner once the run's first event is written, disarmed before its
 * final one, so a run never gets two endings. journal_writing covers a
 * line being appended: the handler writes nothing then (the run is listed
 * as crashed, which resumes the same way). */
static volatile sig_atomic_t armed_journal_fd = -1, journal_writing;

static void write_last_words(void) {
  static const char line[] = "{\"type\":\"run_interrupted\",\"forced\":true}\n";
  int fd = armed_journal_fd;
  if (fd < 0 || journal_writing) return;
  if (write(fd, line, sizeof line - 1) == (ssize_t)(sizeof line - 1)) fdatasync(fd);
}

static int push_errno(lua_State *L, const char *what) {
  int saved = errno;
  lua_pushnil(L);
  if (saved == ELOOP)
    lua_pushfstring(L, "%s: is a symbolic link (refused: state files are never followed)", what);
  else
    lua_pushfstring(L, "%s: %s", what, strerror(saved));
  lua_pushstring(L, saved == ENOENT ? "absent" : "error");
  return 3;
}

/* Every state file is private to its owner whatever the umask (its params,
 * results and logs are nobody else's business), and never a symbolic link
 * another user planted. Returns the fd or -1 with errno set. */
static int open_private(const char *path, int flags) {
  int fd = open(path, flags | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) return -1;
  struct stat st;
  if ((flags & O_ACCMODE) != O_RDONLY && fstat(fd, &st) == 0 && st.st_uid == geteuid() &&
      (st.st_mode & 07777) != 0600 && fchmod(fd, 0600) < 0) {
    int saved = errno;
    close(fd);
    errno = saved;
    return -1;
  }
  return fd;
}

static int fsync_path(const char *path) {
  int fd = open(path, O_RDONLY | O_DIRECTORY);
  if (fd < 0) return -1;
  int rc = fsync(fd);
  close(fd);
  return rc;
}

/* files.mkdir(path [, durable]) -> true | nil, message: creates path and its
 * missing parents, each 0700 whatever the umask, fsyncing each parent
 * (unless durable is false) so the new entries survive a crash. */
static int files_mkdir(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  int durable = lua_isnoneornil(L, 2) || lua_toboolean(L, 2);
  char buffer[4096];
  size_t length = strlen(path);
  if (length >= sizeof buffer) return luaL_argerror(L, 1, "path too long");
  memcpy(buffer, path, length + 1);
  for (char *p = buffer + 1;; p++) {
    if (*p != '/' && *p != '\0') continue;
    char saved = *p;
    *p = '\0';
    int created = mkdir(buffer, 0700) == 0;
    if (!created && errno != EEXIST) return push_errno(L, buffer);
    if (created && chmod(buffer, 0700) < 0) return push_errno(L, buffer);
    if (created && durable) {
      char *slash = strrchr(buffer, '/');
      if (slash && slash != buffer) {
        *slash = '\0';
        fsync_path(buffer);
        *slash = '/';
      } else {
        fsync_path(slash == buffer ? "/" : ".");
      }
    }
    *p = saved;
    if (saved == '\0') break;
  }
  lua_pushboolean(L, 1);
  return 1;
}

/* The journal file: appended lines, each on disk before append returns. */
struct journal {
  int fd;
};

static int journal_close(lua_State *L) {
  struct journal *journal = luaL_checkudata(L, 1, "wfengine.journal");
  if (journal->fd >= 0 && armed_journal_fd == journal->fd) armed_journal_fd = -1;
  if (journal->fd >= 0) close(journal->fd);
  journal->fd = -1;
  return 0;
}

/* journal:append(line [, sync]): writes line and a newline; with sync
 * (default true) fdatasync's the file, making it and every line before it
 * durable. Without, the line is in the kernel (it survives the process
 * being killed) and becomes durable with the next synced line. */
static int journal_append(lua_State *L) {
  struct journal *journal = luaL_checkudata(L, 1, "wfengine.journal");
  size_t length;
  const char *line = luaL_checklstring(L, 2, &length);
  if (journal->fd < 0) return luaL_error(L, "journal is closed");
  struct iovec parts[2] = {{(void *)line, length}, {(void *)"\n", 1}};
  size_t left = length + 1;
  journal_writing = 1;
  while (left > 0) {
    ssize_t n = writev(journal->fd, parts, 2);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      journal_writing = 0;
      return luaL_error(L, "cannot write the journal: %s", strerror(errno));
    }
    left -= (size_t)n;
    for (int i = 0; i < 2; i++) {
      size_t used = (size_t)n < parts[i].iov_len ? (size_t)n : parts[i].iov_len;
      parts[i].iov_base = (char *)parts[i].iov_base + used;
      parts[i].iov_len -= used;
      n -= (ssize_t)used;
    }
  }
  journal_writing = 0;
  if (lua_isnoneornil(L, 3) || lua_toboolean(L, 3)) {
    if (fdatasync(journal->fd) < 0 && errno != EINVAL)
      return luaL_error(L, "cannot sync the journal: %s", strerror(errno));
  }
  return 0;
}

/* journal:arm(on): whether a second signal may append run_interrupted to
 * this journal (see write_last_words). */
static int journal_arm(lua_State *L) {
  struct journal *journal = luaL_checkudata(L, 1, "wfengine.journal");
  if (lua_toboolean(L, 2) && journal->fd >= 0)
    armed_journal_fd = journal->fd;
  else if (armed_journal_fd == journal->fd)
    armed_journal_fd = -1;
  return 0;
}

/* files.journal_open(path [, durable]) -> journal: opens for appending,
 * creating the file and (unless durable is false) fsyncing it and its
 * directory when it is new. */
static int files_journal_open(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  int durable = lua_isnoneornil(L, 2) || lua_toboolean(L, 2);
  struct journal *journal = lua_newuserdatauv(L, sizeof *journal, 0);
  journal->fd = -1;
  luaL_setmetatable(L, "wfengine.journal");
  int existed = access(path, F_OK) == 0;
  journal->fd = open_private(path, O_WRONLY | O_APPEND | O_CREAT);
  if (journal->fd < 0) return push_errno(L, path);
  if (!existed && durable) {
    char directory[4096];
    snprintf(directory, sizeof directory, "%s", path);
    char *slash = strrchr(directory, '/');
    if (slash) *slash = '\0';
    if (fsync(journal->fd) < 0 || fsync_path(slash ? directory : ".") < 0)
      return push_errno(L, path);
  }
  return 1;
}

/* A whole-file write lock of the open file description (OFD lock): held
 * until the process ends or files.unlock(fd), not inherited across exec, and
 * unlike flock another process can ask whether it is held without taking it
 * (files.lock_probe), so looking at a run never stands in the way of one. */
static struct flock whole_file(short type) {
  struct flock lock;
  memset(&lock, 0, sizeof lock);
  lock.l_type = type;
  lock.l_whence = SEEK_SET;
  return lock;
}

/* files.lock(path) -> fd | nil, message: the lock, creating the file (0600,
 * never through a symbolic link); nil, "busy" when another process has it. */
static int files_lock(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  int fd = open_private(path, O_RDWR | O_CREAT);
  if (fd < 0) return push_errno(L, path);
  struct flock lock = whole_file(F_WRLCK);
  if (fcntl(fd, F_OFD_SETLK, &lock) < 0) {
    int saved = errno;
    close(fd);
    lua_pushnil(L);
    lua_pushstring(L, saved == EAGAIN || saved == EACCES ? "busy" : strerror(saved));
    return 2;
  }
  lua_pushinteger(L, fd);
  return 1;
}

/* files.lock_probe(path) -> "held" | "free" | "absent", or nil, message:
 * whether some open file (of any process, this one included) holds the
 * lock, without taking it. */
static int files_lock_probe(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  int fd = open_private(path, O_RDONLY);
  if (fd < 0 && errno == ENOENT) {
    lua_pushliteral(L, "absent");
    return 1;
  }
  if (fd < 0) return push_errno(L, path);
  struct flock lock = whole_file(F_WRLCK);
  int rc = fcntl(fd, F_OFD_GETLK, &lock);
  int saved = errno;
  close(fd);
  errno = saved;
  if (rc < 0) return push_errno(L, path);
  lua_pushstring(L, lock.l_type == F_UNLCK ? "free" : "held");
  return 1;
}

static int files_unlock(lua_State *L) {
  int fd = (int)luaL_checkinteger(L, 1);
  if (fd >= 0) close(fd);
  return 0;
}

/* files.read_file(path) -> text | nil, message, "absent" | "error": a state
 * file, never through a symbolic link. */
static int files_read_file(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  int fd = open_private(path, O_RDONLY);
  if (fd < 0) return push_errno(L, path);
  luaL_Buffer buffer;
  luaL_buffinit(L, &buffer);
  for (;;) {
    char *space = luaL_prepbuffer(&buffer);
    ssize_t n = read(fd, space, LUAL_BUFFERSIZE);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      int saved = errno;
      close(fd);
      errno = saved;
      if (n < 0) return push_errno(L, path);
      break;
    }
    luaL_addsize(&buffer, (size_t)n);
  }
  luaL_pushresult(&buffer);
  return 1;
}

static int write_all(int fd, const char *text, size_t length) {
  while (length > 0) {
    ssize_t n = write(fd, text, length);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return -1;
    text += n;
    length -= (size_t)n;
  }
  return fsync(fd);
}

/* files.write_file(path, text [, append]) -> true | nil, message: a private
 * state file, durable on return. Without append it is replaced atomically
 * (a new file renamed over it, so a crash leaves the old or the new text and
 * a symbolic link in its place is replaced, not followed). */
static int files_write_file(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  size_t length;
  const char *text = luaL_checklstring(L, 2, &length);
  int append = lua_toboolean(L, 3);
  const char *target = append ? path : lua_pushfstring(L, "%s.tmp", path);
  if (!append) unlink(target);
  int fd = open_private(target, O_WRONLY | O_CREAT | (append ? O_APPEND : O_EXCL));
  if (fd < 0) return push_errno(L, target);
  int rc = write_all(fd, text, length);
  int saved = errno;
  close(fd);
  errno = saved;
  if (rc == 0 && !append) rc = rename(target, path);
  if (rc < 0) return push_errno(L, path);
  lua_pushboolean(L, 1);
  return 1;
}

int wf_private_dir(const char *prefix, char *path, size_t size) {
  const char *tmp = getenv("TMPDIR");
  if (!tmp || !*tmp) tmp = "/tmp";
  int n = snprintf(path, size, "%s/%s-XXXXXX", tmp, prefix);
  if (n < 0 || (size_t)n >= size) {
    errno = ENAMETOOLONG;
    return -1;
  }
  return mkdtemp(path) ? 0 : -1;
}

/* files.private_dir(prefix) -> path | nil, message: wf_private_dir. */
static int files_private_dir(lua_State *L) {
  char path[4096];
  if (wf_private_dir(luaL_checkstring(L, 1), path, sizeof path) < 0)
    return push_errno(L, "a private directory under $TMPDIR");
  lua_pushstring(L, path);
  return 1;
}

/* files.truncate(path, length) -> true | nil, message: cuts a journal back
 * to length bytes, durably. */
static int files_truncate(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  off_t length = (off_t)luaL_checkinteger(L, 2);
  int fd = open_private(path, O_WRONLY);
  if (fd < 0) return push_errno(L, path);
  int rc = ftruncate(fd, length) == 0 ? fsync(fd) : -1;
  int saved = errno;
  close(fd);
  errno = saved;
  if (rc < 0) return push_errno(L, path);
  lua_pushboolean(L, 1);
  return 1;
}

static const luaL_Reg files_funcs[] = {
    {"mkdir", files_mkdir},
    {"journal_open", files_journal_open},
    {"lock", files_lock},
    {"lock_probe", files_lock_probe},
    {"unlock", files_unlock},
    {"read_file", files_read_file},
    {"write_file", files_write_file},
    {"truncate", files_truncate},
    {"private_dir", files_private_dir},
    {NULL, NULL},
};

static const luaL_Reg journal_methods[] = {
    {"append", journal_append},
    {"arm", journal_arm},
    {"close", journal_close},
    {NULL, NULL},
};

static const luaL_Reg journal_meta[] = {
    {"__gc", journal_close},
    {"__close", journal_close},
    {NULL, NULL},
};

int engine_open_files(lua_State *L) {
  engine_set_last_words(write_last_words);
  luaL_newmetatable(L, "wfengine.journal");
  luaL_setfuncs(L, journal_meta, 0);
  luaL_newlib(L, journal_methods);
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
  luaL_newlib(L, files_funcs);
  return 1;
}
