/* interp.h: `${VAR}` / `${VAR:-default}` interpolation of configuration text.
 *
 * Pure C, no Lua: wf.yaml applies it to scalars when loading with
 * `{env = ...}`, and the engine can apply it to any configuration string.
 *
 * Syntax (the whole of it):
 *   ${NAME}            the value of NAME; an error when NAME is unset
 *   ${NAME:-default}   the value of NAME, or `default` when NAME is unset or
 *                      empty (as in the shell); `default` is literal text up
 *                      to the first `}` and is not itself expanded
 *   $${                a literal `${` (the escape)
 *   any other `$`      itself: `$HOME`, `a$b`, `$$` and a trailing `$` are
 *                      left alone, so passwords containing `$` survive
 * NAME is [A-Za-z_][A-Za-z0-9_]* and at most INTERP_NAME_MAX bytes. A value
 * is inserted as it is: it is never expanded again.
 */
#ifndef WF_INTERP_H
#define WF_INTERP_H

#include <stddef.h>

#define INTERP_NAME_MAX 255

/* Returns the value of the variable `name` (NUL-terminated), or NULL when it
 * is unset. The returned text must stay valid until interp_expand returns. */
typedef const char *(*interp_lookup_fn)(const char *name, void *data);

struct interp_error {
  size_t offset;     /* byte offset in the input where the problem starts */
  char message[320]; /* one line, names the variable when there is one */
};

/* Expands `in` (len bytes, may hold NULs). On success returns 0 and sets
 * *out to a NUL-terminated malloc'd copy (the caller owns and frees it) and
 * *out_len to its length without the NUL. On failure returns -1, sets *out
 * to NULL and fills *err; nothing is left allocated. */
int interp_expand(const char *in, size_t len, interp_lookup_fn lookup, void *data, char **out,
                  size_t *out_len, struct interp_error *err);

/* A lookup function over the process environment (getenv); data unused. */
const char *interp_lookup_env(const char *name, void *data);

#endif
