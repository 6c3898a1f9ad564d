/* fuzz_interp.c: libFuzzer target for `${VAR}` interpolation (engine/interp.c).
 * Checks the contract of interp.h: success gives a NUL-terminated copy of the
 * stated length; failure leaves nothing allocated and an offset inside the
 * input; text without `${` comes back byte for byte. */
#include <stdlib.h>
#include <string.h>

#include "interp.h"

static const char *lookup(const char *name, void *data) {
  (void)data;
  if (strlen(name) > INTERP_NAME_MAX) abort();
  if (strcmp(name, "EMPTY") == 0) return "";
  if (strcmp(name, "UNSET") == 0 || name[0] == 'U') return NULL;
  if (strcmp(name, "REF") == 0) return "${HOME}"; /* never expanded again */
  return "value";
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size) {
  const char *in = (const char *)data;
  char *out = (char *)1;
  size_t out_len = 12345;
  struct interp_error err;
  int has_ref = memmem(in, size, "${", 2) != NULL;
  memset(&err, 0, sizeof err);
  if (interp_expand(in, size, lookup, NULL, &out, &out_len, &err) == 0) {
    if (out == NULL || out[out_len] != '\0') abort();
    if (!has_ref && (out_len != size || memcmp(out, in, size) != 0)) abort();
    free(out);
  } else {
    if (out != NULL || err.offset > size) abort();
    if (memchr(err.message, '\0', sizeof err.message) == NULL || err.message[0] == '\0') abort();
    if (strchr(err.message, '\n') != NULL) abort(); /* one line */
    if (!has_ref) abort();                          /* only a reference can fail */
  }
  return 0;
}
