/* test_copy_rewrite.c: the COPY stream rewrite (bindings/copy_rewrite.c):
 * the free-text scan, the fit rule, whole-value addresses holding several,
 * JSON strings, tuples without '@' passed whole, a stream fed one byte at a
 * time (the carry of incomplete tuples), and malformed streams refused. */
#include <stdint.h>
#include <string.h>

#include "copy_rewrite.h"
#include "tap.h"

static rw_type types[] = {{RW_TEXT, 25, 0, -1, 0, 0},
                          {RW_TEXT, 1043, 30, -1, 0, 0},
                          {RW_JSONB, 3802, 0, -1, 0, 0},
                          {RW_ARRAY, 1009, 0, 0, 0, 0}};
static rw_column columns[] = {{RW_SCAN, 0, NULL, 0},
                              {RW_ADDRESS, 1, NULL, 0},
                              {RW_SCAN, 2, NULL, 0},
                              {RW_ADDRESS, 3, NULL, 0}};
static rw_spec spec = {.domain = "mailinator.com",
                       .domain_length = 14,
                       .types = types,
                       .type_count = 4,
                       .columns = columns,
                       .column_count = 4};

static void put32(rw_buf *b, int32_t value) {
  uint32_t v = (uint32_t)value;
  unsigned char x[4] = {(unsigned char)(v >> 24), (unsigned char)(v >> 16), (unsigned char)(v >> 8),
                        (unsigned char)v};
  rw_buf_put(b, x, 4);
}

static void field(rw_buf *b, const char *text, size_t n) {
  put32(b, (int32_t)n);
  rw_buf_put(b, text, n);
}

static const char *scan(const char *text) {
  static rw_buf out;
  out.length = 0;
  rw_scan_text(text, strlen(text), "mailinator.com", 14, &out);
  rw_buf_put(&out, "", 1);
  return out.data;
}

static const char *leaf(enum rw_op op, int32_t limit, const char *text) {
  static rw_buf out;
  rw_stream s;
  rw_stream_init(&s, &spec);
  out.length = 0;
  int changed = 0;
  rw_column c = {op, -1, NULL, 0};
  rw_text(&s, op, &c, limit, text, strlen(text), &out, &changed);
  rw_buf_put(&out, "", 1);
  rw_stream_free(&s);
  return out.data;
}

/* A one-column stream of the given values (NULL-terminated) through op on
 * type t, at once; returns the values changed (-1: refused), out filled. */
static long long one_column(int t, enum rw_op op, int check, const char *const *values,
                            rw_buf *out) {
  rw_column c = {op, t, NULL, 0};
  rw_spec one = spec;
  one.columns = &c;
  one.column_count = 1;
  one.check = check;
  rw_buf b = {0};
  rw_buf_put(&b, "PGCOPY\n\377\r\n\0\0\0\0\0\0\0\0\0", 19);
  for (int i = 0; values[i]; i++) {
    unsigned char count[2] = {0, 1};
    rw_buf_put(&b, count, 2);
    field(&b, values[i], strlen(values[i]));
  }
  rw_buf_put(&b, "\377\377", 2);
  rw_stream s;
  rw_stream_init(&s, &one);
  out->length = 0;
  int rc = rw_feed(&s, b.data, b.length, out) == 0 && rw_finish(&s) == 0;
  long long changed = rc ? s.values_changed : -1;
  rw_stream_free(&s);
  rw_buf_free(&b);
  return changed;
}

/* Whole-value addresses holding several: the stream leaves no production
 * address (mail_sandbox_address, then the scan), counted as changed. */
static void several_addresses(void) {
  is_str(leaf(RW_ADDRESS, 0, "a@x.no, b@Y.no"), "a_x.no@mailinator.com, b_y.no@mailinator.com",
         "address, several: every one rewritten, not only the last");
  is_str(leaf(RW_ADDRESS, 0, " A@X.NO;b@mailinator.com\t"),
         "A_x.no@mailinator.com;b@mailinator.com",
         "address, several: trimmed, the last one at the domain kept");
  is_str(leaf(RW_ADDRESS, 0, "a@x.no b_y.no@MAILINATOR.COM"),
         "a_x.no@mailinator.com b_y.no@MAILINATOR.COM", "address, several: space separated");
  is_str(leaf(RW_ADDRESS, 0, "a@b@c.no"), "a_b@mailinator.com_c.no@mailinator.com",
         "address, two '@' in one address: the scan's cut at every '@'");
  is_str(leaf(RW_ADDRESS, 0, "x@mailinator.com, y@mailinator.com"),
         "x@mailinator.com, y@mailinator.com", "address, several already at the domain: unchanged");
  is_str(leaf(RW_ADDRESS, 0, "Kari <Kari@Firma.NO>"), "Kari <Kari_firma.no>@mailinator.com",
         "address, one '@': mail_sandbox_address alone (its domain part is all after the '@')");
  char want[64] = "a_x_no_m.";
  rw_hash_hex("a@x.no, b@y.no", 14, want + 9);
  strcpy(want + 25, "@mailinator.com");
  is_str(leaf(RW_ADDRESS, 40, "a@x.no, b@y.no"), want,
         "address, several, too long: the fit rule over the final value");

  rw_buf out = {0};
  const char *texts[] = {"a@x.no, b@mailinator.com", "x@mailinator.com y@mailinator.com",
                         "single@mailinator.com", NULL};
  is_int(one_column(0, RW_ADDRESS, 1, texts, &out), 1,
         "check mode counts a value only the scan changes (its last address at the domain)");
  const char *json[] = {"\001{\"to\": \"a@x.no; b@y.no\"}", NULL};
  one_column(2, RW_ADDRESS, 0, json, &out);
  const char *j = "{\"to\": \"a_x.no@mailinator.com; b_y.no@mailinator.com\"}";
  ok(memmem(out.data, out.length, j, strlen(j)) != NULL,
     "jsonb string leaf with several addresses");
  rw_buf_free(&out);
}

/* A stream of tuples of three fields: int4 (passed untouched), text (scan),
 * an array (address, of elem_oid) of one element; texts[i][0] is the text,
 * texts[i][1] the element, ints[i] the int4. */
static rw_buf three_fields(int n, const char *const texts[][2], const int32_t *ints,
                           int32_t elem_oid) {
  rw_buf b = {0};
  rw_buf_put(&b, "PGCOPY\n\377\r\n\0\0\0\0\0\0\0\0\0", 19);
  for (int i = 0; i < n; i++) {
    unsigned char count[2] = {0, 3};
    rw_buf_put(&b, count, 2);
    put32(&b, 4);
    put32(&b, ints[i]);
    field(&b, texts[i][0], strlen(texts[i][0]));
    rw_buf arr = {0};
    put32(&arr, 1);
    put32(&arr, 0);
    put32(&arr, elem_oid);
    put32(&arr, 1);
    put32(&arr, 1);
    field(&arr, texts[i][1], strlen(texts[i][1]));
    field(&b, arr.data, arr.length);
    rw_buf_free(&arr);
  }
  rw_buf_put(&b, "\377\377", 2);
  return b;
}

/* Tuples with no '@' byte pass whole when every chosen column is an
 * address or scan of text or of an array of a built-in text type; an '@'
 * in a binary field only sends the tuple the long way; arrays of other
 * element types (citext, a domain: OIDs that differ between databases)
 * and JSON are always walked. */
static void at_free_tuples(void) {
  rw_type t[] = {{RW_TEXT, 25, 0, -1, 0, 0},
                 {RW_ARRAY, 1009, 0, 0, 0, 0},
                 {RW_TEXT, 90001, 0, -1, 0, 0},
                 {RW_ARRAY, 90002, 0, 2, 0, 0}};
  rw_column c[] = {{RW_KEEP, -1, NULL, 0}, {RW_SCAN, 0, NULL, 0}, {RW_ADDRESS, 1, NULL, 0}};
  rw_spec three = spec;
  three.types = t;
  three.type_count = 4;
  three.columns = c;
  three.column_count = 3;
  const char *texts[][2] = {
      {"no address here", "nor here"}, {"plain", "text"}, {"mail k@X.no", "x@Y.no"}};
  const int32_t ints[] = {7, 0x40404040, 9};
  rw_buf in = three_fields(2, texts, ints, 25), out = {0};
  rw_stream s;
  rw_stream_init(&s, &three);
  ok(s.at_free_copied, "address and scan of text and text[]: tuples without '@' pass whole");
  ok(rw_feed(&s, in.data, in.length, &out) == 0 && rw_finish(&s) == 0 && s.values_changed == 0 &&
         out.length == in.length && memcmp(out.data, in.data, in.length) == 0,
     "tuples without an address come out as they went in (an '@' byte in an int4 too)");
  rw_stream_free(&s);
  rw_buf_free(&in);
  in = three_fields(3, texts, ints, 25);
  rw_stream_init(&s, &three);
  out.length = 0;
  ok(rw_feed(&s, in.data, in.length, &out) == 0 && rw_finish(&s) == 0, "the stream rewritten");
  is_int(s.values_changed, 2, "only the third tuple's two values changed");
  ok(memmem(out.data, out.length, "k_x.no@mailinator.com", 21) != NULL &&
         memmem(out.data, out.length, "x_y.no@mailinator.com", 21) != NULL,
     "the tuple with addresses is rewritten");
  rw_stream_free(&s);
  rw_buf_free(&in);

  c[2].type = 3; /* an array of citext: its element OID is the target's */
  in = three_fields(1, texts, ints, 12345);
  rw_stream_init(&s, &three);
  ok(!s.at_free_copied, "an array of a type that is not built in is always walked");
  out.length = 0;
  ok(rw_feed(&s, in.data, in.length, &out) == 0 && rw_finish(&s) == 0,
     "a tuple without '@' through an array of citext");
  unsigned char target_oid[4] = {0, 1, 0x5f, 0x91}; /* 90001 */
  ok(memmem(out.data, out.length, target_oid, 4) != NULL && s.values_changed == 0,
     "its element OID written as the target's though nothing changed");
  rw_stream_free(&s);
  rw_buf_free(&in);

  rw_stream_init(&s, NULL); /* the pool's idle stream: no spec yet */
  ok(!s.at_free_copied, "a stream without a spec (the pool's, between copies)");
  rw_stream_free(&s);
  rw_column json[] = {{RW_SCAN, 2, NULL, 0}};
  rw_spec with_json = spec;
  with_json.columns = json;
  with_json.column_count = 1;
  rw_stream_init(&s, &with_json);
  ok(!s.at_free_copied, "jsonb is always walked (\\u0040 spells an '@')");
  rw_stream_free(&s);
  rw_buf_free(&out);
}

/* A stream of one tuple: the given values for the four columns. */
static rw_buf stream(const char *const values[4], const size_t lengths[4]) {
  rw_buf b = {0};
  rw_buf_put(&b, "PGCOPY\n\377\r\n\0\0\0\0\0\0\0\0\0", 19);
  unsigned char count[2] = {0, 4};
  rw_buf_put(&b, count, 2);
  for (int i = 0; i < 4; i++)
    field(&b, values[i], lengths[i]);
  rw_buf_put(&b, "\377\377", 2);
  return b;
}

int main(void) {
  is_str(scan("ring Ole@Acme.NO or kari@x.no."),
         "ring Ole_acme.no@mailinator.com or kari_x.no@mailinator.com.", "scan: every address");
  is_str(scan("a@b@c"), "a_b@mailinator.com_c@mailinator.com", "scan: cut at every @");
  is_str(scan("x@MAILINATOR.com y@mailinator.com.evil"),
         "x@MAILINATOR.com y_mailinator.com.evil@mailinator.com",
         "scan: the domain kept in its case, a longer domain rewritten");
  is_str(scan("@@ b@c..d e@"), "@@ b_c@mailinator.com..d e@", "scan: no domain part, no change");
  is_str(leaf(RW_ADDRESS, 0, " John@Company.COM "), "John_company.com@mailinator.com",
         "address: mail_sandbox_address");
  is_str(leaf(RW_ADDRESS, 40, "averyverylongname@company.example.com"),
         "averyver.d7605c9815cfc2f1@mailinator.com", "fit: prefix . hash @ domain");
  is_str(leaf(RW_ADDRESS, 20, "averyverylongname@company.example.com"), "d7605@mailinator.com",
         "fit: hash cut to fit @ domain");
  is_str(leaf(RW_ADDRESS, 10, "averyverylongname@company.example.com"), "d7605c9815",
         "fit: below domain + 2, the hash alone (no address)");
  is_str(leaf(RW_SCAN, 30, "kari@firma.no                 "), "kari_firma.no@mailinator.com  ",
         "fit: spaces past the limit dropped");
  is_str(leaf(RW_HASH, 0, "x"), "af63f54c86021707", "hash: FNV-1a 64");
  several_addresses();
  at_free_tuples();

  const char *values[4] = {"mail k@X.no", "averyverylongname@company.example.com",
                           "\001{\"a\\u0040b.no\": [\"c@d.no\", \"\\ud800\"]}", NULL};
  rw_buf arr = {0};
  put32(&arr, 1);
  put32(&arr, 1);
  put32(&arr, 25);
  put32(&arr, 2);
  put32(&arr, 1);
  field(&arr, "x@Y.no", 6);
  put32(&arr, -1);
  values[3] = arr.data;
  size_t lengths[4] = {strlen(values[0]), strlen(values[1]), strlen(values[2]), arr.length};
  rw_buf in = stream(values, lengths), whole = {0}, bytewise = {0};
  rw_stream s;
  rw_stream_init(&s, &spec);
  ok(rw_feed(&s, in.data, in.length, &whole) == 0 && rw_finish(&s) == 0, "a stream at once");
  is_int(s.values_changed, 4, "four values changed");
  rw_stream_free(&s);
  rw_stream_init(&s, &spec);
  int rc = 0;
  for (size_t i = 0; i < in.length && rc == 0; i++)
    rc = rw_feed(&s, in.data + i, 1, &bytewise);
  ok(rc == 0 && rw_finish(&s) == 0 && bytewise.length == whole.length &&
         memcmp(bytewise.data, whole.data, whole.length) == 0,
     "the same stream one byte at a time gives the same bytes");
  rw_stream_free(&s);
  const char *json = "{\"a_b.no@mailinator.com\": [\"c_d.no@mailinator.com\", \"\\ud800\"]}";
  ok(memmem(whole.data, whole.length, json, strlen(json)) != NULL,
     "jsonb: an escaped key decoded and rewritten, a lone surrogate kept escaped");
  ok(memmem(whole.data, whole.length, "x_y.no@mailinator.com", 21) != NULL, "array element");

  rw_stream_init(&s, &spec);
  rw_buf out = {0};
  ok(rw_feed(&s, in.data, in.length - 3, &out) == 0 && rw_finish(&s) < 0 &&
         strstr(s.error, "ended before") != NULL,
     "a cut stream is refused at its end: %s", s.error);
  rw_stream_free(&s);
  in.data[19 + 2 + 4 + lengths[0] + 2] = 0x7f; /* the second field's length, now huge */
  rw_stream_init(&s, &spec);
  out.length = 0;
  ok(rw_feed(&s, in.data, in.length, &out) == 0 && rw_finish(&s) < 0,
     "a length past the end waits for more, then is refused");
  rw_stream_free(&s);
  rw_buf_free(&in);
  rw_buf_free(&whole);
  rw_buf_free(&bytewise);
  rw_buf_free(&out);
  rw_buf_free(&arr);
  return tap_done();
}
