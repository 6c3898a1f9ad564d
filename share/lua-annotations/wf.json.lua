---@meta wf.json
-- LuaLS annotations of wf.json (docs/modules.md, "wf.json").

---@class wf.json
---@field null userdata the sentinel that stands for JSON null (true in `if v then`)
---@field max_depth integer the nesting limit, 200
local json = {}

---Encodes a value as JSON text.
---@param value any
---@param opts? { indent?: integer, sort_keys?: boolean }
---@return string
function json.encode(value, opts) end

---Decodes JSON text; errors name line and column.
---@param text string
---@return any
function json.decode(text) end

---Marks t (or a new table) to encode as an array.
---@generic T: table
---@param t? T
---@return T
function json.array(t) end

---Marks t (or a new table) to encode as an object.
---@generic T: table
---@param t? T
---@return T
function json.object(t) end

return json
