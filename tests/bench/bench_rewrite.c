/* bench_rewrite.c: micro-benchmark of the COPY stream rewrite on one core
 * (bindings/copy_rewrite.c; not a test). Generates a binary COPY stream of
 * ROWS tuples shaped like the lab's person table (id int, email text, notes
 * text with two addresses, cc text[], extra jsonb), then feeds it tuple by
 * tuple (as the pool does) through: a plain copy (what the pool does without
 * a rewrite), and the rewrite (email: address, the rest: scan), ROUNDS times
 * each, and prints the median MB/s of stream and of text per second.
 *   build/bench/bench_rewrite [ROWS [ROUNDS]] */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "copy_rewrite.h"

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void put32(rw_buf *b, int32_t value) {
  uint32_t v = (uint32_t)value;
  unsigned char x[4] = {(unsigned char)(v >> 24), (unsigned char)(v >> 16), (unsigned char)(v >> 8),
                        (unsigned char)v};
  rw_buf_put(b, x, 4);
}

static void field(rw_buf *b, const char *text, size_t *text_bytes) {
  size_t n = strlen(text);
  put32(b, (int32_t)n);
  rw_buf_put(b, text, n);
  *text_bytes += n;
}

/* One tuple per row; offsets[i] is where row i starts. */
static rw_buf generate(long rows, size_t **offsets, size_t *text_bytes) {
  rw_buf b = {0};
  static const char header[19] = "PGCOPY\n\377\r\n";
  rw_buf_put(&b, header, 19);
  *offsets = malloc(sizeof **offsets * (size_t)(rows + 2));
  char text[512];
  for (long i = 0; i < rows; i++) {
    (*offsets)[i] = b.length;
    unsigned char count[2] = {0, 5};
    rw_buf_put(&b, count, 2);
    put32(&b, 4);
    put32(&b, (int32_t)i);
    snprintf(text, sizeof text, "Person.%ld@Company%ld.Example.COM", i, i % 5000);
    field(&b, text, text_bytes);
    snprintf(text, sizeof text,
             "Met on %ld, prefers mail to ole.hansen%ld@acme.no; assistant kari@acme.no. Follow up "
             "next quarter about the renewal of contract %ld and the invoices.",
             i, i, i * 7);
    field(&b, text, text_bytes);
    /* text[] {a, b}: ndim 1, no nulls, text, dim 2 lbound 1, two elements */
    rw_buf arr = {0};
    put32(&arr, 1);
    put32(&arr, 0);
    put32(&arr, 25);
    put32(&arr, 2);
    put32(&arr, 1);
    size_t ignored = 0;
    snprintf(text, sizeof text, "cc%ld@partner.no", i);
    field(&arr, text, &ignored);
    field(&arr, "boss@acme.no", &ignored);
    put32(&b, (int32_t)arr.length);
    rw_buf_put(&b, arr.data, arr.length);
    *text_bytes += arr.length;
    rw_buf_free(&arr);
    snprintf(
        text, sizeof text,
        "\001{\"notes\": \"ring kari%ld@firma.no\", \"contact\": {\"mail\": \"p%ld@kunde.no\", "
        "\"phone\": \"+47 %ld\"}}",
        i, i, 90000000 + i);
    field(&b, text, text_bytes);
  }
  (*offsets)[rows] = b.length;
  unsigned char trailer[2] = {0xFF, 0xFF};
  rw_buf_put(&b, trailer, 2);
  (*offsets)[rows + 1] = b.length;
  return b;
}

static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
  long rows = argc > 1 ? atol(argv[1]) : 1000000;
  int rounds = argc > 2 ? atoi(argv[2]) : 5;
  if (rounds < 1 || rounds > 99) rounds = 5;
  size_t *offsets, text_bytes = 0;
  rw_buf stream = generate(rows, &offsets, &text_bytes);
  rw_type types[] = {
      {RW_TEXT, 25, 0, -1, 0, 0}, {RW_ARRAY, 1009, 0, 0, 0, 0}, {RW_JSONB, 3802, 0, -1, 0, 0}};
  rw_column columns[] = {{RW_KEEP, -1, NULL, 0},
                         {RW_ADDRESS, 0, NULL, 0},
                         {RW_SCAN, 0, NULL, 0},
                         {RW_SCAN, 1, NULL, 0},
                         {RW_SCAN, 2, NULL, 0}};
  rw_spec spec = {.domain = "mailinator.com",
                  .domain_length = 14,
                  .types = types,
                  .type_count = 3,
                  .columns = columns,
                  .column_count = 5};
  double plain[99], rewrite[99];
  long long changed = 0;
  for (int r = 0; r < rounds; r++) {
    rw_buf out = {0};
    double t0 = now();
    for (long i = -1; i <= rows; i++) {
      size_t from = i < 0 ? 0 : offsets[i], to = i < 0 ? offsets[0] : offsets[i + 1];
      if (out.length > 128 * 1024) out.length = 0; /* handed to libpq */
      rw_buf_put(&out, stream.data + from, to - from);
    }
    plain[r] = now() - t0;
    rw_stream s;
    rw_stream_init(&s, &spec);
    t0 = now();
    for (long i = -1; i <= rows; i++) {
      size_t from = i < 0 ? 0 : offsets[i], to = i < 0 ? offsets[0] : offsets[i + 1];
      if (out.length > 128 * 1024) out.length = 0;
      if (rw_feed(&s, stream.data + from, to - from, &out) < 0) {
        fprintf(stderr, "bench_rewrite: %s\n", s.error);
        return 1;
      }
    }
    if (rw_finish(&s) < 0) return fprintf(stderr, "bench_rewrite: %s\n", s.error), 1;
    rewrite[r] = now() - t0;
    changed = s.values_changed;
    rw_stream_free(&s);
    rw_buf_free(&out);
  }
  qsort(plain, (size_t)rounds, sizeof *plain, cmp);
  qsort(rewrite, (size_t)rounds, sizeof *rewrite, cmp);
  double p = plain[rounds / 2], w = rewrite[rounds / 2], mb = (double)stream.length / 1e6;
  printf("rewrite micro-benchmark: %ld rows, %.1f MB stream (%.1f MB of text), one core, "
         "median of %d\n",
         rows, mb, (double)text_bytes / 1e6, rounds);
  printf("  plain copy into the chunk: %8.3f s  %8.0f MB/s\n", p, mb / p);
  printf("  rewrite (address + scan):  %8.3f s  %8.0f MB/s of stream, %.0f MB/s of text "
         "(goal >= 300), %lld values changed\n",
         w, mb / w, (double)text_bytes / 1e6 / w, changed);
  rw_buf_free(&stream);
  free(offsets);
  return 0;
}
