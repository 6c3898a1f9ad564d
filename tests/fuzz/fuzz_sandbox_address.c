/* fuzz_sandbox_address.c: libFuzzer target for mail_sandbox_address
 * (bindings/mail.c). The input is ADDRESS NUL DOMAIN. Checks the rules of
 * mail.h: the output fits the stated bound, an address without '@' is
 * unchanged, and rewriting is idempotent (a rewritten address is at the
 * domain, so a second rewrite leaves it alone). */
#include <stdlib.h>
#include <string.h>

#include "mail.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size) {
  const char *address = (const char *)data, *domain = "mailinator.com";
  size_t address_length = size, domain_length = strlen(domain);
  const char *nul = memchr(data, '\0', size);
  if (nul) {
    address_length = (size_t)(nul - address);
    domain = nul + 1;
    domain_length = size - address_length - 1;
  }
  size_t bound = address_length + domain_length + 2;
  /* exact-size heap buffers, so ASan catches a write past the bound */
  char *out = malloc(bound), *again = malloc(bound + domain_length + 2);
  if (!out || !again) abort();
  size_t n = mail_sandbox_address(address, address_length, domain, domain_length, out);
  if (n > bound) abort();
  if (!memchr(address, '@', address_length) && (n != address_length || memcmp(out, address, n)))
    abort();
  if (mail_sandbox_domain_valid(domain, domain_length) && memchr(address, '@', address_length)) {
    size_t m = mail_sandbox_address(out, n, domain, domain_length, again);
    if (m != n || memcmp(again, out, n) != 0) abort();
  }
  free(out);
  free(again);
  return 0;
}
