/* test_redact.c: redact_text (engine/redact.c): every occurrence of every
 * secret becomes "***", longest secret first, overlaps resolved left to
 * right, byte strings with NULs, and the empty cases; redact_forms: the
 * percent-encoded and JSON-escaped forms of a secret, each once. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "engine.h"
#include "tap.h"

/* Redacts a NUL-terminated text; returns a malloc'd copy (caller frees). */
static char *redact(const char *text, const char *const *secrets, size_t count) {
  size_t length = 0;
  char *out = redact_text(text, strlen(text), secrets, count, &length);
  if (out && strlen(out) != length) {
    free(out);
    return strdup("(length mismatch)");
  }
  return out;
}

static void check(const char *text, const char *const *secrets, size_t count, const char *want,
                  const char *name) {
  char *got = redact(text, secrets, count);
  is_str(got, want, name);
  free(got);
}

/* Whether secret has exactly the forms listed in want (any order). */
static void check_forms(const char *secret, const char *const *want, int want_count,
                        const char *name) {
  char *forms[REDACT_MAX_FORMS];
  int count = redact_forms(secret, strlen(secret), forms);
  int all = count == want_count;
  for (int i = 0; i < want_count && all; i++) {
    int found = 0;
    for (int j = 0; j < count; j++)
      found |= strcmp(forms[j], want[i]) == 0;
    all = found;
  }
  ok(all, "%s", name);
  if (!all)
    for (int j = 0; j < count; j++)
      printf("#   form %d: %s\n", j, forms[j]);
  for (int j = 0; j < count; j++)
    free(forms[j]);
}

static void forms_tests(void) {
  check_forms("hunter22", NULL, 0, "a plain secret has no other form");
  const char *query[] = {"AbC%2BdEf%2FGhI%3D", "AbC%2bdEf%2fGhI%3d"};
  check_forms("AbC+dEf/GhI=", query, 2, "percent-encoded with upper and lower hex, once each");
  const char *spaced[] = {"pass%20word", "pass+word"};
  check_forms("pass word", spaced, 2, "a space as %20 and as '+' (digits only: one case)");
  const char *quoted[] = {"Pa%22ss%5Cword9", "Pa%22ss%5cword9", "Pa\\\"ss\\\\word9"};
  check_forms("Pa\"ss\\word9", quoted, 3,
              "quote and backslash: JSON-escaped as wf.json writes them");
  const char *control[] = {"a%09b%01c%0Bd", "a%09b%01c%0bd", "a\\tb\\u0001c\\u000Bd"};
  check_forms("a\tb\001c\013d", control, 3, "control bytes: \\t by name, the others as \\u00XX");

  /* Each form is found and masked in text as wf.http and wf.json write it. */
  char secret[] = "AbC+dEf/GhI=";
  char *forms[REDACT_MAX_FORMS + 1] = {secret};
  int count = redact_forms(forms[0], strlen(forms[0]), forms + 1);
  char *out =
      redact("GET /q?token=AbC%2BdEf%2FGhI%3D&x=1", (const char *const *)forms, (size_t)count + 1);
  is_str(out, "GET /q?token=***&x=1", "the encoded form in a URL is masked");
  free(out);
  for (int i = 1; i <= count; i++)
    free(forms[i]);
}

int main(void) {
  forms_tests();
  const char *one[] = {"hunter2"};
  check("password=hunter2;", one, 1, "password=***;", "one secret in the middle");
  check("hunter2 at the start", one, 1, "*** at the start", "secret at the start");
  check("at the end hunter2", one, 1, "at the end ***", "secret at the end");
  check("hunter2", one, 1, "***", "text is exactly the secret");
  check("hunter2hunter2 hunter2", one, 1, "****** ***", "repeated and adjacent occurrences");
  check("hunter", one, 1, "hunter", "a prefix of the secret is left alone");
  check("", one, 1, "", "empty text gives empty text");
  check("nothing to hide", NULL, 0, "nothing to hide", "no secrets: unchanged copy");

  const char *several[] = {"alpha", "bravo", "charlie"};
  check("alpha, bravo and charlie; charlie again", several, 3, "***, *** and ***; *** again",
        "several secrets, each replaced");

  const char *nested[] = {"pass", "password", "password123"};
  check("password123 password pass", nested, 3, "*** *** ***",
        "longest secret wins where secrets share a prefix");
  const char *nested_reversed[] = {"password123", "pass", "password"};
  check("my password1234", nested_reversed, 3, "my ***4", "longest first regardless of list order");

  const char *overlap[] = {"abc", "bcd"};
  check("abcd", overlap, 2, "***d", "overlapping secrets: the leftmost match is replaced");
  check("xbcdx", overlap, 2, "x***x", "second secret on its own");
  check("aabcdd", overlap, 2, "a***dd", "overlap inside other text");

  const char *contains[] = {"s3cr3t", "3"};
  check("s3cr3t 3", contains, 2, "*** ***",
        "a secret containing a shorter one: whole secret masked");

  const char *tiny[] = {"a"};
  check("aaaa", tiny, 1, "************", "one-byte secret repeated: the text grows 3x");
  const char *with_empty[] = {"", "key"};
  check("a key", with_empty, 2, "a ***", "an empty secret is ignored (no endless loop)");

  const char *mask_like[] = {"***"};
  check("a***b", mask_like, 1, "a***b", "a secret equal to the mask");

  /* Byte strings: NULs inside the text are kept and matched across. */
  const char text[] = {'a', '\0', 'x', 'y', 'z', 'b'};
  const char *bytes[] = {"xyz"};
  size_t length = 0;
  char *out = redact_text(text, sizeof text, bytes, 1, &length);
  is_int(length, 6, "text with a NUL: output length counts the NUL");
  ok(out && memcmp(out, "a\0***b", 6) == 0, "text with a NUL: bytes around the NUL kept");
  free(out);

  /* A long text with many secrets: nothing lost, nothing left. */
  char big[4096];
  big[0] = '\0';
  for (int i = 0; i < 100; i++)
    strcat(big, "[bravo]");
  out = redact(big, several, 3);
  ok(out && strstr(out, "bravo") == NULL && strlen(out) == 100 * 5, "100 occurrences all masked");
  free(out);
  return tap_done();
}
