/* tap.h: Test Anything Protocol output for the C unit tests, read by prove.
 * Header-only: each test file is one program. */
#ifndef WF_TAP_H
#define WF_TAP_H

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static int tap_count;
static int tap_failed;

static int tap_ok(int pass, const char *fmt, ...) __attribute__((format(printf, 2, 3), unused));
static int tap_ok(int pass, const char *fmt, ...) {
  va_list ap;
  tap_count++;
  if (!pass) tap_failed++;
  printf("%sok %d - ", pass ? "" : "not ", tap_count);
  va_start(ap, fmt);
  vprintf(fmt, ap);
  va_end(ap);
  printf("\n");
  fflush(stdout);
  return pass;
}

#define ok(cond, ...) tap_ok((cond) != 0, __VA_ARGS__)

#define is_int(got, want, name)                                                                    \
  do {                                                                                             \
    long long got_ = (long long)(got), want_ = (long long)(want);                                  \
    if (!tap_ok(got_ == want_, "%s", name)) printf("#   got %lld, want %lld\n", got_, want_);      \
  } while (0)

#define is_str(got, want, name)                                                                    \
  do {                                                                                             \
    const char *got_ = (got), *want_ = (want);                                                     \
    int same_ = (got_ && want_) ? strcmp(got_, want_) == 0 : got_ == want_;                        \
    if (!tap_ok(same_, "%s", name))                                                                \
      printf("#   got '%s', want '%s'\n", got_ ? got_ : "(null)", want_ ? want_ : "(null)");       \
  } while (0)

static int tap_done(void) __attribute__((unused));
static int tap_done(void) {
  printf("1..%d\n", tap_count);
  return tap_failed ? 1 : 0;
}

#endif
