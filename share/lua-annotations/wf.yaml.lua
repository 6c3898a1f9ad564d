---@meta wf.yaml
-- LuaLS annotations of wf.yaml (docs/modules.md, "wf.yaml").

---Options of yaml.load and yaml.load_file.
---@class wf.yaml.Options
---@field env? boolean|table<string, string|number> interpolate ${VAR} from the environment, or from this table
---@field null? any what YAML null becomes (default nil; json.null keeps it visible)
---@field name? string the name used in messages
---@field max_depth? integer nesting limit, default 200
---@field max_nodes? integer node budget, default 1,000,000

---@class wf.yaml
local yaml = {}

---The Lua value of the one document in text (nil when there is none).
---@param text string
---@param opts? wf.yaml.Options
---@return any
function yaml.load(text, opts) end

---The same for a file; messages name path.
---@param path string
---@param opts? wf.yaml.Options
---@return any
function yaml.load_file(path, opts) end

return yaml
