/* test_sandbox_address.c: the exhaustive table for mail_sandbox_address
 * (bindings/mail.c), the rule step 13's SQL must reproduce row for row. */
#include <stdlib.h>
#include <string.h>

#include "mail.h"
#include "tap.h"

struct row {
  const char *address, *domain, *want, *why;
};

static const struct row rows[] = {
    {"john.doe@company.com", "mailinator.com", "john.doe_company.com@mailinator.com",
     "contract example"},
    {"John.Doe@Company.COM", "mailinator.com", "John.Doe_company.com@mailinator.com",
     "domain part lower-cased, local part kept"},
    {"john@company.com", "MAILINATOR.com", "john_company.com@mailinator.com",
     "target domain lower-cased"},
    {"john+tag@company.com", "mailinator.com", "john+tag_company.com@mailinator.com", "plus kept"},
    {"a.b-c_d@x.y", "mailinator.com", "a.b-c_d_x.y@mailinator.com", "punctuation kept"},
    {"john@mail.company.co.uk", "mailinator.com", "john_mail.company.co.uk@mailinator.com",
     "subdomains kept whole"},
    {"john@sub.mailinator.com", "mailinator.com", "john_sub.mailinator.com@mailinator.com",
     "a subdomain of the target is not the target"},
    {"john@mailinator.com", "mailinator.com", "john@mailinator.com",
     "already at domain: unchanged"},
    {"John@MailInator.Com", "mailinator.com", "John@MailInator.Com",
     "already at domain in other case: unchanged, case kept"},
    {"john.doe_company.com@mailinator.com", "mailinator.com", "john.doe_company.com@mailinator.com",
     "idempotent"},
    {"john@mailinator.com.", "mailinator.com", "john_mailinator.com.@mailinator.com",
     "trailing dot is a different domain"},
    {"no-at-sign", "mailinator.com", "no-at-sign", "no @: unchanged"},
    {"  no at  ", "mailinator.com", "  no at  ", "no @: unchanged, spaces too"},
    {"", "mailinator.com", "", "empty: unchanged"},
    {"a@b@company.com", "mailinator.com", "a@b_company.com@mailinator.com", "split at the last @"},
    {"@@company.com", "mailinator.com", "@_company.com@mailinator.com", "several @ only"},
    {"@company.com", "mailinator.com", "_company.com@mailinator.com", "empty local part"},
    {"john@", "mailinator.com", "john_@mailinator.com", "empty domain part"},
    {"@", "mailinator.com", "_@mailinator.com", "only @"},
    {"  john@company.com  ", "mailinator.com", "john_company.com@mailinator.com", "spaces trimmed"},
    {"\tjohn@company.com\r\n", "mailinator.com", "john_company.com@mailinator.com",
     "tab, CR, LF trimmed"},
    {"\v\fjohn@company.com", "mailinator.com", "john_company.com@mailinator.com", "VT, FF trimmed"},
    {" john@mailinator.com ", "mailinator.com", "john@mailinator.com",
     "already at domain: trimmed only"},
    {"john doe@company.com", "mailinator.com", "john doe_company.com@mailinator.com",
     "inner spaces kept"},
    {"john@ company.com", "mailinator.com", "john_ company.com@mailinator.com",
     "space after @ kept (not trimmed inside)"},
    {"john@company.com", " mailinator.com ", "john_company.com@mailinator.com",
     "target domain trimmed"},
    {"Jöhn@Bücher.DE", "mailinator.com", "Jöhn_bücher.de@mailinator.com",
     "only ASCII letters lower-cased; UTF-8 bytes kept"},
    {"JOHN@ÄBC.COM", "mailinator.com", "JOHN_Äbc.com@mailinator.com", "non-ASCII upper case kept"},
    {"\"john@x\"@company.com", "mailinator.com", "\"john@x\"_company.com@mailinator.com",
     "quoted local part: still the last @"},
    {"john@[10.0.0.1]", "mailinator.com", "john_[10.0.0.1]@mailinator.com", "address literal"},
};

int main(void) {
  char out[4096];
  for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
    const struct row *r = &rows[i];
    size_t n =
        mail_sandbox_address(r->address, strlen(r->address), r->domain, strlen(r->domain), out);
    out[n] = '\0';
    is_str(out, r->want, r->why);
  }

  /* very long values: no limit, output is exactly local "_" domain "@" target */
  size_t local = 100000, domain = 50000;
  char *address = malloc(local + 1 + domain + 1);
  char *big = malloc(local + 1 + domain + 1 + 2 * 20 + 2);
  memset(address, 'a', local);
  address[local] = '@';
  memset(address + local + 1, 'B', domain);
  address[local + 1 + domain] = '\0';
  size_t n = mail_sandbox_address(address, local + 1 + domain, "mailinator.com", 14, big);
  is_int(n, local + 1 + domain + 1 + 14, "very long: length is local + 1 + domain + 1 + target");
  ok(big[local] == '_' && big[local + 1] == 'b' && big[local + domain] == 'b' &&
         memcmp(big + local + 1 + domain, "@mailinator.com", 15) == 0,
     "very long: domain lower-cased, target appended");
  free(address);
  free(big);

  /* embedded NUL bytes are ordinary bytes (Lua strings may hold them) */
  static const char with_nul[] = "jo\0hn@Company.com";
  n = mail_sandbox_address(with_nul, sizeof with_nul - 1, "mailinator.com", 14, out);
  ok(n == 32 && memcmp(out, "jo\0hn_company.com@mailinator.com", 32) == 0, "NUL bytes kept");

  ok(mail_sandbox_domain_valid("mailinator.com", 14), "a domain is valid");
  ok(mail_sandbox_domain_valid(" mailinator.com ", 16), "surrounding spaces are trimmed");
  ok(!mail_sandbox_domain_valid("", 0), "empty domain refused");
  ok(!mail_sandbox_domain_valid("   ", 3), "blank domain refused");
  ok(!mail_sandbox_domain_valid("a@b.com", 7), "domain with @ refused");
  ok(!mail_sandbox_domain_valid("a b.com", 7), "domain with inner space refused");
  return tap_done();
}
