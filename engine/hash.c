/* hash.c: a content fingerprint for workflow files and step sources, so a
 * resumed run can tell what was edited. Not a cryptographic hash. */
#include <stdio.h>
#include "engine.h"

void hash_hex(const void *data, size_t length, char out[17]) {
  const unsigned char *bytes = data;
  uint64_t hash = 0xcbf29ce484222325ULL;
  for (size_t i = 0; i < length; i++) {
    hash ^= bytes[i];
    hash *= 0x100000001b3ULL;
  }
  snprintf(out, 17, "%016llx", (unsigned long long)hash);
}
