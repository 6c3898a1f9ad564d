/* interp.c: `${VAR}` / `${VAR:-default}` interpolation (see interp.h).
 * Uses only libc; the output grows in a malloc'd buffer owned here until it
 * is handed to the caller. */
#include "interp.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct growbuf {
  char *data;
  size_t length, capacity;
};

static int growbuf_add(struct growbuf *buf, const char *text, size_t length) {
  if (length > (size_t)-1 / 2 - buf->length - 1) return -1;
  if (buf->length + length + 1 > buf->capacity) {
    size_t capacity = buf->capacity ? buf->capacity : 64;
    while (capacity < buf->length + length + 1)
      capacity *= 2;
    char *data = realloc(buf->data, capacity);
    if (data == NULL) return -1;
    buf->data = data;
    buf->capacity = capacity;
  }
  if (length) memcpy(buf->data + buf->length, text, length);
  buf->length += length;
  buf->data[buf->length] = '\0';
  return 0;
}

static int fail(struct growbuf *buf, struct interp_error *err, size_t offset, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int fail(struct growbuf *buf, struct interp_error *err, size_t offset, const char *fmt,
                ...) {
  va_list ap;
  free(buf->data);
  buf->data = NULL;
  err->offset = offset;
  va_start(ap, fmt);
  vsnprintf(err->message, sizeof err->message, fmt, ap);
  va_end(ap);
  return -1;
}

static int is_name_start(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_';
}

static int is_name_char(char c) {
  return is_name_start(c) || (c >= '0' && c <= '9');
}

/* Quotes at most 40 bytes of a reference for a message, without control bytes. */
static void excerpt(char *dest, size_t size, const char *text, size_t length) {
  size_t n = 0;
  for (size_t i = 0; i < length && i < 40 && n + 1 < size; i++)
    dest[n++] = (unsigned char)text[i] < 0x20 ? '?' : text[i];
  dest[n] = '\0';
}

int interp_expand(const char *in, size_t len, interp_lookup_fn lookup, void *data, char **out,
                  size_t *out_len, struct interp_error *err) {
  struct growbuf buf = {NULL, 0, 0};
  size_t i = 0, literal_start = 0;

  *out = NULL;
  *out_len = 0;
  if (growbuf_add(&buf, "", 0) != 0) return fail(&buf, err, 0, "out of memory");
  while (i < len) {
    const char *dollar = memchr(in + i, '$', len - i);
    if (dollar == NULL) break;
    i = (size_t)(dollar - in);
    if (i + 2 < len && in[i + 1] == '$' && in[i + 2] == '{') {
      /* `$${` -> `${` */
      if (growbuf_add(&buf, in + literal_start, i - literal_start) != 0 ||
          growbuf_add(&buf, "${", 2) != 0)
        return fail(&buf, err, i, "out of memory");
      i += 3;
      literal_start = i;
      continue;
    }
    if (i + 1 >= len || in[i + 1] != '{') {
      i++;
      continue;
    }

    /* A reference: `${` NAME ( `}` | `:-` default `}` ) */
    size_t ref_start = i, name_start = i + 2, j = name_start;
    const char *close = memchr(in + name_start, '}', len - name_start);
    char shown[48], name[INTERP_NAME_MAX + 1];
    if (close == NULL) {
      excerpt(shown, sizeof shown, in + ref_start, len - ref_start);
      return fail(&buf, err, ref_start,
                  "unterminated '${' in '%s' (write '$${' for a literal '${')", shown);
    }
    size_t close_at = (size_t)(close - in);
    while (j < close_at && is_name_char(in[j]))
      j++;
    excerpt(shown, sizeof shown, in + ref_start, close_at + 1 - ref_start);
    if (j == name_start) return fail(&buf, err, ref_start, "missing variable name in '%s'", shown);
    if (!is_name_start(in[name_start]))
      return fail(&buf, err, ref_start,
                  "invalid variable name in '%s' (a name is letters, digits and '_', "
                  "not starting with a digit)",
                  shown);
    if (j < close_at && !(in[j] == ':' && in[j + 1] == '-'))
      return fail(&buf, err, ref_start,
                  "invalid reference '%s' (expected '${NAME}' or '${NAME:-default}')", shown);
    if (j - name_start > INTERP_NAME_MAX)
      return fail(&buf, err, ref_start, "variable name longer than %d bytes in '%s'",
                  INTERP_NAME_MAX, shown);
    memcpy(name, in + name_start, j - name_start);
    name[j - name_start] = '\0';

    const char *value = lookup(name, data);
    if (j < close_at) { /* `:-default` */
      if (value == NULL || value[0] == '\0') {
        value = in + j + 2;
        if (growbuf_add(&buf, in + literal_start, ref_start - literal_start) != 0 ||
            growbuf_add(&buf, value, close_at - (j + 2)) != 0)
          return fail(&buf, err, ref_start, "out of memory");
        i = literal_start = close_at + 1;
        continue;
      }
    } else if (value == NULL) {
      return fail(&buf, err, ref_start,
                  "environment variable %s is not set (write '${%s:-default}' to give a "
                  "default)",
                  name, name);
    }
    if (growbuf_add(&buf, in + literal_start, ref_start - literal_start) != 0 ||
        growbuf_add(&buf, value, strlen(value)) != 0)
      return fail(&buf, err, ref_start, "out of memory");
    i = literal_start = close_at + 1;
  }
  if (growbuf_add(&buf, in + literal_start, len - literal_start) != 0)
    return fail(&buf, err, len, "out of memory");
  *out = buf.data;
  *out_len = buf.length;
  return 0;
}

const char *interp_lookup_env(const char *name, void *data) {
  (void)data;
  return getenv(name);
}
