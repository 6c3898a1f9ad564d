/* copy_rewrite.h: value transforms applied inside a binary COPY stream
 * (copy_rewrite.c), for sql.copy_database{ rewrite = ... } (docs/modules.md).
 *
 * A stream is the bytes of COPY ... TO STDOUT (FORMAT binary): the PGCOPY
 * header, then per tuple an int16 field count and per field an int32
 * length (-1: NULL) and that many bytes, then the int16 -1 trailer. It may
 * arrive cut anywhere: rw_feed keeps an incomplete tuple until the rest
 * comes. Each chosen column's value is walked by its type (rw_type): text
 * (text, varchar, char, citext, and domains over them: raw UTF-8), json
 * (text), jsonb (version byte 1, then text), arrays (any dimension) and
 * composites of these; every text leaf is transformed by the column's
 * operation and the value re-encoded, with the target database's type OIDs
 * written where the wire format carries them (array element types, record
 * field types). Nothing here calls Lua or libpq. */
#ifndef WF_COPY_REWRITE_H
#define WF_COPY_REWRITE_H

#include <stddef.h>
#include <stdint.h>

enum rw_kind { RW_OPAQUE, RW_TEXT, RW_JSON, RW_JSONB, RW_ARRAY, RW_RECORD };

/* KEEP walks the value only to write the target's OIDs; ADDRESS is
 * mail_sandbox_address on every text leaf (mail.h), then SCAN over its
 * result when the leaf holds more than one '@' (several addresses:
 * mail_sandbox_address rewrites only the last); SCAN rewrites every
 * "@domain" inside the text (the free-text rule of workflows/lib/
 * addresses.lua); NULL makes the whole value NULL; CONSTANT and HASH replace
 * every text leaf (in JSON: string values, not object keys) by the constant
 * or by 16 hex digits of FNV-1a 64 of the leaf's bytes. */
enum rw_op { RW_KEEP, RW_ADDRESS, RW_SCAN, RW_NULL, RW_CONSTANT, RW_HASH };

typedef struct rw_type {
  enum rw_kind kind;
  uint32_t oid;     /* the target's OID of the declared type (a domain's own) */
  int32_t limit;    /* RW_TEXT: most characters it may hold (0: no limit) */
  int elem;         /* RW_ARRAY: index of the element type in rw_spec.types */
  int first, count; /* RW_RECORD: its field types are fields[first .. first+count) */
} rw_type;

typedef struct rw_column {
  enum rw_op op;
  int type; /* index in rw_spec.types; -1: the value passes untouched */
  char *value;
  size_t value_length; /* RW_CONSTANT */
} rw_column;

typedef struct rw_spec {
  char *domain; /* trimmed, ASCII lower-case (addresses.normal_domain) */
  size_t domain_length;
  rw_type *types;
  int type_count;
  int *fields;
  int field_count;
  rw_column *columns;
  int column_count;
  int check; /* only count: tuples are dropped (header and trailer kept) */
} rw_spec;

typedef struct rw_buf {
  char *data;
  size_t length, capacity;
} rw_buf;

enum rw_state { RW_HEADER, RW_TUPLES, RW_DONE };

typedef struct rw_stream {
  const rw_spec *spec;
  enum rw_state state;
  rw_buf carry;       /* the start of a tuple still incomplete */
  rw_buf scratch;     /* decoded JSON strings */
  rw_buf leaf;        /* a JSON string's transform */
  rw_buf fit;         /* a transformed leaf too long for its column */
  rw_buf several;     /* ADDRESS: mail_sandbox_address of a leaf with several '@' */
  rw_buf discard;     /* check: where tuples go */
  int at_free_copied; /* a tuple without an '@' byte cannot change (rw_stream_init) */
  long long values_changed;
  long long *column_changed; /* per column (calloc'd at the first tuple walked) */
  char error[160];
} rw_stream;

/* Growable buffer; every function returns 0, or -1 when out of memory. */
int rw_buf_reserve(rw_buf *buf, size_t extra);
int rw_buf_put(rw_buf *buf, const void *data, size_t length);
void rw_buf_free(rw_buf *buf);

void rw_spec_free(rw_spec *spec);

/* Starts a stream over spec (kept, not copied). */
void rw_stream_init(rw_stream *stream, const rw_spec *spec);
/* Appends to out the rewrite of every complete tuple in carry + data.
 * Returns 0, or -1 with stream->error set (malformed input, or a tuple whose
 * field count is not the spec's). */
int rw_feed(rw_stream *stream, const char *data, size_t length, rw_buf *out);
/* The stream ended: 0 if it ended on its trailer, else -1 with error. */
int rw_finish(rw_stream *stream);
void rw_stream_free(rw_stream *stream);

/* One text leaf through op, with the fit rule when limit > 0 (docs/
 * modules.md): appended to out; *changed is set when it differs. Returns
 * 0 or -1 (out of memory). */
int rw_text(rw_stream *stream, enum rw_op op, const rw_column *column, int32_t limit,
            const char *text, size_t length, rw_buf *out, int *changed);

/* The free-text scan alone (RW_SCAN): appends the rewrite of text to out;
 * domain must be normal. Returns 0 or -1 (out of memory). */
int rw_scan_text(const char *text, size_t length, const char *domain, size_t domain_length,
                 rw_buf *out);

struct lua_State;
/* spec_from_lua(L, index): the rewrite spec of a COPY action from its Lua
 * table (sql_copy.c's pool:add, docs/modules.md); NULL with msg (size 160)
 * filled when the table is malformed or memory runs out. */
rw_spec *rw_spec_from_lua(struct lua_State *L, int index, char *msg);
/* Adds rewrite_text and rewrite_stream (tests, bench) to the module table on
 * top of the stack. */
void rw_register(struct lua_State *L);

/* FNV-1a 64 of the bytes, as 16 lower-case hex digits in out[16]. */
void rw_hash_hex(const char *text, size_t length, char out[16]);

#endif
