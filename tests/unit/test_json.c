/* test_json.c: wf.json, run from Lua snippets, plus the C API and
 * out-of-memory runs that must neither crash nor leak (ASan checks). */
#include <lauxlib.h>
#include <lualib.h>

#include "engine.h"
#include "json.h"
#include "lua_helpers.h"
#include "oom.h"

static void test_integers(lua_State *L) {
  is_lua(L, "return json.encode(json.decode('9007199254740993'))", "9007199254740993",
         "2^53+1 survives decode and encode");
  is_lua(L, "return math.type(json.decode('9007199254740993'))", "integer",
         "a JSON integer decodes to a Lua integer");
  is_lua(L, "return json.decode('9007199254740993') == 9007199254740993", "true",
         "2^53+1 is exact");
  is_lua(L, "return json.decode('-9223372036854775808') == math.mininteger", "true",
         "-2^63 decodes exactly");
  is_lua(L, "return json.decode('9223372036854775807') == math.maxinteger", "true",
         "2^63-1 decodes exactly");
  is_lua(L, "return json.encode({math.mininteger, math.maxinteger})",
         "[-9223372036854775808,9223372036854775807]", "64-bit extremes encode exactly");
  lua_fails_with(L, "return json.decode('[9223372036854775808]')",
                 "json: line 1, column 20: too big integer", "2^63 is an error with its position");
  lua_fails_with(L, "return json.decode('-9223372036854775809')", "too big negative integer",
                 "-2^63-1 is an error");
  is_lua(L, "return json.encode(json.decode('[3]'))", "[3]", "3 stays 3, never 3.0");
}

static void test_floats(lua_State *L) {
  is_lua(L, "return math.type(json.decode('3.0'))", "float", "3.0 decodes to a float");
  is_lua(L, "return math.type(json.decode('1e2'))", "float", "1e2 decodes to a float");
  is_lua(L, "return json.encode(3.0)", "3.0", "float 3.0 encodes as 3.0");
  is_lua(L, "return json.encode(3)", "3", "integer 3 encodes as 3");
  is_lua(L, "return json.encode(0.1)", "0.1", "0.1 encodes in its shortest form");
  is_lua(L, "return json.encode({1.5, -0.25, 1e300})", "[1.5,-0.25,1e300]", "floats are short");
  is_lua(L, "local x = 1/3; return json.decode(json.encode(x)) == x", "true",
         "1/3 round-trips exactly");
  is_lua(L, "local x = 0.1 + 0.2; return json.decode(json.encode({x, 0.5}))[1] == x", "true",
         "0.1+0.2 round-trips exactly next to a short float");
  is_lua(L, "return json.encode(-0.0)", "-0.0", "-0.0 keeps its sign");
  lua_fails_with(L, "return json.encode({steps = {{}, {}, {x = 0/0}}})",
                 "json: $.steps[3].x: NaN cannot be encoded", "NaN names its path");
  lua_fails_with(L, "return json.encode({a = {math.huge}})", "json: $.a[1]: inf cannot be encoded",
                 "inf names its path");
  lua_fails_with(L, "return json.encode(-math.huge)", "json: $: -inf cannot be encoded",
                 "-inf at the root");
}

static void test_null(lua_State *L) {
  is_lua(L, "return json.decode('null') == json.null", "true", "null decodes to json.null");
  is_lua(L, "return json.decode('{\"a\":null}').a == json.null", "true",
         "a null member stays present");
  is_lua(L, "return json.decode('[1,null,3]')[2] == json.null", "true",
         "a null element keeps its place");
  is_lua(L, "return #json.decode('[1,null,3]')", "3", "array length counts the null");
  is_lua(L, "return json.encode({a = json.null})", "{\"a\":null}", "json.null encodes as null");
  is_lua(L, "return json.encode(json.null)", "null", "json.null at the root");
  is_lua(L, "return json.encode(nil)", "null", "nil at the root is null");
  is_lua(L, "return tostring(json.null)", "json.null", "json.null prints well");
  is_lua(L, "return type(json.null)", "userdata", "json.null is a userdata");
  is_lua(L, "return select(2, pcall(function() return json.null.x end)) ~= nil", "true",
         "json.null cannot be indexed");
}

static void test_markers(lua_State *L) {
  is_lua(L, "return json.encode(json.array())", "[]", "json.array() is []");
  is_lua(L, "return json.encode(json.object())", "{}", "json.object() is {}");
  is_lua(L, "return json.encode({})", "{}", "an unmarked empty table is {}");
  is_lua(L, "return json.encode(json.array({}))", "[]", "json.array(t) marks t");
  is_lua(L, "local t = {}; return json.array(t) == t", "true", "json.array returns its table");
  is_lua(L, "return json.encode(json.decode('[]'))", "[]", "[] round-trips");
  is_lua(L, "return json.encode(json.decode('{}'))", "{}", "{} round-trips");
  is_lua(L, "return json.encode(json.decode('{\"a\":[],\"b\":{},\"c\":[{}]}'), {sort_keys = true})",
         "{\"a\":[],\"b\":{},\"c\":[{}]}", "nested empties round-trip");
  is_lua(L, "return getmetatable(json.decode('[1]')).__jsontype", "array", "decode marks arrays");
  is_lua(L, "return getmetatable(json.decode('{}')).__jsontype", "object", "decode marks objects");
  is_lua(L, "return json.encode({1, 2, 3})", "[1,2,3]", "a sequence is an array");
  is_lua(L, "return json.encode({[1] = 'a', [3] = 'c'}, {sort_keys = true})",
         "{\"1\":\"a\",\"3\":\"c\"}", "an unmarked table with holes is an object");
  is_lua(L, "return json.encode({1, x = 2}, {sort_keys = true})", "{\"1\":1,\"x\":2}",
         "mixed keys make an object");
  is_lua(L, "return json.encode(json.array({1, nil, 3}))", "[1,null,3]",
         "holes in a marked array are null");
  is_lua(L, "return json.encode(json.object({1, 2}), {sort_keys = true})", "{\"1\":1,\"2\":2}",
         "a marked object with integer keys");
  is_lua(L, "return json.encode(setmetatable({}, {__jsontype = 'array'}))", "[]",
         "any metatable can carry __jsontype");
  lua_fails_with(L, "return json.encode({x = setmetatable({}, {__jsontype = 'list'})})",
                 "json: $.x: __jsontype of a table must be \"array\" or \"object\"",
                 "a bad __jsontype is an error");
  lua_fails_with(L, "return json.encode({list = json.array({1, x = 2})})",
                 "json: $.list: a table marked as array has a key that is not a positive integer",
                 "a marked array with a string key");
  lua_fails_with(L, "return json.encode(json.array({[1000] = 1}))", "array is too sparse",
                 "a very sparse array is refused");
  lua_fails_with(L, "return json.array(setmetatable({}, {}))", "already has a metatable",
                 "json.array refuses to replace a foreign metatable");
  is_lua(L, "return json.encode(json.object(json.array({})))", "{}", "a mark can be changed");
  lua_fails_with(L, "return json.array(5)", "table expected", "json.array(5) is misuse");
}

static void test_depth(lua_State *L) {
  is_lua(L, "local t = json.decode(string.rep('[', 200) .. string.rep(']', 200)); return type(t)",
         "table", "200 levels decode");
  lua_fails_with(L, "return json.decode(string.rep('[', 201) .. string.rep(']', 201))",
                 "json: line 1, column 201: nested deeper than 200 levels", "201 levels fail");
  lua_fails_with(
      L, "return json.decode('{\"a\":\\n' .. string.rep('[', 250) .. string.rep(']', 250) .. '}')",
      "json: line 2, column 200: nested deeper than 200 levels",
      "the depth error points at the bracket");
  lua_fails_with(L, "return json.decode(string.rep('[', 5000) .. string.rep(']', 5000))",
                 "json: line 1, column", "jansson's own limit gives a position too");
  is_lua(L,
         "local t = {} local c = t for i = 1, 199 do c[1] = {} c = c[1] end "
         "return #json.encode(t)",
         "400", "200 levels encode");
  lua_fails_with(L,
                 "local t = {} local c = t for i = 1, 200 do c[1] = {} c = c[1] end "
                 "return json.encode(t)",
                 "nested deeper than 200 levels", "201 levels do not encode");
  lua_fails_with(L, "local t = {} t.a = t return json.encode(t)",
                 "json: $.a.a.a.a.a.a.a.a....a.a.a.a.a.a.a.a: nested",
                 "a cycle fails and names its path");
  lua_fails_with(L, "local t = {} t.a = t return json.encode(t)", "(or a cycle)",
                 "the cycle error says what it may be");
}

static void test_strings(lua_State *L) {
  lua_fails_with(L, "return json.encode('\\xff')", "json: $: string is not valid UTF-8",
                 "invalid UTF-8 at the root");
  lua_fails_with(L, "return json.encode({x = {'ok', 'a\\xc3'}})",
                 "json: $.x[2]: string is not valid UTF-8", "invalid UTF-8 names its path");
  lua_fails_with(L, "return json.encode({['\\xff'] = 1})",
                 "json: $[\"\\xff\"]: key is not valid UTF-8", "invalid UTF-8 key");
  lua_fails_with(L, "return json.encode({['a b'] = {f = print}})",
                 "json: $[\"a b\"].f: a function cannot be encoded", "a function names its path");
  lua_fails_with(L, "return json.encode({io.stdout})", "json: $[1]: a FILE* cannot be encoded",
                 "a userdata cannot be encoded");
  lua_fails_with(L, "return json.encode({a = {[true] = 1}})",
                 "json: $.a: a boolean key cannot be encoded (object keys are strings or integers)",
                 "a boolean key");
  lua_fails_with(L, "return json.encode({[1.5] = 1})", "a non-integer number key cannot be encoded",
                 "a float key");
  is_lua(L, "return json.decode('\"\\\\u00e9\"') == '\\u{e9}'", "true", "\\u00e9 decodes");
  is_lua(L, "return json.decode('\"\\\\ud83d\\\\ude00\"') == '\\u{1F600}'", "true",
         "a surrogate pair decodes to one character");
  lua_fails_with(L, "return json.decode('\"\\\\ud800\"')",
                 "json: line 1, column 8: invalid Unicode", "a lone surrogate is an error");
  is_lua(L, "return json.encode('\\u{e9}\\u{1F600}')", "\"\xc3\xa9\xf0\x9f\x98\x80\"",
         "non-ASCII is written as UTF-8");
  is_lua(L, "return json.decode('\"a\\\\u0000b\"') == 'a\\0b'", "true", "\\u0000 decodes");
  is_lua(L, "return json.encode('a\\0b\\n\"')", "\"a\\u0000b\\n\\\"\"", "control bytes escaped");
  is_lua(L, "return json.encode({['a\\0b'] = 1})", "{\"a\\u0000b\":1}", "a NUL inside a key");
  lua_fails_with(L, "return json.decode('[\"\\xff\"]')",
                 "json: line 1, column 2:", "invalid UTF-8 in input");
}

static void test_decode_errors(lua_State *L) {
  lua_fails_with(L, "return json.decode('[1,\\n  2,\\n  x]')",
                 "json: line 3, column 3: invalid token near 'x'", "an error has line and column");
  lua_fails_with(L, "return json.decode('{\"a\":1,}')",
                 "json: line 1, column 8:", "a trailing comma");
  lua_fails_with(L, "return json.decode('')", "json: line 1, column 0:", "empty input");
  lua_fails_with(L, "return json.decode('[1] x')", "end of file expected", "trailing garbage");
  lua_fails_with(L, "return json.decode('123\\0')", "json: line 1, column 4: a NUL byte (write",
                 "a NUL byte after a scalar is refused, not read as the end");
  lua_fails_with(L, "return json.decode('{}\\0\\0')", "json: line 1, column 3: a NUL byte (write",
                 "NUL bytes after an object are refused");
  lua_fails_with(L, "return json.decode('[\"a\\0\"]')", "json: line 1, column 4: a NUL byte",
                 "a raw NUL inside a string is named where it is");
  lua_fails_with(L, "return json.decode({})", "string expected", "decode of a table is misuse");
  is_lua(L, "return json.decode(' \"x\" ')", "x", "a scalar document");
  is_lua(L, "return json.decode('true')", "true", "true");
  is_lua(L, "return json.decode('{\"a\":1,\"a\":2}').a", "2", "the last duplicate key wins");
}

static void test_options(lua_State *L) {
  is_lua(L, "return json.encode({a = {1}}, {indent = 2})", "{\n  \"a\": [\n    1\n  ]\n}",
         "indent");
  is_lua(L, "return json.encode({b = 1, a = 2, c = 3}, {sort_keys = true})",
         "{\"a\":2,\"b\":1,\"c\":3}", "sort_keys");
  lua_fails_with(L, "return json.encode({}, {indent = 40})", "indent must be an integer from 0",
                 "indent out of range");
  is_lua(L, "return json.encode(true) .. json.encode(false) .. json.encode('x')", "truefalse\"x\"",
         "scalars at the root");
  is_lua(L, "return json.max_depth", "200", "max_depth is exposed");
  is_lua(L,
         "local t = {} for i = 1, 100000 do t[i] = {id = i, name = 'n' .. i} end "
         "local back = json.decode(json.encode(t)) return #back .. ' ' .. back[100000].id",
         "100000 100000", "a large document round-trips");
}

static void test_error_tables(lua_State *L) {
  is_lua(L,
         "local e = select(2, pcall(json.decode, '[1,')) "
         "return e.kind .. ' ' .. tostring(e.code) .. ' ' .. tostring(e.retryable) .. ' | ' .. "
         "tostring(e)",
         "json nil false | json: line 1, column 3: ']' expected near end of file",
         "a decode error is a table: kind json, no code, not retryable; tostring is kind: message");
  is_lua(L,
         "local e = select(2, pcall(json.encode, {x = 0/0})) "
         "return e.kind .. ' ' .. e.message .. ' ' .. tostring(e.retryable)",
         "json $.x: NaN cannot be encoded false", "an encode error is a json error table too");
}

static void test_c_api(lua_State *L) {
  (void)luaL_dostring(L, "return {b = json.array(), a = 1.5}");
  int status = wf_json_encode(L, -1, WF_JSON_SORT_KEYS);
  is_int(status, LUA_OK, "wf_json_encode succeeds");
  is_str(lua_tostring(L, -1), "{\"a\":1.5,\"b\":[]}", "wf_json_encode pushes the text");
  lua_pop(L, 2);

  (void)luaL_dostring(L, "return {x = 0/0}");
  int top = lua_gettop(L);
  status = wf_json_encode(L, -1, 0);
  ok(status != LUA_OK, "wf_json_encode reports an error");
  is_str(lua_tostring(L, -1), "json: $.x: NaN cannot be encoded", "and pushes the message");
  is_int(lua_gettop(L), top + 1, "exactly one value pushed");
  lua_pop(L, 2);

  lua_pushinteger(L, 42);
  wf_json_encode(L, -1, WF_JSON_INDENT(2));
  is_str(lua_tostring(L, -1), "42", "a scalar through the C API");
  lua_pop(L, 2);
}

/* Pushes json.encode of a table (even budgets) or json.decode of a text
 * (odd ones), and its argument. */
static int push_json_call(lua_State *L, long budget) {
  lua_getglobal(L, "json");
  lua_getfield(L, -1, budget % 2 ? "decode" : "encode");
  lua_remove(L, -2);
  lua_getglobal(L, "data");
  lua_getfield(L, -1, budget % 2 ? "text" : (budget % 4 ? "list" : "huge"));
  lua_remove(L, -2);
  return 1;
}

/* encode and decode through every memory error Lua can raise in the middle. */
static void test_out_of_memory(void) {
  lua_State *L = oom_state("wf.json", "json", luaopen_wf_json);
  (void)luaL_dostring(L, "data = {list = {1, 2.5, 'x', json.null, {deep = {a = 'b'}}}, "
                         "text = '{\"a\":[1,2,{\"b\":null}],\"c\":\"d\"}', huge = {}}"
                         "for i = 1, 50 do huge[i] = {i, tostring(i)} end");
  struct oom_counts counts = oom_sweep(L, 400, 0, push_json_call);
  ok(counts.failures > 0 && counts.successes > 0,
     "out-of-memory runs fail cleanly, then succeed (%d, %d)", counts.failures, counts.successes);
  lua_close(L);
}

int main(void) {
  lua_State *L = test_state("wf.json", "json", luaopen_wf_json);
  luaL_requiref(L, "wfengine.core", engine_open_core, 0); /* the error metatable */
  lua_pop(L, 1);
  test_integers(L);
  test_floats(L);
  test_null(L);
  test_markers(L);
  test_depth(L);
  test_strings(L);
  test_decode_errors(L);
  test_options(L);
  test_error_tables(L);
  test_c_api(L);
  lua_close(L);
  test_out_of_memory();
  return tap_done();
}
