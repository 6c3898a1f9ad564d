-- starter.lua: `wfengine new NAME` writes NAME.lua, a commented starter
-- workflow that passes `wfengine check` and `--simulate` as written
-- (tests/lua/authoring.t). The language: docs/workflow-language.md.
local starter = {}

local TEMPLATE = [=[
-- {{name}}.lua: what this workflow does, in a line or two.
-- Check it:   wfengine check {{name}}.lua
-- Rehearse:   wfengine {{name}}.lua --simulate        (touches nothing, no time passes)
-- Run it:     wfengine {{name}}.lua -p target=...     (`wfengine --help` for the rest)
-- The language: docs/workflow-language.md; the modules (wf.sql, wf.http,
-- wf.mail, wf.json, wf.yaml): docs/modules.md.
local wf = require "wf"
local json = require "wf.json"

return wf.workflow {
  name = "{{name}}",
  description = "a starter: replace these steps with yours",
  -- Parameters: -p NAME=VALUE, an env variable, the -c config's params:, or
  -- the default. Each is validated before the first step runs.
  params = {
    target = { default = "example", pattern = "[a-z][a-z0-9_]*", doc = "what to work on" },
    -- token = { secret = true, env = "API_TOKEN" },   -- masked as *** everywhere
  },
  -- The default retry policy of every step (a step's own retry is merged over it).
  retry = { attempts = 3, delay = 1, backoff = 2 },
  -- On a failure, undo what the completed steps did, newest first ("pause"
  -- stops for a person instead).
  on_failure = "compensate",
  steps = {
    wf.step "prepare" {
      title = "Prepare the work",
      -- run returns a result (JSON-serialisable): it is journaled, and
      -- compensate gets it back, even after a crash and a resume.
      run = function(ctx)
        ctx:log("preparing %s (mode %s)", ctx.params.target, ctx.mode)
        ctx.state.prepared_at = os.time()   -- shared with the later steps, saved
        return { target = ctx.params.target }
      end,
      -- Undoes what run did, given its result. Make it safe to run twice.
      compensate = function(ctx, result)
        ctx:log("undoing the preparation of %s", result.target)
      end,
    },
    -- Steps of a parallel group run at the same time.
    wf.parallel "work" {
      wf.step "left" {
        timeout = 60,   -- seconds per attempt
        run = function(ctx)
          ctx:sleep(1)   -- waits without blocking the other steps
          return json.array { "left done" }
        end,
      },
      wf.step "right" {
        -- when: false skips the step (journaled as skipped)
        when = function(ctx) return ctx.params.target ~= "nothing" end,
        run = function(ctx)
          ctx:progress(1, 1)
          return "right done"
        end,
      },
    },
    wf.step "finish" {
      title = "Report",
      run = function(ctx)
        ctx:log("prepared at %d", ctx.state.prepared_at)
      end,
    },
  },
}
]=]

-- The starter's text for a workflow named name.
function starter.text(name)
  return (TEMPLATE:gsub("{{name}}", function() return name end))
end

-- Writes the starter to NAME.lua (NAME may already end in .lua); refuses
-- to overwrite. Returns nil on success, or a one-line message.
function starter.write(target)
  local path = target:find("%.lua$") and target or (target .. ".lua")
  local name = path:match("([^/]+)%.lua$")
  if not name or name == "" then return string.format("new: '%s' names no file", target) end
  local existing = io.open(path, "rb")
  if existing then
    existing:close()
    return string.format("new: %s already exists (nothing written)", path)
  end
  local file, err = io.open(path, "wb")
  if not file then return "new: cannot write " .. tostring(err) end
  local ok, write_err = file:write(starter.text(name))
  local closed, close_err = file:close()
  if not ok or not closed then
    return "new: cannot write " .. path .. ": " .. tostring(write_err or close_err)
  end
  return nil, path
end

return starter
