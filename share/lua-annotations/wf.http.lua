---@meta wf.http
-- LuaLS annotations of wf.http (docs/modules.md, "wf.http").

---The options of http.request (also the last argument of the shorthands).
---@class wf.http.Request
---@field method? string "GET" (default), "POST", "PUT", "PATCH", "DELETE", "HEAD", any token
---@field url string required; http:// or https:// only
---@field query? table|string appended to the URL, keys sorted, values percent-encoded
---@field headers? table<string|integer, string> { ["X-Name"] = value } or ready lines
---@field json? any a Lua value sent as JSON
---@field body? string sent as it is (json or body, not both)
---@field timeout? number seconds for the whole request, default 120 (0: none)
---@field connect_timeout? number seconds to connect, default 15
---@field auth? { user: string, password: string }|string[] Basic authentication
---@field bearer? string Authorization: Bearer ...
---@field idempotency_key? boolean|string header Idempotency-Key
---@field raise? boolean false: return every status instead of raising for >= 400
---@field follow? boolean follow redirects (default true)
---@field insecure? boolean disables TLS certificate verification (and says so)
---@field max_body? integer bytes of response body accepted, default 64 MiB

---@class wf.http.Response
---@field status integer
---@field headers table<string, string> lower-case names
---@field body string
---@field json any the decoded body for a JSON content type
---@field time number seconds
---@field url string the final URL after redirects
---@field reason string the status text

---@class wf.http
---@field defaults { timeout: number, connect_timeout: number, max_body: integer, follow: boolean, max_redirects: integer, error_body: integer, user_agent: string } module-wide defaults
local http = {}

---Sends a request.
---@param opts wf.http.Request
---@return wf.http.Response
function http.request(opts) end

---@param url string
---@param opts? wf.http.Request
---@return wf.http.Response
function http.get(url, opts) end

---@param url string
---@param opts? wf.http.Request
---@return wf.http.Response
function http.head(url, opts) end

---@param url string
---@param opts? wf.http.Request
---@return wf.http.Response
function http.delete(url, opts) end

---A string data is the body as it is, any other value is sent as JSON.
---@param url string
---@param data any
---@param opts? wf.http.Request
---@return wf.http.Response
function http.post(url, data, opts) end

---@param url string
---@param data any
---@param opts? wf.http.Request
---@return wf.http.Response
function http.put(url, data, opts) end

---@param url string
---@param data any
---@param opts? wf.http.Request
---@return wf.http.Response
function http.patch(url, data, opts) end

---Runs the requests together (at most concurrency at a time); responses in order.
---@param requests wf.http.Request[]|{ concurrency?: integer }
---@return wf.http.Response[]
function http.parallel(requests) end

---Percent-encodes text.
---@param text string
---@return string
function http.escape(text) end

return http
