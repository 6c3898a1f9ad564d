/* test_interp.c: `${VAR}` interpolation without Lua, over a fixed table of
 * variables. */
#include <stdlib.h>
#include <string.h>

#include "interp.h"
#include "tap.h"

static const char *vars[][2] = {
    {"HOST", "db.internal"}, {"PORT", "5432"},  {"EMPTY", ""}, {"A", "x"}, {"B", "y"},
    {"DOLLAR", "${HOST}"},   {"_under_1", "u"}, {NULL, NULL},
};

static const char *lookup(const char *name, void *data) {
  int *calls = data;
  if (calls) (*calls)++;
  for (int i = 0; vars[i][0]; i++)
    if (strcmp(vars[i][0], name) == 0) return vars[i][1];
  return NULL;
}

/* Expands in; returns the result or "ERROR@<offset>: <message>" (static). */
static const char *expand(const char *in) {
  static char result[512];
  char *out;
  size_t out_len;
  struct interp_error err;
  if (interp_expand(in, strlen(in), lookup, NULL, &out, &out_len, &err) != 0) {
    snprintf(result, sizeof result, "ERROR@%zu: %s", err.offset, err.message);
    return result;
  }
  snprintf(result, sizeof result, "%s", out);
  if (strlen(out) != out_len) snprintf(result, sizeof result, "bad length");
  free(out);
  return result;
}

#define is_expansion(in, want, name) is_str(expand(in), want, name)

#define fails_with(in, want, name)                                                                 \
  do {                                                                                             \
    const char *got_ = expand(in);                                                                 \
    if (!ok(strstr(got_, want) != NULL, "%s", name))                                               \
      printf("#   got '%s', want it to contain '%s'\n", got_, want);                               \
  } while (0)

int main(void) {
  is_expansion("plain text", "plain text", "text without references is unchanged");
  is_expansion("", "", "empty input");
  is_expansion("${HOST}", "db.internal", "a set variable");
  is_expansion("postgres://${HOST}:${PORT}/app", "postgres://db.internal:5432/app",
               "references inside text");
  is_expansion("${A}${B}", "xy", "adjacent references");
  is_expansion("${A}${B}${A}", "xyx", "three adjacent references");
  is_expansion("${MISSING:-5432}", "5432", "an unset variable takes its default");
  is_expansion("${PORT:-1}", "5432", "a set variable ignores the default");
  is_expansion("${EMPTY:-fallback}", "fallback", "an empty variable takes the default, as in sh");
  is_expansion("${EMPTY}", "", "an empty variable without default is empty");
  is_expansion("${MISSING:-}", "", "an empty default");
  is_expansion("${MISSING:-a b:c-d}", "a b:c-d", "a default with spaces and punctuation");
  is_expansion("${MISSING:-$HOME}", "$HOME", "a default is not expanded");
  is_expansion("${DOLLAR}", "${HOST}", "a value is not expanded again");
  is_expansion("${_under_1}", "u", "underscores and digits in a name");
  is_expansion("$${HOST}", "${HOST}", "$${ is a literal ${");
  is_expansion("a$${B}${B}", "a${B}y", "an escape next to a reference");
  is_expansion("$$${A}", "$${A}", "$$${ is a literal $ and an escape");
  is_expansion("pa$$word$", "pa$$word$", "other dollars are left alone");
  is_expansion("$HOST and $", "$HOST and $", "a bare $NAME is not a reference");
  is_expansion("cost: $5 {x}", "cost: $5 {x}", "braces without $ are text");

  fails_with("${MISSING}", "ERROR@0: environment variable MISSING is not set",
             "an unset variable without default is an error naming it");
  fails_with("port ${NOPE} x", "ERROR@5:", "the error offset points at the reference");
  fails_with("${MISSING}", "${MISSING:-default}", "the error says how to give a default");
  fails_with("x ${HOST", "ERROR@2: unterminated '${' in '${HOST'", "an unterminated reference");
  fails_with("${}", "ERROR@0: missing variable name in '${}'", "an empty name");
  fails_with("${1A}", "invalid variable name in '${1A}'", "a name starting with a digit");
  fails_with("${A B}", "invalid reference '${A B}'", "a space inside a reference");
  fails_with("${A:default}", "invalid reference '${A:default}'", "':' without '-'");
  fails_with("${A-default}", "invalid reference", "'-' without ':' is not supported");
  fails_with("${A:}", "invalid reference", "a lone ':'");
  fails_with("${-x}", "missing variable name", "a default without a name");
  fails_with("a\n${\x01}", "ERROR@2: missing variable name in '${?}'",
             "control bytes are not copied into the message");

  {
    char name[400], in[420];
    memset(name, 'N', sizeof name - 1);
    name[sizeof name - 1] = '\0';
    snprintf(in, sizeof in, "${%s}", name);
    fails_with(in, "variable name longer than 255 bytes", "a very long name");
  }
  {
    /* Lengths, not NULs, delimit the input; the lookup runs once per reference. */
    const char in[] = "a\0${A}\0b";
    char *out;
    size_t out_len;
    int calls = 0;
    struct interp_error err;
    int status = interp_expand(in, sizeof in - 1, lookup, &calls, &out, &out_len, &err);
    is_int(status, 0, "input with NULs expands");
    is_int(out_len, 5, "its length counts the NULs");
    ok(out && memcmp(out, "a\0x\0b", 5) == 0, "its bytes are right");
    is_int(calls, 1, "one lookup per reference");
    free(out);
  }
  {
    char *out = (char *)"untouched";
    size_t out_len = 7;
    struct interp_error err;
    int status = interp_expand("${NOPE}", 7, lookup, NULL, &out, &out_len, &err);
    is_int(status, -1, "failure returns -1");
    ok(out == NULL, "failure leaves *out NULL");
  }
  {
    char *out;
    size_t out_len;
    struct interp_error err;
    setenv("WF_INTERP_TEST", "from-env", 1);
    unsetenv("WF_INTERP_UNSET");
    const char *in = "${WF_INTERP_TEST}/${WF_INTERP_UNSET:-d}";
    interp_expand(in, strlen(in), interp_lookup_env, NULL, &out, &out_len, &err);
    is_str(out, "from-env/d", "interp_lookup_env reads the environment");
    free(out);
  }
  {
    /* A long input with many references exercises the growing buffer. */
    size_t n = 20000;
    char *in = malloc(n * 4 + 1), *out;
    size_t out_len;
    struct interp_error err;
    for (size_t i = 0; i < n; i++)
      memcpy(in + 4 * i, "${A}", 4);
    in[n * 4] = '\0';
    int status = interp_expand(in, n * 4, lookup, NULL, &out, &out_len, &err);
    ok(status == 0 && out_len == n && out[0] == 'x' && out[n - 1] == 'x' && out[n] == '\0',
       "20000 references expand");
    free(out);
    free(in);
  }
  return tap_done();
}
