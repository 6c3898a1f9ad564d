-- tap.lua: TAP assertions for tests written as workflows. A test workflow
-- runs under `wfengine run -q` (which prints nothing on success), so these
-- lines are the only thing on stdout and prove reads them. Put
-- WFENGINE_PATH=tests/lib (docs/workflow-language.md, "Modules") to require it.
local tap = {}

local count, failed = 0, 0

local function show(value)
  if type(value) == "string" then return string.format("%q", value) end
  return tostring(value)
end

function tap.ok(cond, name)
  count = count + 1
  if not cond then failed = failed + 1 end
  io.stdout:write(string.format("%sok %d - %s\n", cond and "" or "not ", count, name or ""))
  io.stdout:flush()
  return cond
end

function tap.is(got, want, name)
  local same = got == want and math.type(got) == math.type(want)
  if not tap.ok(same, name) then
    tap.diag(string.format("got %s (%s), want %s (%s)", show(got), math.type(got) or type(got),
      show(want), math.type(want) or type(want)))
  end
  return same
end

function tap.like(got, pattern, name)
  local matched = type(got) == "string" and got:find(pattern) ~= nil
  if not tap.ok(matched, name) then
    tap.diag(string.format("%s does not match %q", show(got), pattern))
  end
  return matched
end

-- Calls fn(...) and returns the error it raised, asserting that it raised.
function tap.raises(fn, name, ...)
  local ok, err = pcall(fn, ...)
  if not tap.ok(not ok, name) then tap.diag("no error was raised") end
  return err
end

function tap.diag(text)
  io.stdout:write("# ", (tostring(text):gsub("\n", "\n# ")), "\n")
end

-- Prints the plan; call it in the last step.
function tap.done()
  io.stdout:write(string.format("1..%d\n", count))
  io.stdout:flush()
  return failed == 0
end

return tap
