/* copy_rewrite.c: the value rewrite inside a binary COPY stream
 * (copy_rewrite.h), and its Lua glue in module "wf.sql.copy". */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#include "copy_rewrite.h"
#include "mail.h"

#define HEADER_BYTES 19
#define HEADER_EXTENSION_MAX (1 << 20)
#define ARRAY_DIMS_MAX 6
#define TYPE_DEPTH_MAX 16
/* text, varchar and char: OIDs fixed in PostgreSQL's catalogs, the same in
 * every database (pg_type.dat) */
#define TEXTOID 25
#define BPCHAROID 1042
#define VARCHAROID 1043

static const char SIGNATURE[11] = {'P', 'G', 'C', 'O', 'P', 'Y', '\n', '\377', '\r', '\n', '\0'};

/* ---- buffers ----------------------------------------------------------- */

int rw_buf_reserve(rw_buf *buf, size_t extra) {
  if (buf->capacity - buf->length >= extra) return 0;
  size_t capacity = buf->capacity ? buf->capacity : 4096;
  while (capacity - buf->length < extra) {
    if (capacity > SIZE_MAX / 2) return -1;
    capacity *= 2;
  }
  char *grown = realloc(buf->data, capacity);
  if (!grown) return -1;
  buf->data = grown;
  buf->capacity = capacity;
  return 0;
}

int rw_buf_put(rw_buf *buf, const void *data, size_t length) {
  if (length == 0) return 0;
  if (rw_buf_reserve(buf, length) < 0) return -1;
  memcpy(buf->data + buf->length, data, length);
  buf->length += length;
  return 0;
}

void rw_buf_free(rw_buf *buf) {
  free(buf->data);
  buf->data = NULL;
  buf->length = buf->capacity = 0;
}

static int put_byte(rw_buf *buf, char c) {
  return rw_buf_put(buf, &c, 1);
}

static int32_t read32(const unsigned char *p) {
  return (int32_t)((uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]);
}

static int put32(rw_buf *buf, uint32_t value) {
  unsigned char b[4] = {(unsigned char)(value >> 24), (unsigned char)(value >> 16),
                        (unsigned char)(value >> 8), (unsigned char)value};
  return rw_buf_put(buf, b, 4);
}

static void patch32(rw_buf *buf, size_t at, uint32_t value) {
  unsigned char *p = (unsigned char *)buf->data + at;
  p[0] = (unsigned char)(value >> 24);
  p[1] = (unsigned char)(value >> 16);
  p[2] = (unsigned char)(value >> 8);
  p[3] = (unsigned char)value;
}

/* ---- text leaves --------------------------------------------------------- */

static int is_domain_char(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-';
}

static char lower(char c) {
  return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
}

/* The end of the domain part that AT_DOMAIN_RE takes at text[from]:
 * labels of [A-Za-z0-9-]+ joined by single dots; from itself when none. */
static size_t domain_end(const char *text, size_t length, size_t from) {
  size_t j = from;
  while (j < length && is_domain_char((unsigned char)text[j]))
    j++;
  if (j == from) return from;
  while (j + 1 < length && text[j] == '.' && is_domain_char((unsigned char)text[j + 1])) {
    j++;
    while (j < length && is_domain_char((unsigned char)text[j]))
      j++;
  }
  return j;
}

static int same_domain(const char *part, size_t length, const char *domain, size_t domain_length) {
  if (length != domain_length) return 0;
  for (size_t i = 0; i < length; i++)
    if (lower(part[i]) != domain[i]) return 0;
  return 1;
}

int rw_scan_text(const char *text, size_t length, const char *domain, size_t domain_length,
                 rw_buf *out) {
  size_t from = 0, i = 0;
  const char *at;
  while (i < length && (at = memchr(text + i, '@', length - i))) {
    size_t a = (size_t)(at - text), end = domain_end(text, length, a + 1);
    size_t part = end - a - 1;
    i = end > a + 1 ? end : a + 1;
    if (part == 0 || same_domain(text + a + 1, part, domain, domain_length)) continue;
    if (rw_buf_reserve(out, (a - from) + part + domain_length + 2) < 0) return -1;
    char *w = out->data + out->length;
    memcpy(w, text + from, a - from);
    w += a - from;
    *w++ = '_';
    for (size_t k = 0; k < part; k++)
      *w++ = lower(text[a + 1 + k]);
    *w++ = '@';
    memcpy(w, domain, domain_length);
    out->length += (a - from) + part + domain_length + 2;
    from = end;
  }
  return rw_buf_put(out, text + from, length - from);
}

void rw_hash_hex(const char *text, size_t length, char out[16]) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (size_t i = 0; i < length; i++) {
    h ^= (unsigned char)text[i];
    h *= 0x100000001b3ULL;
  }
  static const char hex[] = "0123456789abcdef";
  for (int i = 15; i >= 0; i--) {
    out[i] = hex[h & 15];
    h >>= 4;
  }
}

static size_t utf8_chars(const char *text, size_t length) {
  size_t n = 0;
  for (size_t i = 0; i < length; i++)
    n += ((unsigned char)text[i] & 0xC0) != 0x80;
  return n;
}

/* The byte offset just past the first `chars` characters. */
static size_t utf8_prefix(const char *text, size_t length, size_t chars) {
  size_t i = 0;
  while (i < length && chars > 0) {
    i++;
    while (i < length && ((unsigned char)text[i] & 0xC0) == 0x80)
      i++;
    chars--;
  }
  return i;
}

static int is_local_char(unsigned char c) {
  return is_domain_char(c) || c == '_' || c == '+';
}

/* The fit rule (docs/modules.md, wf.sql copy_database rewrite): the
 * rewritten value r at out[start..] is longer than limit characters. When
 * only spaces pass the limit, they go (PostgreSQL's own rule for varchar and
 * char). Otherwise, with H = 16 hex digits of FNV-1a 64 of the original and
 * d the domain: P "." H "@" d, P being r's first characters (each one not
 * in [A-Za-z0-9_+-] as '_') as many as fit; if not even one fits, H "@" d
 * with H cut to fit; if that does not fit either, H cut to limit (no '@':
 * no address at all). */
static int fit(rw_stream *s, int32_t limit, const char *original, size_t original_length,
               rw_buf *out, size_t start) {
  const char *r = out->data + start;
  size_t r_length = out->length - start, keep = utf8_prefix(r, r_length, (size_t)limit);
  size_t k = keep;
  while (k < r_length && r[k] == ' ')
    k++;
  if (k == r_length) {
    out->length = start + keep;
    return 0;
  }
  s->fit.length = 0;
  if (rw_buf_put(&s->fit, r, r_length) < 0) return -1;
  out->length = start;
  char hash[16];
  rw_hash_hex(original, original_length, hash);
  const rw_spec *spec = s->spec;
  size_t d = spec->domain_length, tail = 1 + 16 + 1 + d, n = (size_t)limit;
  if (n >= tail + 1) {
    size_t chars = n - tail, i = 0;
    while (chars-- > 0 && i < s->fit.length) {
      unsigned char c = (unsigned char)s->fit.data[i];
      size_t next = utf8_prefix(s->fit.data + i, s->fit.length - i, 1);
      if (put_byte(out, is_local_char(c) ? (char)c : '_') < 0) return -1;
      i += next;
    }
    if (put_byte(out, '.') < 0 || rw_buf_put(out, hash, 16) < 0) return -1;
  } else if (n >= d + 2) {
    if (rw_buf_put(out, hash, n - d - 1 < 16 ? n - d - 1 : 16) < 0) return -1;
  } else {
    return rw_buf_put(out, hash, n < 16 ? n : 16);
  }
  if (put_byte(out, '@') < 0) return -1;
  return rw_buf_put(out, spec->domain, d);
}

/* ADDRESS: mail_sandbox_address, appended to out. It rewrites only the last
 * address of a leaf holding several ("a@x.no, b@y.no"), so a leaf with more
 * than one '@' then goes through the free-text scan, which rewrites the
 * others (the last one, at the domain now, stays): what step 13's in-place
 * pass made of it before, in one pass. One '@' or none: mail_sandbox_address
 * alone, byte for byte (for a domain of [A-Za-z0-9-] labels the scan would
 * leave it as it is anyway); the check costs a memchr over the leaf. */
static int address_leaf(rw_stream *s, const char *text, size_t length, rw_buf *out) {
  const rw_spec *spec = s->spec;
  const char *at = memchr(text, '@', length);
  int several = at && memchr(at + 1, '@', length - (size_t)(at - text) - 1) != NULL;
  rw_buf *to = several ? &s->several : out;
  if (several) s->several.length = 0;
  if (rw_buf_reserve(to, length + spec->domain_length + 2) < 0) return -1;
  to->length +=
      mail_sandbox_address(text, length, spec->domain, spec->domain_length, to->data + to->length);
  if (!several) return 0;
  return rw_scan_text(s->several.data, s->several.length, spec->domain, spec->domain_length, out);
}

int rw_text(rw_stream *s, enum rw_op op, const rw_column *column, int32_t limit, const char *text,
            size_t length, rw_buf *out, int *changed) {
  size_t start = out->length;
  const rw_spec *spec = s->spec;
  int rc = 0;
  switch (op) {
  case RW_ADDRESS:
    rc = address_leaf(s, text, length, out);
    break;
  case RW_SCAN:
    rc = rw_scan_text(text, length, spec->domain, spec->domain_length, out);
    break;
  case RW_CONSTANT:
    rc = rw_buf_put(out, column->value, column->value_length);
    break;
  case RW_HASH:
    rc = rw_buf_reserve(out, 16);
    if (rc == 0) {
      rw_hash_hex(text, length, out->data + out->length);
      out->length += 16;
    }
    break;
  default:
    rc = rw_buf_put(out, text, length);
  }
  if (rc < 0) return -1;
  size_t n = out->length - start;
  if (n == length && (length == 0 || memcmp(out->data + start, text, length) == 0)) return 0;
  *changed = 1;
  if (limit > 0 && utf8_chars(out->data + start, n) > (size_t)limit)
    return fit(s, limit, text, length, out, start);
  return 0;
}

/* ---- JSON ------------------------------------------------------------------ */

static int hex4(const unsigned char *p, unsigned *value) {
  unsigned v = 0;
  for (int i = 0; i < 4; i++) {
    unsigned char c = p[i];
    v <<= 4;
    if (c >= '0' && c <= '9')
      v |= c - '0';
    else if (c >= 'a' && c <= 'f')
      v |= c - 'a' + 10;
    else if (c >= 'A' && c <= 'F')
      v |= c - 'A' + 10;
    else
      return -1;
  }
  *value = v;
  return 0;
}

static int put_utf8(rw_buf *out, unsigned cp) {
  char b[4];
  size_t n;
  if (cp < 0x80) {
    b[0] = (char)cp;
    n = 1;
  } else if (cp < 0x800) {
    b[0] = (char)(0xC0 | cp >> 6);
    b[1] = (char)(0x80 | (cp & 0x3F));
    n = 2;
  } else if (cp < 0x10000) { /* a lone surrogate too (WTF-8): json_escape writes it back */
    b[0] = (char)(0xE0 | cp >> 12);
    b[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
    b[2] = (char)(0x80 | (cp & 0x3F));
    n = 3;
  } else {
    b[0] = (char)(0xF0 | cp >> 18);
    b[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    b[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    b[3] = (char)(0x80 | (cp & 0x3F));
    n = 4;
  }
  return rw_buf_put(out, b, n);
}

/* Decodes the JSON string body raw[0..length) (no quotes) into out.
 * Returns 0, -1 out of memory, -2 a malformed escape. */
static int json_decode(const unsigned char *raw, size_t length, rw_buf *out) {
  for (size_t i = 0; i < length; i++) {
    if (raw[i] != '\\') {
      if (put_byte(out, (char)raw[i]) < 0) return -1;
      continue;
    }
    if (++i >= length) return -2;
    static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
    const char *e = raw[i] ? strchr(from, raw[i]) : NULL;
    if (e) {
      if (put_byte(out, to[e - from]) < 0) return -1;
      continue;
    }
    unsigned cp, low;
    if (raw[i] != 'u' || i + 4 >= length || hex4(raw + i + 1, &cp) < 0) return -2;
    i += 4;
    if (cp >= 0xD800 && cp < 0xDC00 && i + 6 < length && raw[i + 1] == '\\' && raw[i + 2] == 'u' &&
        hex4(raw + i + 3, &low) == 0 && low >= 0xDC00 && low < 0xE000) {
      cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
      i += 6;
    }
    if (put_utf8(out, cp) < 0) return -1;
  }
  return 0;
}

/* Appends text as the body of a JSON string: quotes, backslashes and
 * control characters escaped, lone surrogates (WTF-8) as \uXXXX. */
static int json_escape(const char *text, size_t length, rw_buf *out) {
  size_t from = 0;
  for (size_t i = 0; i < length; i++) {
    unsigned char c = (unsigned char)text[i];
    char esc[8];
    int n = 0;
    if (c == '"' || c == '\\') {
      n = snprintf(esc, sizeof esc, "\\%c", c);
    } else if (c < 0x20) {
      n = snprintf(esc, sizeof esc, "\\u%04x", c);
    } else if (c == 0xED && i + 2 < length && ((unsigned char)text[i + 1] & 0xE0) == 0xA0) {
      unsigned cp = 0xD000 | ((unsigned)text[i + 1] & 0x3F) << 6 | ((unsigned)text[i + 2] & 0x3F);
      n = snprintf(esc, sizeof esc, "\\u%04x", cp);
    }
    if (!n) continue;
    if (rw_buf_put(out, text + from, i - from) < 0 || rw_buf_put(out, esc, (size_t)n) < 0)
      return -1;
    if (c == 0xED) i += 2;
    from = i + 1;
  }
  return rw_buf_put(out, text + from, length - from);
}

static int is_json_space(unsigned char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* The end of the JSON string whose opening quote is at v[q]: the index of
 * its closing quote, or length when unterminated. */
static size_t json_string_end(const unsigned char *v, size_t length, size_t q, int *escaped) {
  size_t j = q + 1;
  while (j < length && v[j] != '"') {
    if (v[j] == '\\') {
      *escaped = 1;
      j++;
    }
    j++;
  }
  return j < length ? j : length;
}

static int json_leaf(rw_stream *s, enum rw_op op, const rw_column *column, const unsigned char *raw,
                     size_t length, int escaped, rw_buf *out, int *changed) {
  const char *text = (const char *)raw;
  size_t text_length = length;
  if (escaped) {
    s->scratch.length = 0;
    int rc = json_decode(raw, length, &s->scratch);
    if (rc == -2) {
      snprintf(s->error, sizeof s->error, "a JSON string with a malformed escape");
      return -1;
    }
    if (rc < 0) goto oom;
    text = s->scratch.data ? s->scratch.data : "";
    text_length = s->scratch.length;
  }
  s->leaf.length = 0;
  int leaf_changed = 0;
  if (rw_text(s, op, column, 0, text, text_length, &s->leaf, &leaf_changed) < 0) goto oom;
  if (!leaf_changed) return rw_buf_put(out, raw, length) < 0 ? -2 : 0;
  *changed = 1;
  return json_escape(s->leaf.data, s->leaf.length, out) < 0 ? -2 : 0;
oom:
  snprintf(s->error, sizeof s->error, "out of memory");
  return -1;
}

/* Rewrites the string leaves of a JSON text (json, or jsonb after its
 * version byte); everything else is copied as it is. Keys are rewritten by
 * ADDRESS and SCAN, left alone by CONSTANT and HASH. */
static int json_walk(rw_stream *s, enum rw_op op, const rw_column *column, const unsigned char *v,
                     size_t length, rw_buf *out, int *changed) {
  size_t i = 0;
  while (i < length) {
    const unsigned char *quote = memchr(v + i, '"', length - i);
    size_t q = quote ? (size_t)(quote - v) : length;
    if (rw_buf_put(out, v + i, q - i) < 0) goto oom;
    if (!quote) break;
    int escaped = 0;
    size_t end = json_string_end(v, length, q, &escaped);
    if (end == length) {
      snprintf(s->error, sizeof s->error, "an unterminated JSON string");
      return -1;
    }
    size_t k = end + 1;
    while (k < length && is_json_space(v[k]))
      k++;
    int key = k < length && v[k] == ':';
    if (put_byte(out, '"') < 0) goto oom;
    if (op == RW_KEEP || (key && (op == RW_CONSTANT || op == RW_HASH))) {
      if (rw_buf_put(out, v + q + 1, end - q - 1) < 0) goto oom;
    } else {
      int rc = json_leaf(s, op, column, v + q + 1, end - q - 1, escaped, out, changed);
      if (rc == -1) return -1;
      if (rc < 0) goto oom;
    }
    if (put_byte(out, '"') < 0) goto oom;
    i = end + 1;
  }
  return 0;
oom:
  snprintf(s->error, sizeof s->error, "out of memory");
  return -1;
}

/* ---- values by type -------------------------------------------------------- */

static int value(rw_stream *s, const rw_type *t, enum rw_op op, const rw_column *column,
                 const unsigned char *v, size_t length, rw_buf *out, int *changed);

static int malformed(rw_stream *s, const char *what) {
  snprintf(s->error, sizeof s->error, "malformed %s in the COPY stream", what);
  return -1;
}

static int oom(rw_stream *s) {
  snprintf(s->error, sizeof s->error, "out of memory");
  return -1;
}

/* One length-prefixed element: its new length patched in after the value. */
static int element(rw_stream *s, const rw_type *t, enum rw_op op, const rw_column *column,
                   const unsigned char *v, size_t length, size_t *at, rw_buf *out, int *changed) {
  if (length - *at < 4) return malformed(s, "element length");
  int32_t n = read32(v + *at);
  *at += 4;
  if (n == -1) return put32(out, (uint32_t)-1) < 0 ? oom(s) : 0;
  if (n < 0 || (size_t)n > length - *at) return malformed(s, "element length");
  size_t mark = out->length;
  if (put32(out, 0) < 0) return oom(s);
  if (value(s, t, op, column, v + *at, (size_t)n, out, changed) < 0) return -1;
  size_t written = out->length - mark - 4;
  if (written > INT32_MAX) return malformed(s, "element (too long after the rewrite)");
  patch32(out, mark, (uint32_t)written);
  *at += (size_t)n;
  return 0;
}

static int array_value(rw_stream *s, const rw_type *t, enum rw_op op, const rw_column *column,
                       const unsigned char *v, size_t length, rw_buf *out, int *changed) {
  const rw_type *elem = &s->spec->types[t->elem];
  if (length < 12) return malformed(s, "array");
  int32_t ndim = read32(v), flags = read32(v + 4);
  if (ndim < 0 || ndim > ARRAY_DIMS_MAX || length - 12 < (size_t)ndim * 8)
    return malformed(s, "array");
  size_t items = ndim > 0 ? 1 : 0, at = 12 + (size_t)ndim * 8;
  for (int32_t d = 0; d < ndim; d++) {
    int32_t dim = read32(v + 12 + d * 8);
    if (dim < 0 || (dim > 0 && items > (length - at) / 4 / (size_t)dim))
      return malformed(s, "array dimension");
    items *= (size_t)dim;
  }
  if (put32(out, (uint32_t)ndim) < 0 || put32(out, (uint32_t)flags) < 0 ||
      put32(out, elem->oid) < 0 || rw_buf_put(out, v + 12, (size_t)ndim * 8) < 0)
    return oom(s);
  for (size_t i = 0; i < items; i++)
    if (element(s, elem, op, column, v, length, &at, out, changed) < 0) return -1;
  return at == length ? 0 : malformed(s, "array (bytes after its elements)");
}

static int record_value(rw_stream *s, const rw_type *t, enum rw_op op, const rw_column *column,
                        const unsigned char *v, size_t length, rw_buf *out, int *changed) {
  if (length < 4 || read32(v) != t->count) return malformed(s, "record (its field count)");
  if (put32(out, (uint32_t)t->count) < 0) return oom(s);
  size_t at = 4;
  for (int i = 0; i < t->count; i++) {
    const rw_type *field = &s->spec->types[s->spec->fields[t->first + i]];
    if (length - at < 4) return malformed(s, "record field");
    if (put32(out, field->oid) < 0) return oom(s);
    at += 4;
    if (element(s, field, op, column, v, length, &at, out, changed) < 0) return -1;
  }
  return at == length ? 0 : malformed(s, "record (bytes after its fields)");
}

static int value(rw_stream *s, const rw_type *t, enum rw_op op, const rw_column *column,
                 const unsigned char *v, size_t length, rw_buf *out, int *changed) {
  switch (t->kind) {
  case RW_TEXT:
    return rw_text(s, op, column, t->limit, (const char *)v, length, out, changed) < 0 ? oom(s) : 0;
  case RW_JSON:
    return json_walk(s, op, column, v, length, out, changed);
  case RW_JSONB:
    if (length < 1 || v[0] != 1) return malformed(s, "jsonb (its version)");
    if (put_byte(out, 1) < 0) return oom(s);
    return json_walk(s, op, column, v + 1, length - 1, out, changed);
  case RW_ARRAY:
    return array_value(s, t, op, column, v, length, out, changed);
  case RW_RECORD:
    return record_value(s, t, op, column, v, length, out, changed);
  default:
    return rw_buf_put(out, v, length) < 0 ? oom(s) : 0;
  }
}

/* ---- tuples ------------------------------------------------------------------ */

/* Where the tuple at p[0..n) ends: 1 with *end set, 0 when incomplete,
 * -1 when malformed. */
static int tuple_end(rw_stream *s, const unsigned char *p, size_t n, size_t *end) {
  if (n < 2) return 0;
  int count = (int16_t)((unsigned)p[0] << 8 | p[1]);
  if (count != s->spec->column_count) {
    snprintf(s->error, sizeof s->error,
             "a tuple of %d fields in the COPY stream, where %d columns were chosen", count,
             s->spec->column_count);
    return -1;
  }
  size_t at = 2;
  for (int f = 0; f < count; f++) {
    if (n - at < 4) return 0;
    int32_t length = read32(p + at);
    at += 4;
    if (length == -1) continue;
    if (length < 0) return malformed(s, "field length");
    if ((size_t)length > n - at) return 0;
    at += (size_t)length;
  }
  *end = at;
  return 1;
}

static int tuple(rw_stream *s, const unsigned char *p, rw_buf *out) {
  const rw_spec *spec = s->spec;
  if (!s->column_changed) {
    s->column_changed = calloc((size_t)spec->column_count + 1, sizeof *s->column_changed);
    if (!s->column_changed) return oom(s);
  }
  if (spec->check) {
    s->discard.length = 0;
    out = &s->discard;
  }
  if (rw_buf_put(out, p, 2) < 0) return oom(s);
  size_t at = 2;
  for (int f = 0; f < spec->column_count; f++) {
    const rw_column *column = &spec->columns[f];
    int32_t length = read32(p + at);
    if (length == -1 || column->type < 0) {
      size_t n = 4 + (length > 0 ? (size_t)length : 0);
      if (rw_buf_put(out, p + at, n) < 0) return oom(s);
      at += n;
      continue;
    }
    if (column->op == RW_NULL) {
      if (put32(out, (uint32_t)-1) < 0) return oom(s);
      s->values_changed++;
      s->column_changed[f]++;
      at += 4 + (size_t)length;
      continue;
    }
    int changed = 0;
    if (element(s, &spec->types[column->type], column->op, column, p, at + 4 + (size_t)length, &at,
                out, &changed) < 0)
      return -1;
    s->values_changed += changed;
    if (changed) s->column_changed[f]++;
  }
  return 0;
}

static int header(rw_stream *s, const unsigned char *p, size_t n, size_t *used, rw_buf *out) {
  if (n < HEADER_BYTES) return 0;
  if (memcmp(p, SIGNATURE, sizeof SIGNATURE) != 0) return malformed(s, "header");
  int32_t extension = read32(p + 15);
  if (extension < 0 || extension > HEADER_EXTENSION_MAX) return malformed(s, "header");
  if (n - HEADER_BYTES < (size_t)extension) return 0;
  *used = HEADER_BYTES + (size_t)extension;
  if (rw_buf_put(out, p, *used) < 0) return oom(s);
  s->state = RW_TUPLES;
  return 1;
}

/* Rewrites every complete unit (header, tuple, trailer) of p[0..n);
 * *used is how much was taken. */
static int parse(rw_stream *s, const unsigned char *p, size_t n, size_t *used, rw_buf *out) {
  *used = 0;
  while (*used < n) {
    size_t rest = n - *used, end = 0;
    const unsigned char *q = p + *used;
    if (s->state == RW_DONE) return malformed(s, "stream (data after its trailer)");
    if (s->state == RW_HEADER) {
      int rc = header(s, q, rest, &end, out);
      if (rc <= 0) return rc;
      *used += end;
      continue;
    }
    if (rest >= 2 && q[0] == 0xFF && q[1] == 0xFF) {
      if (rw_buf_put(out, q, 2) < 0) return oom(s);
      s->state = RW_DONE;
      *used += 2;
      continue;
    }
    int rc = tuple_end(s, q, rest, &end);
    if (rc <= 0) return rc;
    if (s->at_free_copied && !memchr(q, '@', end)) {
      if (!s->spec->check && rw_buf_put(out, q, end) < 0) return oom(s);
    } else if (tuple(s, q, out) < 0) {
      return -1;
    }
    *used += end;
  }
  return 0;
}

/* Whether a tuple holding no '@' byte anywhere passes as it is: every
 * chosen column is an ADDRESS or SCAN (both change a value only at an '@')
 * of text, or of an array of a built-in text type (text, varchar, char: its
 * element OID is the same in both databases, while arrays of citext or of
 * domains are walked to write the target's). JSON is walked (an escape can spell '@': \u0040), and
 * so are records and every other operation. Most tuples of a CRM-like table hold no address: they
 * are copied whole instead of field by field. */
static int at_free_copied(const rw_spec *spec) {
  for (int i = 0; i < spec->column_count; i++) {
    const rw_column *column = &spec->columns[i];
    if (column->type < 0) continue;
    if (column->op != RW_ADDRESS && column->op != RW_SCAN) return 0;
    const rw_type *t = &spec->types[column->type];
    if (t->kind == RW_ARRAY) {
      t = &spec->types[t->elem];
      if (t->oid != TEXTOID && t->oid != VARCHAROID && t->oid != BPCHAROID) return 0;
    }
    if (t->kind != RW_TEXT) return 0;
  }
  return 1;
}

void rw_stream_init(rw_stream *s, const rw_spec *spec) {
  memset(s, 0, sizeof *s);
  s->spec = spec;
  s->state = RW_HEADER;
  s->at_free_copied = spec && at_free_copied(spec); /* NULL: a stream not yet used */
}

int rw_feed(rw_stream *s, const char *data, size_t length, rw_buf *out) {
  const unsigned char *p = (const unsigned char *)data;
  size_t n = length, used = 0;
  int carried = s->carry.length > 0;
  if (carried) {
    if (rw_buf_put(&s->carry, data, length) < 0) return oom(s);
    p = (const unsigned char *)s->carry.data;
    n = s->carry.length;
  }
  if (parse(s, p, n, &used, out) < 0) return -1;
  if (carried) {
    memmove(s->carry.data, s->carry.data + used, n - used);
    s->carry.length = n - used;
    return 0;
  }
  return rw_buf_put(&s->carry, p + used, n - used) < 0 ? oom(s) : 0;
}

int rw_finish(rw_stream *s) {
  if (s->state == RW_DONE && s->carry.length == 0) return 0;
  snprintf(s->error, sizeof s->error, "the COPY stream ended before its trailer");
  return -1;
}

void rw_stream_free(rw_stream *s) {
  free(s->column_changed);
  s->column_changed = NULL;
  rw_buf_free(&s->discard);
  rw_buf_free(&s->carry);
  rw_buf_free(&s->scratch);
  rw_buf_free(&s->leaf);
  rw_buf_free(&s->fit);
  rw_buf_free(&s->several);
}

void rw_spec_free(rw_spec *spec) {
  if (!spec) return;
  for (int i = 0; i < spec->column_count; i++)
    free(spec->columns[i].value);
  free(spec->columns);
  free(spec->types);
  free(spec->fields);
  free(spec->domain);
  free(spec);
}

/* ---- Lua glue ------------------------------------------------------------------ */

static const char *const KIND_NAMES[] = {"other", "text", "json", "jsonb", "array", "record", NULL};
static const char *const OP_NAMES[] = {"keep", "address", "scan", "null", "constant", "hash", NULL};

static int name_index(const char *const *names, const char *name) {
  for (int i = 0; name && names[i]; i++)
    if (strcmp(names[i], name) == 0) return i;
  return -1;
}

static int grow(void **array, int count, size_t size) {
  if (count & (count - 1)) return 0; /* not a power of two: room left */
  void *grown = realloc(*array, (size_t)(count ? count * 2 : 4) * size);
  if (!grown) return -1;
  *array = grown;
  return 0;
}

static lua_Integer int_field(lua_State *L, int index, const char *name) {
  lua_getfield(L, index, name);
  lua_Integer v = lua_tointeger(L, -1);
  lua_pop(L, 1);
  return v;
}

/* Adds the type table at the top of the stack to spec->types; returns its
 * index or -1 (msg set). */
static int add_type(lua_State *L, rw_spec *spec, int depth, char *msg) {
  int top = lua_gettop(L);
  if (!lua_istable(L, top) || depth > TYPE_DEPTH_MAX) {
    snprintf(msg, 160, "a rewrite type must be a table, nested at most %d deep", TYPE_DEPTH_MAX);
    return -1;
  }
  lua_getfield(L, top, "kind");
  int kind = name_index(KIND_NAMES, lua_tostring(L, -1));
  lua_pop(L, 1);
  if (kind < 0) {
    snprintf(msg, 160, "a rewrite type's kind must be other, text, json, jsonb, array or record");
    return -1;
  }
  if (grow((void **)&spec->types, spec->type_count, sizeof *spec->types) < 0) goto oom;
  int self = spec->type_count++;
  rw_type t = {.kind = (enum rw_kind)kind, .elem = -1};
  t.oid = (uint32_t)int_field(L, top, "oid");
  t.limit = (int32_t)int_field(L, top, "limit");
  if (kind == RW_ARRAY) {
    lua_getfield(L, top, "elem");
    t.elem = add_type(L, spec, depth + 1, msg);
    lua_pop(L, 1);
    if (t.elem < 0) return -1;
  } else if (kind == RW_RECORD) {
    lua_getfield(L, top, "fields");
    int list = lua_gettop(L), n = lua_istable(L, list) ? (int)lua_rawlen(L, list) : 0;
    int children[64];
    if (n > 64) n = -1;
    for (int i = 0; i < n; i++) {
      lua_rawgeti(L, list, i + 1);
      children[i] = add_type(L, spec, depth + 1, msg);
      lua_pop(L, 1);
      if (children[i] < 0) return -1;
    }
    lua_pop(L, 1);
    if (n < 0) {
      snprintf(msg, 160, "a rewrite record type has more than 64 fields");
      return -1;
    }
    t.first = spec->field_count;
    t.count = n;
    for (int i = 0; i < n; i++) {
      if (grow((void **)&spec->fields, spec->field_count, sizeof *spec->fields) < 0) goto oom;
      spec->fields[spec->field_count++] = children[i];
    }
  }
  spec->types[self] = t;
  return self;
oom:
  snprintf(msg, 160, "out of memory");
  return -1;
}

static int add_column(lua_State *L, rw_spec *spec, int i, char *msg) {
  int top = lua_gettop(L);
  rw_column *c = &spec->columns[i];
  c->type = -1;
  if (!lua_toboolean(L, top)) return 0;
  lua_getfield(L, top, "op");
  int op = name_index(OP_NAMES, lua_tostring(L, -1));
  lua_pop(L, 1);
  if (op < 0) {
    snprintf(msg, 160, "column %d: op must be keep, address, scan, null, constant or hash", i + 1);
    return -1;
  }
  c->op = (enum rw_op)op;
  lua_getfield(L, top, "value");
  size_t n = 0;
  const char *v = lua_tolstring(L, -1, &n);
  if (v) {
    c->value = malloc(n ? n : 1);
    if (!c->value) return lua_pop(L, 1), snprintf(msg, 160, "out of memory"), -1;
    memcpy(c->value, v, n);
    c->value_length = n;
  }
  lua_pop(L, 1);
  if (c->op == RW_CONSTANT && !v) {
    snprintf(msg, 160, "column %d: constant needs a value", i + 1);
    return -1;
  }
  lua_getfield(L, top, "type");
  c->type = add_type(L, spec, 0, msg);
  lua_pop(L, 1);
  return c->type < 0 ? -1 : 0;
}

rw_spec *rw_spec_from_lua(lua_State *L, int index, char *msg) {
  index = lua_absindex(L, index);
  rw_spec *spec = calloc(1, sizeof *spec);
  if (!spec) return snprintf(msg, 160, "out of memory"), NULL;
  lua_getfield(L, index, "domain");
  size_t dl = 0;
  const char *domain = lua_tolstring(L, -1, &dl);
  if (!domain || !mail_sandbox_domain_valid(domain, dl)) {
    lua_pop(L, 1);
    snprintf(msg, 160, "rewrite.domain must be a mail domain");
    goto fail;
  }
  while (dl && (domain[0] == ' ' || (domain[0] >= '\t' && domain[0] <= '\r')))
    domain++, dl--;
  while (dl && (domain[dl - 1] == ' ' || (domain[dl - 1] >= '\t' && domain[dl - 1] <= '\r')))
    dl--;
  spec->domain = malloc(dl);
  if (!spec->domain) {
    lua_pop(L, 1);
    goto fail_oom;
  }
  for (size_t i = 0; i < dl; i++)
    spec->domain[i] = lower(domain[i]);
  spec->domain_length = dl;
  lua_pop(L, 1);
  lua_getfield(L, index, "check");
  spec->check = lua_toboolean(L, -1);
  lua_pop(L, 1);
  lua_getfield(L, index, "columns");
  int list = lua_gettop(L), n = lua_istable(L, list) ? (int)lua_rawlen(L, list) : -1;
  if (n < 0 || n > 1664) {
    lua_pop(L, 1);
    snprintf(msg, 160, "rewrite.columns must list the copied columns (at most 1664)");
    goto fail;
  }
  spec->columns = calloc((size_t)(n ? n : 1), sizeof *spec->columns);
  if (!spec->columns) {
    lua_pop(L, 1);
    goto fail_oom;
  }
  spec->column_count = n;
  for (int i = 0; i < n; i++) {
    lua_rawgeti(L, list, i + 1);
    int rc = add_column(L, spec, i, msg);
    lua_pop(L, 1);
    if (rc < 0) {
      lua_pop(L, 1);
      goto fail;
    }
  }
  lua_pop(L, 1);
  return spec;
fail_oom:
  snprintf(msg, 160, "out of memory");
fail:
  rw_spec_free(spec);
  return NULL;
}

/* The fit rule alone: text taken as both the original and the rewritten
 * value, cut to limit characters the way the stream cuts a value too long
 * for its column. */
static int fit_text(rw_stream *s, int32_t limit, const char *text, size_t length, rw_buf *out) {
  if (rw_buf_put(out, text, length) < 0) return -1;
  if (limit <= 0 || utf8_chars(text, length) <= (size_t)limit) return 0;
  return fit(s, limit, text, length, out, 0);
}

/* copy.rewrite_text(op, text, domain[, limit[, constant]]) -> text: one
 * text leaf through the transform, as the stream applies it; op "fit": the
 * fit rule alone (sql_checks' fallback for a value a CHECK refuses). */
static int lua_rewrite_text(lua_State *L) {
  const char *name = luaL_checkstring(L, 1);
  int fit_only = strcmp(name, "fit") == 0;
  int op = fit_only ? RW_KEEP : name_index(OP_NAMES, name);
  luaL_argcheck(L, op >= 0 && op != RW_NULL, 1, "keep, address, scan, constant, hash or fit");
  if (lua_isnoneornil(L, 2)) return lua_pushnil(L), 1;
  size_t length, cl = 0;
  const char *text = luaL_checklstring(L, 2, &length);
  luaL_checkstring(L, 3);
  lua_Integer limit = luaL_optinteger(L, 4, 0);
  const char *constant = luaL_optlstring(L, 5, "", &cl);
  lua_createtable(L, 0, 2);
  lua_pushvalue(L, 3);
  lua_setfield(L, -2, "domain");
  lua_newtable(L);
  lua_setfield(L, -2, "columns");
  char msg[160];
  rw_spec *spec = rw_spec_from_lua(L, -1, msg);
  if (!spec) return luaL_error(L, "%s", msg);
  rw_column column = {
      .op = (enum rw_op)op, .type = -1, .value = (char *)constant, .value_length = cl};
  rw_stream s;
  rw_stream_init(&s, spec);
  rw_buf out = {0};
  int changed = 0;
  int rc = fit_only
               ? fit_text(&s, (int32_t)limit, text, length, &out)
               : rw_text(&s, (enum rw_op)op, &column, (int32_t)limit, text, length, &out, &changed);
  if (rc == 0) lua_pushlstring(L, out.data ? out.data : "", out.length);
  rw_buf_free(&out);
  rw_stream_free(&s);
  rw_spec_free(spec);
  return rc == 0 ? 1 : luaL_error(L, "out of memory");
}

/* copy.rewrite_stream(spec, bytes[, piece]) -> bytes, values changed: a
 * whole binary COPY stream through the rewrite, fed in pieces of `piece`
 * bytes (default all at once). Raises what the stream's error says. */
static int lua_rewrite_stream(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  size_t length;
  const char *data = luaL_checklstring(L, 2, &length);
  lua_Integer piece = luaL_optinteger(L, 3, (lua_Integer)length);
  if (piece < 1) piece = 1;
  char msg[160];
  rw_spec *spec = rw_spec_from_lua(L, 1, msg);
  if (!spec) return luaL_error(L, "%s", msg);
  rw_stream s;
  rw_stream_init(&s, spec);
  rw_buf out = {0};
  int rc = 0;
  for (size_t at = 0; rc == 0 && at < length; at += (size_t)piece) {
    size_t n = length - at < (size_t)piece ? length - at : (size_t)piece;
    rc = rw_feed(&s, data + at, n, &out);
  }
  if (rc == 0) rc = rw_finish(&s);
  if (rc == 0) {
    lua_pushlstring(L, out.data ? out.data : "", out.length);
    lua_pushinteger(L, s.values_changed);
  } else {
    snprintf(msg, sizeof msg, "%s", s.error);
  }
  rw_buf_free(&out);
  rw_stream_free(&s);
  rw_spec_free(spec);
  return rc == 0 ? 2 : luaL_error(L, "%s", msg);
}

static const luaL_Reg rewrite_funcs[] = {
    {"rewrite_text", lua_rewrite_text}, {"rewrite_stream", lua_rewrite_stream}, {NULL, NULL}};

void rw_register(lua_State *L) {
  luaL_setfuncs(L, rewrite_funcs, 0);
}
