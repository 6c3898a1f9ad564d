-- errors.lua: the structured errors of docs/workflow-language.md#errors. Bindings raise them
-- from C (wf_raise), ctx:fail from Lua; a plain error("text") becomes a
-- retryable error of kind "lua". Each keeps where it was raised (the
-- workflow's file:line) and a traceback for `show`.
local core = require "wfengine.core"

local errors = {}

local meta = core.error_meta()

-- Copies the fields of t into a new error table with the error metatable.
function errors.new(t)
  local err = {}
  for k, v in pairs(t) do err[k] = v end
  err.message = tostring(err.message or "error")
  err.kind = err.kind or "lua"
  if err.retryable == nil then err.retryable = true end
  return setmetatable(err, meta)
end

-- The first frame outside the engine's own Lua: where the workflow was when
-- the error happened.
local function workflow_frame(level)
  while true do
    local info = debug.getinfo(level, "Sl")
    if not info then return nil end
    local source = info.source or ""
    if info.currentline and info.currentline > 0 and source:sub(1, 1) == "@"
        and not source:find("^@engine/") and not source:find("^@bindings/") then
      return source:sub(2) .. ":" .. info.currentline
    end
    level = level + 1
  end
end

-- Splits "file:line: message" as error() makes it.
local function split_position(text)
  local where, rest = text:match("^([^\n]-:%d+): (.*)$")
  if where then return where, rest end
  return nil, text
end

-- The message handler for xpcall around workflow code: turns anything raised
-- into an error table with where and traceback.
function errors.handler(raised)
  local err
  if type(raised) == "table" then
    err = raised
    if getmetatable(err) == nil then err = errors.new(err) end
    if err.message == nil then err.message = "error" end
    if err.kind == nil then err.kind = "lua" end
    if err.retryable == nil then err.retryable = true end
    err.where = err.where or workflow_frame(3)
  else
    local text = type(raised) == "string" and raised or tostring(raised)
    local where, message = split_position(text)
    err = errors.new { kind = "lua", message = message, retryable = true,
      where = where or workflow_frame(3) }
  end
  err.traceback = err.traceback or debug.traceback("", 2):gsub("^\n", "")
  return err
end

-- Any value as an error table (for errors that did not pass the handler).
function errors.normalize(raised)
  if type(raised) == "table" and getmetatable(raised) == meta then return raised end
  if type(raised) == "table" then return errors.new(raised) end
  local where, message = split_position(tostring(raised))
  return errors.new { kind = "lua", message = message, where = where }
end

-- One line: "kind code: message (where)".
function errors.line(err)
  err = errors.normalize(err)
  local text = tostring(err)
  if err.where then text = text .. " (" .. err.where .. ")" end
  return text
end

-- The journal's form: only plain fields, no traceback.
function errors.record(err)
  err = errors.normalize(err)
  local out = {}
  for k, v in pairs(err) do
    local t = type(v)
    if k ~= "traceback" and (t == "string" or t == "number" or t == "boolean") then out[k] = v end
  end
  return out
end

return errors
