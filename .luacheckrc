-- .luacheckrc: `make lint` runs luacheck over all of the project's Lua with
-- this configuration (`wfengine check` builds its own for one workflow).
std = "lua54"
max_line_length = 120
-- `function(ctx)` that does not use ctx is how steps are written.
unused_args = false

-- Workflows and their modules: the DSL's globals (docs/workflow-language.md).
local workflow_globals = { "workflow", "step", "parallel" }
files["clone_sandbox.lua"] = { read_globals = workflow_globals }
files["workflows"] = { read_globals = workflow_globals }
files["tests/e2e"] = { read_globals = workflow_globals }
files["tests/lua/workflows"] = { read_globals = workflow_globals }
files["tests/sql"] = { read_globals = workflow_globals }
files["tests/http"] = { read_globals = workflow_globals }
files["tests/mail"] = { read_globals = workflow_globals }
files["tests/state"] = { read_globals = workflow_globals }
files["tests/console"] = { read_globals = workflow_globals }
-- Test scripts hold long literal expectations (messages, headers, SQL).
for _, dir in ipairs { "tests/sql", "tests/http", "tests/mail", "tests/lib" } do
  files[dir] = files[dir] or {}
  files[dir].max_line_length = false
end
exclude_files = { "build/**", "tests/fuzz/corpus/**" }
