/* test_yaml.c: wf.yaml from Lua snippets: the core schema, anchors and their
 * budget, errors with line and column, limits, files, interpolation, and
 * out-of-memory runs that must neither crash nor leak (ASan checks). */
#include <lauxlib.h>
#include <lualib.h>
#include <stdlib.h>

#include "engine.h"
#include "json.h"
#include "lua_helpers.h"
#include "oom.h"

int luaopen_wf_yaml(lua_State *L);

/* t(text, key) -> "<type>:<value>" of yaml.load(text)[key], math.type for numbers. */
static const char *prelude =
    "function kind(v) "
    "  if type(v) == 'number' then return math.type(v) .. ':' .. tostring(v) end "
    "  return type(v) .. ':' .. tostring(v) "
    "end "
    "function t(text, key, opts) return kind(yaml.load(text, opts)[key]) end "
    "function j(text, opts) return json.encode(yaml.load(text, opts), {sort_keys = true}) end";

static void test_core_schema(lua_State *L) {
  static const struct {
    const char *yaml, *want;
  } cases[] = {
      {"v: ~", "nil:nil"},
      {"v: null", "nil:nil"},
      {"v: Null", "nil:nil"},
      {"v: NULL", "nil:nil"},
      {"v:", "nil:nil"},
      {"v: nULL", "string:nULL"},
      {"v: true", "boolean:true"},
      {"v: True", "boolean:true"},
      {"v: TRUE", "boolean:true"},
      {"v: false", "boolean:false"},
      {"v: False", "boolean:false"},
      {"v: FALSE", "boolean:false"},
      {"v: tRUE", "string:tRUE"},
      {"v: yes", "string:yes"},
      {"v: no", "string:no"},
      {"v: on", "string:on"},
      {"v: 42", "integer:42"},
      {"v: -17", "integer:-17"},
      {"v: +5", "integer:5"},
      {"v: 012", "integer:12"},
      {"v: 0x1F", "integer:31"},
      {"v: 0xff", "integer:255"},
      {"v: 0o17", "integer:15"},
      {"v: 0b101", "string:0b101"},
      {"v: 0x", "string:0x"},
      {"v: 9223372036854775807", "integer:9223372036854775807"},
      {"v: -9223372036854775808", "integer:-9223372036854775808"},
      {"v: 0x7FFFFFFFFFFFFFFF", "integer:9223372036854775807"},
      {"v: 9007199254740993", "integer:9007199254740993"},
      {"v: 3.5", "float:3.5"},
      {"v: 3.0", "float:3.0"},
      {"v: 1.", "float:1.0"},
      {"v: .5", "float:0.5"},
      {"v: -1.5e3", "float:-1500.0"},
      {"v: 1e3", "float:1000.0"},
      {"v: .inf", "float:inf"},
      {"v: .Inf", "float:inf"},
      {"v: -.INF", "float:-inf"},
      {"v: +.inf", "float:inf"},
      {"v: .nan", "float:nan"},
      {"v: .NaN", "float:nan"},
      {"v: .", "string:."},
      {"v: 1.2.3", "string:1.2.3"},
      {"v: 1_000", "string:1_000"},
      {"v: 12:30", "string:12:30"},
      {"v: \"42\"", "string:42"},
      {"v: '42'", "string:42"},
      {"v: 'true'", "string:true"},
      {"v: \"null\"", "string:null"},
      {"v: ''", "string:"},
      {"v: |\n  42\n", "string:42\n"},
      {"v: >-\n  a\n  b\n", "string:a b"},
      {"v: !!str 42", "string:42"},
      {"v: ! 42", "string:42"},
      {"v: !!int \"42\"", "integer:42"},
      {"v: !!float 1", "float:1.0"},
      {"v: !!bool 'true'", "boolean:true"},
      {"v: !!null ''", "nil:nil"},
      {"v: hello world", "string:hello world"},
  };
  char code[256], name[128];
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    lua_pushstring(L, cases[i].yaml);
    lua_setglobal(L, "text");
    snprintf(code, sizeof code, "return t(text, 'v')");
    snprintf(name, sizeof name, "core schema: %s", cases[i].yaml);
    for (char *c = name; *c; c++) /* one TAP line per test */
      if (*c == '\n') *c = '/';
    is_lua(L, code, cases[i].want, name);
  }
  is_lua(L, "return j('a: [1, 2]\\nb: {c: x}\\n')", "{\"a\":[1,2],\"b\":{\"c\":\"x\"}}",
         "block mapping with flow collections");
  is_lua(L, "return j('- a\\n- - b\\n  - c\\n- {}\\n- []\\n')", "[\"a\",[\"b\",\"c\"],{},[]]",
         "nested sequences; empty {} and [] keep their kind through json.encode");
  is_lua(L, "return getmetatable(yaml.load('[]')).__jsontype", "array", "sequences are marked");
  is_lua(L, "return getmetatable(yaml.load('{}')).__jsontype", "object", "mappings are marked");
  is_lua(L, "return kind(yaml.load('1: one\\ntrue: yes')[1])", "string:one", "an integer key");
  is_lua(L, "return kind(yaml.load('1: one\\ntrue: yes')[true])", "string:yes", "a boolean key");
  is_lua(L, "return kind(yaml.load('\"1\": one')['1'])", "string:one", "a quoted key is a string");
  is_lua(L, "return kind(yaml.load('42'))", "integer:42", "a scalar document");
  is_lua(L, "return kind(yaml.load(''))", "nil:nil", "an empty text is nil");
  is_lua(L, "return kind(yaml.load('# only a comment\\n'))", "nil:nil", "a comment is nil");
  is_lua(L, "return kind(yaml.load('', {null = json.null}))", "nil:nil",
         "an empty text is nil even with opts.null (there is no document)");
  is_lua(L, "return kind(yaml.load('# c\\n', {null = json.null}))", "nil:nil",
         "a comment-only text is nil even with opts.null");
  is_lua(L, "return yaml.load('---\\n', {null = json.null}) == json.null", "true",
         "an explicit empty document holds a null: opts.null");
  is_lua(L, "return kind(yaml.load('---\\na: 1\\n...\\n').a)", "integer:1", "explicit markers");
}

static void test_nulls(lua_State *L) {
  is_lua(L, "local s = yaml.load('[1, ~, 3]') return #{s[1], s[3]} .. kind(s[2]) .. kind(s[3])",
         "2nil:nilinteger:3", "a null in a sequence keeps later positions");
  is_lua(L, "return j('[1, ~, 3]', {null = json.null})", "[1,null,3]",
         "opts.null stands in for null");
  is_lua(L, "return j('a: ~\\nb: 1', {null = json.null})", "{\"a\":null,\"b\":1}",
         "opts.null keeps null members");
  is_lua(L, "return j('a: ~\\nb: 1')", "{\"b\":1}", "by default a null member is absent");
}

static void test_anchors(lua_State *L) {
  is_lua(L,
         "local c = yaml.load('base: &b {host: h, port: 1}\\ncopy: *b\\n') "
         "return tostring(c.copy == c.base) .. c.copy.host .. c.copy.port",
         "trueh1", "an alias shares its anchor's table");
  is_lua(L, "return j('list: [&x 5, *x, &y \"s\", *y]')", "{\"list\":[5,5,\"s\",\"s\"]}",
         "scalar anchors");
  is_lua(L, "return j('- &n ~\\n- *n\\n- 3', {null = json.null})", "[null,null,3]",
         "an alias of a null");
  is_lua(L, "return j('a: &a 1\\nb: *a\\na2: &a 2\\nc: *a\\n')",
         "{\"a\":1,\"a2\":2,\"b\":1,\"c\":2}", "an anchor can be redefined");
  is_lua(L, "return j('d: &d {a: 1, b: 2}\\ns:\\n  <<: *d\\n  b: 3\\n')",
         "{\"d\":{\"a\":1,\"b\":2},\"s\":{\"a\":1,\"b\":3}}", "a merge key; explicit keys win");
  is_lua(L, "return j('d: &d {a: 1, b: 2}\\ne: &e {b: 8, c: 9}\\ns:\\n  b: 3\\n  <<: [*d, *e]\\n')",
         "{\"d\":{\"a\":1,\"b\":2},\"e\":{\"b\":8,\"c\":9},\"s\":{\"a\":1,\"b\":3,\"c\":9}}",
         "merging a list: earlier sources win, explicit keys win even before the merge");
  is_lua(L, "return j('s: {\"<<\": 1}')", "{\"s\":{\"<<\":1}}", "a quoted << is a plain key");
  lua_fails_with(
      L, "return yaml.load('a: &a 1\\ns:\\n  <<: *a\\n')",
      "yaml: line 3, column 3: a merge key '<<' takes a mapping or a sequence of mappings",
      "merging a scalar is an error");
  lua_fails_with(L, "return yaml.load('x: *nope')", "yaml: line 1, column 4: unknown anchor *nope",
                 "an unknown alias");
  lua_fails_with(L, "return yaml.load('a: &a [1, *a]')", "unknown anchor *a",
                 "a recursive alias is refused");
  /* Billion laughs: 9 levels of 10 aliases expand to 10^9 nodes. */
  lua_fails_with(L,
                 "local lines = {'l0: &l0 [x, x, x, x, x, x, x, x, x, x]'} "
                 "for i = 1, 9 do lines[#lines + 1] = ('l%d: &l%d [' .. string.rep('*l%d, ', 9) "
                 ".. '*l%d]'):format(i, i, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1, "
                 "i - 1, i - 1) end "
                 "return yaml.load(table.concat(lines, '\\n'))",
                 "makes the document larger than 1000000 nodes (too many aliases: \"billion "
                 "laughs\"?)",
                 "billion laughs is stopped");
  lua_fails_with(L, "return yaml.load('a: &a [1, 2, 3]\\nb: [*a, *a, *a]\\n', {max_nodes = 10})",
                 "yaml: line 2, column 5: alias *a makes the document larger than 10 nodes",
                 "max_nodes counts aliases by their expansion");
  is_lua(L, "return #yaml.load('a: &a [1, 2, 3]\\nb: [*a, *a]\\n', {max_nodes = 16}).b", "2",
         "a document of exactly max_nodes loads (keys count, an alias counts its anchor's nodes)");
  lua_fails_with(L, "return yaml.load('a: &a [1, 2, 3]\\nb: [*a, *a]\\n', {max_nodes = 15})",
                 "yaml: line 2, column 9: alias *a makes", "one node fewer does not");
}

static void test_errors(lua_State *L) {
  lua_fails_with(
      L, "return yaml.load('a: [1, 2\\nb: 3')",
      "yaml: line 2, column 2: did not find expected ',' or ']' (while parsing a flow sequence at "
      "line 1, column 4)",
      "a malformed flow sequence: line and column, with the context");
  lua_fails_with(L, "return yaml.load('a: 1\\n b: 2')",
                 "yaml: line 2, column 3: mapping values are not allowed in this context",
                 "bad indentation");
  lua_fails_with(L, "return yaml.load('a:\\n\\t- 1')",
                 "yaml: line 2, column 1: found character that cannot start any token", "a tab");
  lua_fails_with(L, "return yaml.load('a: \"x\\xff\"')",
                 "yaml: line 1, column 6: invalid leading UTF-8 octet",
                 "invalid UTF-8 has a position");
  lua_fails_with(L, "return yaml.load('a: 1\\nb: 2\\na: 3\\n')",
                 "yaml: line 3, column 1: duplicate key 'a'", "a duplicate key");
  lua_fails_with(
      L, "return yaml.load('a: 1\\n---\\nb: 2')",
      "yaml: line 2, column 1: a second document: wf.yaml loads one document per text or file",
      "a second document");
  lua_fails_with(L, "return yaml.load('? [1]\\n: 2')",
                 "yaml: line 1, column 3: a mapping key must be a scalar", "a sequence key");
  lua_fails_with(L, "return yaml.load('{{a: 1}: 2}')",
                 "yaml: line 1, column 2: a mapping key must be a scalar",
                 "a mapping key in flow style");
  lua_fails_with(L, "return yaml.load('s: &s [1]\\nm: {*s: 2}')",
                 "yaml: line 2, column 5: a mapping key must be a scalar",
                 "an alias of a sequence as a key");
  lua_fails_with(L, "return yaml.load('a: ~\\na: 1')", "yaml: line 2, column 1: duplicate key 'a'",
                 "a duplicate of a key whose value is null");
  is_lua(L, "return j('d: &d {a: 1, b: 2}\\ns:\\n  a: ~\\n  <<: *d\\n')",
         "{\"d\":{\"a\":1,\"b\":2},\"s\":{\"b\":2}}", "an explicit null is not merged over");
  lua_fails_with(L, "return yaml.load('~: 1')",
                 "yaml: line 1, column 1: a mapping key cannot be null", "a null key");
  lua_fails_with(
      L, "return yaml.load('id: 12345678901234567890')",
      "yaml: line 1, column 5: integer 12345678901234567890 does not fit in 64 bits (quote it to "
      "keep it as a string)",
      "an integer beyond 64 bits");
  lua_fails_with(L, "return yaml.load('id: 9223372036854775808')", "does not fit in 64 bits",
                 "2^63 does not fit");
  lua_fails_with(L, "return yaml.load('id: 0x10000000000000000')", "does not fit in 64 bits",
                 "a hex integer beyond 64 bits");
  lua_fails_with(L, "return yaml.load('a: !Ref x')", "yaml: line 1, column 4: unsupported tag !Ref",
                 "an unknown tag");
  lua_fails_with(L, "return yaml.load('a: !!int abc')",
                 "yaml: line 1, column 4: 'abc' is not a valid !!int",
                 "a tag that does not fit its value");
  lua_fails_with(L, "return yaml.load('a: !!map [1]')", "unsupported tag tag:yaml.org,2002:map",
                 "!!map on a sequence");
  lua_fails_with(L, "return yaml.load('key: \"unterminated')",
                 "yaml: line 1, column 19: found unexpected end of stream",
                 "an unterminated string");
  lua_fails_with(L, "return yaml.load('[', {name = 'config.yaml'})",
                 "config.yaml:2:1:", "opts.name names the text");
  lua_fails_with(L, "return yaml.load(5 < 3)", "string expected", "misuse is an argument error");
  lua_fails_with(L, "return yaml.load('a: 1', {max_depth = 0})", "option max_depth must be",
                 "a bad option");
  is_lua(L, "local e = select(2, pcall(yaml.load, '[')) return e.message:sub(1, 14)",
         "line 2, column", "the message starts with the position, no Lua position in front");
  is_lua(L,
         "local e = select(2, pcall(yaml.load, 'a: *x')) "
         "return e.kind .. ' ' .. tostring(e.code) .. ' ' .. tostring(e.retryable) .. ' | ' .. "
         "tostring(e)",
         "yaml nil false | yaml: line 1, column 4: unknown anchor *x (an alias must follow its "
         "anchor's node)",
         "a yaml error is a table: kind yaml, no code, not retryable; tostring is kind: message");
}

static void test_limits(lua_State *L) {
  is_lua(L, "return type(yaml.load(string.rep('[', 200) .. string.rep(']', 200)))", "table",
         "200 levels load");
  lua_fails_with(L, "return yaml.load(string.rep('[', 201) .. string.rep(']', 201))",
                 "yaml: line 1, column 201: nested deeper than 200 levels", "201 levels do not");
  lua_fails_with(L, "return yaml.load(string.rep('[', 100000))", "nested deeper than 200 levels",
                 "a huge depth fails fast");
  lua_fails_with(L,
                 "local lines = {} for i = 0, 30 do lines[#lines + 1] = string.rep(' ', i) .. "
                 "'k:' end return yaml.load(table.concat(lines, '\\n'), {max_depth = 10})",
                 "yaml: line 11, column 11: nested deeper than 10 levels",
                 "max_depth, block style");
  is_lua(L,
         "local lines = {} for i = 1, 100000 do lines[i] = ('- {id: %d, name: n%d}'):format(i, i) "
         "end local v = yaml.load(table.concat(lines, '\\n')) "
         "return #v .. ' ' .. v[100000].id .. ' ' .. math.type(v[100000].id)",
         "100000 100000 integer", "a large document loads");
}

static void test_files(lua_State *L) {
  is_lua(L,
         "local path = os.tmpname() local f = io.open(path, 'w') "
         "f:write('db:\\n  port: 5432\\n  host: h\\n') f:close() "
         "local v = yaml.load_file(path) os.remove(path) return v.db.host .. v.db.port",
         "h5432", "load_file");
  is_lua(L,
         "local path = os.tmpname() local f = io.open(path, 'w') "
         "f:write('a: 1\\nb: [\\n') f:close() "
         "local ok, err = pcall(yaml.load_file, path) os.remove(path) "
         "return err.message == path .. ':3:1: did not find expected node content (while parsing "
         "a flow node at line 3, column 1)' and err.kind == 'yaml' and err.retryable == false "
         "and tostring(err) == 'yaml: ' .. err.message or tostring(err)",
         "true",
         "load_file errors: a yaml error table whose message names the path, line and column");
  lua_fails_with(L, "return yaml.load_file('/nonexistent/x.yaml')",
                 "/nonexistent/x.yaml: cannot open: No such file or directory", "a missing file");
  lua_fails_with(L, "return yaml.load_file('/')", "/: cannot read", "a directory");
  is_lua(L,
         "local path = os.tmpname() local f = io.open(path, 'w') "
         "for i = 1, 20000 do f:write(('k%d: %d\\n'):format(i, i)) end f:close() "
         "local v = yaml.load_file(path, {name = 'big'}) os.remove(path) return v.k20000",
         "20000", "a file larger than the read buffer");
}

static void test_interpolation(lua_State *L) {
  setenv("WF_YAML_PORT", "6000", 1);
  setenv("WF_YAML_EMPTY", "", 1);
  unsetenv("WF_YAML_UNSET");
  is_lua(L, "return t('port: ${WF_YAML_PORT}', 'port', {env = true})", "integer:6000",
         "a set variable, then type resolution: an integer");
  is_lua(L, "return t('port: ${WF_YAML_UNSET:-5432}', 'port', {env = true})", "integer:5432",
         "an unset variable with a default");
  is_lua(L, "return t('port: \"${WF_YAML_UNSET:-5432}\"', 'port', {env = true})", "string:5432",
         "a quoted scalar stays a string");
  is_lua(L, "return t('port: ${WF_YAML_PORT}', 'port')", "string:${WF_YAML_PORT}",
         "without env nothing is interpolated");
  is_lua(L, "return t('on: ${WF_YAML_EMPTY:-true}', 'on', {env = true})", "boolean:true",
         "an empty variable takes the default");
  is_lua(L, "return t('v: ${WF_YAML_EMPTY}', 'v', {env = true})", "nil:nil",
         "an empty plain scalar after interpolation is null");
  lua_fails_with(L, "return yaml.load('a: 1\\nport: ${WF_YAML_UNSET}', {env = true})",
                 "yaml: line 2, column 7: environment variable WF_YAML_UNSET is not set",
                 "an unset variable without default names it, with line and column");
  lua_fails_with(L, "return yaml.load('url: http://${H}:${P}/x', {env = {H = 'h'}})",
                 "yaml: line 1, column 18: environment variable P is not set",
                 "the column points at the reference inside the scalar");
  is_lua(L, "return t('url: http://${H}:${P}/x', 'url', {env = {H = 'db', P = 5432}})",
         "string:http://db:5432/x", "an env table; a number value");
  is_lua(L, "return t('ab: ${A}${B}', 'ab', {env = {A = '1', B = '2'}})", "integer:12",
         "adjacent references");
  is_lua(L, "return t('v: $${A} costs $5', 'v', {env = {A = 'x'}})", "string:${A} costs $5",
         "$${ is a literal ${, other dollars are text");
  lua_fails_with(L, "return yaml.load('v: \"${A\"', {env = {}})",
                 "yaml: line 1, column 4: unterminated '${'", "a malformed reference");
  lua_fails_with(L, "return yaml.load('v: ${}', {env = {}})", "missing variable name",
                 "an empty reference");
  is_lua(L, "return t('${A}: 1', '${A}', {env = {A = 'x'}})", "integer:1",
         "keys are not interpolated");
  is_lua(L, "return t('v: |\\n  host=${H}\\n', 'v', {env = {H = 'db'}})", "string:host=db\n",
         "block scalars are interpolated");
  is_lua(L, "return j('a: &a ${H}\\nb: *a', {env = {H = 'x'}})", "{\"a\":\"x\",\"b\":\"x\"}",
         "an alias repeats the interpolated value");
  is_lua(L, "return t('v: ${A:-${B}}', 'v', {env = {}})", "string:${B}",
         "a default is not expanded again (the first } ends it)");
  lua_fails_with(L, "return yaml.load('a: 1', {env = 'yes'})", "option env must be true or a table",
                 "a bad env option");
  lua_fails_with(L, "return yaml.load('a: 1', {env = {A = {}}})",
                 "names and values must be strings", "a bad env table");
}

/* Pushes yaml.load_file(path, opts). */
static int push_yaml_load(lua_State *L, long budget) {
  (void)budget;
  lua_getglobal(L, "yaml");
  lua_getfield(L, -1, "load_file");
  lua_remove(L, -2);
  lua_getglobal(L, "path");
  lua_getglobal(L, "opts");
  return 2;
}

/* Every allocation of a load fails in turn: the loader box must free the
 * parser, the event, the file text and the variables each time. */
static void test_out_of_memory(void) {
  lua_State *L = oom_state("wf.yaml", "yaml", luaopen_wf_yaml);
  (void)luaL_dostring(
      L, "path = os.tmpname() local f = io.open(path, 'w') "
         "f:write('a: &a {x: [1, 2.5, \"${V}\"]}\\nb: *a\\nc:\\n  <<: *a\\n') f:close() "
         "opts = {env = {V = 'v', W = 'w'}, name = 'oom'}");
  struct oom_counts counts = oom_sweep(L, 5000, 3, push_yaml_load);
  ok(counts.failures > 0 && counts.successes > 0,
     "out-of-memory loads fail cleanly, then succeed (%d, %d)", counts.failures, counts.successes);
  (void)luaL_dostring(L, "os.remove(path)");
  lua_close(L);
}

int main(void) {
  lua_State *L = test_state("wf.yaml", "yaml", luaopen_wf_yaml);
  luaL_requiref(L, "wfengine.core", engine_open_core, 0); /* the error metatable */
  lua_pop(L, 1);
  luaL_requiref(L, "wf.json", luaopen_wf_json, 0);
  lua_setglobal(L, "json");
  if (luaL_dostring(L, prelude) != LUA_OK) return 1;
  test_core_schema(L);
  test_nulls(L);
  test_anchors(L);
  test_errors(L);
  test_limits(L);
  test_files(L);
  test_interpolation(L);
  lua_close(L);
  test_out_of_memory();
  return tap_done();
}
