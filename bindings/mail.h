/* mail.h: the pure parts of wf.mail, kept apart from Lua so that the unit
 * tests (tests/unit/test_sandbox_address.c) call them directly. */
#ifndef WF_MAIL_H
#define WF_MAIL_H

#include <stddef.h>

/* The sandbox address rewrite (rules in docs/modules.md, wf.mail):
 *   no '@' in address            -> address, byte for byte
 *   otherwise trim surrounding ASCII white space (" \t\n\v\f\r"), split at
 *   the last '@' into LOCAL and DOMAIN;
 *   lower(DOMAIN) == lower(trim(domain)) -> the trimmed address
 *   else                         -> LOCAL "_" lower(DOMAIN) "@" lower(trim(domain))
 * lower() maps ASCII A-Z only. out must hold address_length + domain_length
 * + 2 bytes; returns the length written (no terminating NUL is added). */
size_t mail_sandbox_address(const char *address, size_t address_length, const char *domain,
                            size_t domain_length, char *out);

/* Whether domain, once trimmed, is usable as the sandbox domain: not empty,
 * no '@', no white space or control characters inside. */
int mail_sandbox_domain_valid(const char *domain, size_t domain_length);

#endif
