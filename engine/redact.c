/* redact.c: replaces secret values in text by "***". Pure; the engine keeps
 * the list of secrets (loop.c) and calls this for everything it prints or
 * journals. */
#include <stdlib.h>
#include <string.h>
#include "engine.h"

static const char mask[] = "***";

/* Index of the longest secret that starts at text[at], or -1. */
static long longest_match(const char *text, size_t length, size_t at, const char *const *secrets,
                          size_t count) {
  long best = -1;
  size_t best_length = 0;
  for (size_t i = 0; i < count; i++) {
    size_t n = strlen(secrets[i]);
    if (n == 0 || n > length - at || n <= best_length) continue;
    if (memcmp(text + at, secrets[i], n) == 0) {
      best = (long)i;
      best_length = n;
    }
  }
  return best;
}

char *redact_text(const char *text, size_t length, const char *const *secrets, size_t count,
                  size_t *out_length) {
  /* Each replacement is at most as long as what it replaces once secrets are
   * at least 3 bytes; shorter ones grow the text, so size for the worst case. */
  size_t capacity = length * 3 + 1;
  char *out = malloc(capacity);
  size_t used = 0;
  if (!out) return NULL;
  for (size_t at = 0; at < length;) {
    long match = longest_match(text, length, at, secrets, count);
    if (match >= 0) {
      memcpy(out + used, mask, sizeof mask - 1);
      used += sizeof mask - 1;
      at += strlen(secrets[match]);
    } else {
      out[used++] = text[at++];
    }
  }
  out[used] = '\0';
  *out_length = used;
  return out;
}
