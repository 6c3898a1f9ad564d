-- lint.lua: the static checks of `wfengine check` over every file a workflow
-- is made of (dsl.load lists them in wf.files): luacheck, when installed,
-- for undefined globals, unused locals and the like; and the engine's own
-- reading of `ctx.NAME` and `ctx.params.NAME` against what ctx holds and
-- the parameters the workflow declares. Each finding is one line,
-- FILE:LINE:COL: error|warning: what. Uses dsl (nearest name).
local dsl = require "wfengine.dsl"

local lint = {}

-- What ctx holds: runner.lua's Run:ctx fields and Ctx methods, read from
-- there so that a method added to ctx is known here too.
local CTX_FIELDS = require("wfengine.runner").ctx_fields()

-- luacheck codes that are errors: syntax (E0xx) and globals (W1xx: an
-- undefined variable, setting or mutating a global, an undefined field of
-- a standard library table). The rest are warnings.
local function is_error(code)
  return code:sub(1, 1) == "E" or code:sub(1, 2) == "W1"
end

-- ---- luacheck ----

local function shell_quote(text)
  return "'" .. text:gsub("'", "'\\''") .. "'"
end

-- The luacheck to run: $WFENGINE_LUACHECK, else `luacheck` on PATH; nil
-- when there is none.
local function find_luacheck()
  local given = os.getenv("WFENGINE_LUACHECK")
  if given then return given ~= "" and given or nil end
  local probe = io.popen("command -v luacheck 2>/dev/null")
  if not probe then return nil end
  local found = probe:read("l")
  probe:close()
  return found
end

local function luacheck_command(program, files)
  local argv = { shell_quote(program), "--no-config", "--std", "lua54",
    "--read-globals", "workflow", "step", "parallel",
    "--no-unused-args", "--no-max-line-length", "--codes", "--formatter", "plain", "--" }
  for _, file in ipairs(files) do argv[#argv + 1] = shell_quote(file) end
  return table.concat(argv, " ") .. " 2>&1"
end

-- Runs luacheck over files; returns the findings, or nil and why it did
-- not run.
local function run_luacheck(program, files)
  local pipe = io.popen(luacheck_command(program, files))
  if not pipe then return nil, "cannot start " .. program end
  local findings, other = {}, {}
  for line in pipe:lines() do
    local file, row, col, code, message = line:match("^(.-):(%d+):(%d+): %((%u%d+)%) (.*)$")
    if file then
      findings[#findings + 1] = { file = file, line = tonumber(row), col = tonumber(col),
        error = is_error(code), message = message .. " (luacheck " .. code .. ")" }
    elseif line ~= "" then
      other[#other + 1] = line
    end
  end
  local _, _, status = pipe:close()
  if status and status > 2 and #findings == 0 then
    return nil, string.format("%s did not run (exit %d): %s", program, status,
      other[1] or "no output")
  end
  return findings
end

-- ---- ctx fields ----

-- The text with comments and string literals blanked (newlines kept), so
-- that a pattern sees only code and positions stay where they were.
local function code_only(text)
  local out, i, n = {}, 1, #text
  local function blank(from, to)
    out[#out + 1] = text:sub(from, to):gsub("[^\n]", " ")
  end
  while i <= n do
    local c = text:sub(i, i)
    local long = text:match("^%-%-%[(=*)%[", i) or text:match("^%[(=*)%[", i)
    if long then
      local open_end = select(2, text:find("%[=*%[", i))
      local close = select(2, text:find("]" .. long .. "]", open_end + 1, true)) or n
      blank(i, close)
      i = close + 1
    elseif text:sub(i, i + 1) == "--" then
      local eol = (text:find("\n", i, true) or n + 1) - 1
      blank(i, eol)
      i = eol + 1
    elseif c == '"' or c == "'" then
      local j = i + 1
      while j <= n and text:sub(j, j) ~= c and text:sub(j, j) ~= "\n" do
        j = j + (text:sub(j, j) == "\\" and 2 or 1)
      end
      blank(i, j)
      i = j + 1
    else
      out[#out + 1] = c
      i = i + 1
    end
  end
  return table.concat(out)
end

local function position(text, at)
  local line, line_start = 1, 1
  for nl in text:sub(1, at - 1):gmatch("()\n") do
    line, line_start = line + 1, nl + 1
  end
  return line, at - line_start + 1
end

local function suggestion(name, known)
  local hint = dsl.nearest(name, known)
  return hint and (" (did you mean '" .. hint .. "'?)") or ""
end

-- `ctx.NAME` / `ctx:NAME` with a NAME ctx does not have, and
-- `ctx.params.NAME` with a NAME the workflow does not declare.
local function check_ctx(file, text, params, findings)
  local code = code_only(text)
  local function add(at, message)
    local line, col = position(code, at)
    findings[#findings + 1] = { file = file, line = line, col = col, error = true,
      message = message }
  end
  for at, name in code:gmatch("%f[%w_]()ctx%s*[.:]%s*([%a_][%w_]*)") do
    local before = code:sub(1, at - 1):match("([.:]?)%s*$")
    if before == "" and not CTX_FIELDS[name] then
      add(at, string.format("ctx has no field '%s'%s", name, suggestion(name, CTX_FIELDS)))
    end
  end
  for at, name in code:gmatch("%f[%w_]()ctx%s*%.%s*params%s*%.%s*([%a_][%w_]*)") do
    local before = code:sub(1, at - 1):match("([.:]?)%s*$")
    if before == "" and params[name] == nil then
      add(at, string.format("ctx.params has no parameter '%s'%s", name, suggestion(name, params)))
    end
  end
end

local function by_position(a, b)
  if a.file ~= b.file then return a.file < b.file end
  if a.line ~= b.line then return a.line < b.line end
  return a.col < b.col
end

-- Checks every file of wf; writes the findings to out and returns the
-- number of errors among them. A note says when luacheck is not there.
function lint.check(wf, out)
  local findings = {}
  for _, file in ipairs(wf.files) do
    check_ctx(file, dsl.read_file(file) or "", wf.params, findings)
  end
  local program = find_luacheck()
  if not program then
    out:write("wfengine: note: luacheck is not installed: undefined globals and unused locals ",
      "were not checked (install the Debian package lua-check)\n")
  else
    local found, err = run_luacheck(program, wf.files)
    if not found then out:write("wfengine: note: ", err, "\n") end
    for _, f in ipairs(found or {}) do findings[#findings + 1] = f end
  end
  table.sort(findings, by_position)
  local errors = 0
  for _, f in ipairs(findings) do
    if f.error then errors = errors + 1 end
    out:write(string.format("%s:%d:%d: %s: %s\n", f.file, f.line, f.col,
      f.error and "error" or "warning", f.message))
  end
  return errors
end

return lint
