/* redact.c: replaces secret values in text by "***", and derives the other
 * forms in which the engine itself prints a secret (percent-encoded, JSON
 * escaped). Pure; the engine keeps the list of secrets (wf.c) and calls
 * this for everything it prints or journals. */
#include <stdio.h>
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
    if (secrets[i][0] != text[at]) continue; /* cheap first test: most positions match none */
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

static int unreserved(unsigned char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '.' || c == '_' || c == '~';
}

/* Percent-encoding of RFC 3986 (every byte but the unreserved ones as %XX),
 * with the hex digits given, and a space as '+' when plus is set. */
static char *percent_encoded(const char *secret, size_t length, const char *hex, int plus) {
  char *out = malloc(length * 3 + 1);
  size_t used = 0;
  if (!out) return NULL;
  for (size_t i = 0; i < length; i++) {
    unsigned char c = (unsigned char)secret[i];
    if (unreserved(c)) {
      out[used++] = (char)c;
    } else if (plus && c == ' ') {
      out[used++] = '+';
    } else {
      out[used++] = '%';
      out[used++] = hex[c >> 4];
      out[used++] = hex[c & 15];
    }
  }
  out[used] = '\0';
  return out;
}

/* The inside of a JSON string as wf.json (jansson) writes it: '"' and '\\'
 * escaped, control bytes as \b \f \n \r \t or \u00XX, everything else as it is. */
static char *json_escaped(const char *secret, size_t length) {
  static const char named[] = "btnvfr"; /* 0x08..0x0d; \v has no JSON name */
  char *out = malloc(length * 6 + 1);
  size_t used = 0;
  if (!out) return NULL;
  for (size_t i = 0; i < length; i++) {
    unsigned char c = (unsigned char)secret[i];
    if (c == '"' || c == '\\') {
      out[used++] = '\\';
      out[used++] = (char)c;
    } else if (c >= 0x08 && c <= 0x0d && c != 0x0b) {
      out[used++] = '\\';
      out[used++] = named[c - 0x08];
    } else if (c < 0x20) {
      used += (size_t)snprintf(out + used, 7, "\\u%04X", c);
    } else {
      out[used++] = (char)c;
    }
  }
  out[used] = '\0';
  return out;
}

/* Keeps form in forms[*count] unless it is NULL (returns -1), equal to the
 * secret or to a form already kept (freed). */
static int keep_form(char *form, const char *secret, char **forms, int *count) {
  if (!form) return -1;
  int seen = strcmp(form, secret) == 0;
  for (int i = 0; i < *count && !seen; i++)
    seen = strcmp(form, forms[i]) == 0;
  if (seen)
    free(form);
  else
    forms[(*count)++] = form;
  return 0;
}

int redact_forms(const char *secret, size_t length, char *forms[REDACT_MAX_FORMS]) {
  static const char upper[] = "0123456789ABCDEF", lower[] = "0123456789abcdef";
  char *made[REDACT_MAX_FORMS] = {
      percent_encoded(secret, length, upper, 0), percent_encoded(secret, length, lower, 0),
      percent_encoded(secret, length, upper, 1), percent_encoded(secret, length, lower, 1),
      json_escaped(secret, length)};
  int count = 0, failed = 0;
  for (int i = 0; i < REDACT_MAX_FORMS; i++)
    if (keep_form(made[i], secret, forms, &count) < 0) failed = 1;
  if (!failed) return count;
  for (int i = 0; i < count; i++)
    free(forms[i]);
  return -1;
}
