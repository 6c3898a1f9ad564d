/* fuzz_copy_rewrite.c: libFuzzer target for the binary COPY stream rewrite
 * (bindings/copy_rewrite.c). Input: one byte choosing the operation, one
 * choosing the piece size the stream is fed in (the carry of incomplete
 * tuples), one choosing whether the PGCOPY header is put in front (so the
 * fuzzer spends its time in tuples) and which spec, then the stream. One
 * spec has one column of each kind: varchar(12), json, jsonb, text[][], a
 * record (text, int, varchar(20)[]), an opaque int; the other only text,
 * varchar(12) and text[] (and an int passed untouched), where address and
 * scan copy a tuple without '@' whole. Checks: no crash and no read past a
 * buffer (ASan), and what the rewrite accepts re-parses: its output through
 * the same rewrite succeeds, and for address and scan it comes out the same
 * (a rewritten value is at the domain: rewriting it again leaves it alone);
 * a tuple copied whole gives the bytes walking it field by field gives. */
#include <stdlib.h>
#include <string.h>

#include "copy_rewrite.h"

static const char HEADER[19] = {'P',  'G', 'C', 'O', 'P', 'Y', '\n', '\377', '\r', '\n',
                                '\0', 0,   0,   0,   0,   0,   0,    0,      0};

static rw_type types[] = {
    {RW_TEXT, 1043, 12, -1, 0, 0},   /* 0: varchar(12) */
    {RW_JSON, 114, 0, -1, 0, 0},     /* 1 */
    {RW_JSONB, 3802, 0, -1, 0, 0},   /* 2 */
    {RW_ARRAY, 1009, 0, 4, 0, 0},    /* 3: text[] */
    {RW_TEXT, 25, 0, -1, 0, 0},      /* 4: text */
    {RW_RECORD, 70000, 0, -1, 0, 3}, /* 5: (text, int, varchar(20)[]) */
    {RW_OPAQUE, 23, 0, -1, 0, 0},    /* 6: int */
    {RW_ARRAY, 1015, 0, 8, 0, 0},    /* 7: varchar(20)[] */
    {RW_TEXT, 1043, 20, -1, 0, 0},   /* 8: varchar(20) */
};
static int fields[] = {4, 6, 7};

/* walk: every tuple field by field (no tuple copied whole) */
static int run(const rw_spec *spec, const char *data, size_t size, size_t piece, rw_buf *out,
               int walk) {
  rw_stream s;
  rw_stream_init(&s, spec);
  if (walk) s.at_free_copied = 0;
  int rc = 0;
  for (size_t at = 0; rc == 0 && at < size; at += piece)
    rc = rw_feed(&s, data + at, size - at < piece ? size - at : piece, out);
  if (rc == 0) rc = rw_finish(&s);
  rw_stream_free(&s);
  return rc;
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size) {
  if (size < 3) return 0;
  static const enum rw_op ops[] = {RW_KEEP, RW_ADDRESS, RW_SCAN, RW_NULL, RW_CONSTANT, RW_HASH};
  enum rw_op op = ops[data[0] % 6];
  size_t piece = 1 + data[1] % 64;
  int header = data[2] & 1, text_only = data[2] & 2;
  data += 3;
  size -= 3;
  rw_column columns[6];
  for (int i = 0; i < 6; i++) {
    columns[i].op = op;
    columns[i].type = text_only ? (int[]){0, 4, 3, 4, 0, -1}[i] : (int[]){0, 1, 2, 3, 5, 6}[i];
    columns[i].value = "c@x.no";
    columns[i].value_length = 6;
  }
  rw_spec spec = {.domain = "mailinator.com",
                  .domain_length = 14,
                  .types = types,
                  .type_count = 9,
                  .fields = fields,
                  .field_count = 3,
                  .columns = columns,
                  .column_count = 6};
  /* an exact-size heap copy, so ASan catches any read past the input */
  size_t total = size + (header ? sizeof HEADER : 0);
  char *input = malloc(total ? total : 1);
  if (!input) abort();
  if (header) memcpy(input, HEADER, sizeof HEADER);
  if (size) memcpy(input + (header ? sizeof HEADER : 0), data, size);
  rw_buf out = {0}, again = {0}, walked = {0};
  if (run(&spec, input, total, piece, &out, 0) == 0) {
    if (run(&spec, out.data, out.length, piece, &again, 0) != 0) abort();
    if ((op == RW_ADDRESS || op == RW_SCAN) &&
        (again.length != out.length || memcmp(again.data, out.data, out.length) != 0))
      abort();
    if (run(&spec, input, total, piece, &walked, 1) != 0 || walked.length != out.length ||
        memcmp(walked.data, out.data, out.length) != 0)
      abort();
  }
  rw_buf_free(&out);
  rw_buf_free(&again);
  rw_buf_free(&walked);
  free(input);
  return 0;
}
