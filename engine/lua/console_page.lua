-- console_page.lua: `wfengine show RUN --html`: the console's run page as
-- one self-contained file (for a ticket): the embedded CSS and JavaScript
-- inline, the run's events as a JSON data block, and a Content-Security-Policy
-- that allows exactly those two inline blocks (by hash) and nothing from
-- the network.
local json = require "wf.json"
local journal = require "wfengine.journal"
local httpd = require "wf.httpd"
local assets = require "wfengine.assets"

local page = {}

-- JSON that cannot end the <script> element it sits in.
local function script_safe(text)
  return (text:gsub("[<>&]", { ["<"] = "\\u003c", [">"] = "\\u003e", ["&"] = "\\u0026" }))
end

local function html_text(text)
  return (tostring(text):gsub("[<>&\"']", { ["<"] = "&lt;", [">"] = "&gt;", ["&"] = "&amp;",
    ['"'] = "&quot;", ["'"] = "&#39;" }))
end

function page.render(run_id, events)
  local printable = {}
  for i, ev in ipairs(events) do printable[i] = journal.printable(ev) end
  local data = script_safe(json.encode { run_id = run_id, events = json.array(printable) })
  local css, js = assets["app.css"], assets["app.js"]
  local csp = string.format("default-src 'none'; style-src 'sha256-%s'; script-src 'sha256-%s'; "
    .. "img-src data:; base-uri 'none'; form-action 'none'", httpd.sha256_base64(css),
    httpd.sha256_base64(js))
  return table.concat {
    '<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n',
    '<meta http-equiv="Content-Security-Policy" content="', csp, '">\n',
    '<title>wfengine run ', html_text(run_id), '</title>\n<style>', css, '</style>\n</head>\n<body>\n',
    '<header><span class="brand">wfengine</span> run ', html_text(run_id), ' (saved page)</header>\n',
    '<main id="main"></main>\n<script type="application/json" id="wf-data">', data, '</script>\n',
    '<script>', js, '</script>\n</body>\n</html>\n' }
end

function page.show(store, run_id, fail)
  local ok, bad = journal.check_run_id(run_id)
  if not ok then return fail("%s", bad) end
  local events, err = store:events(run_id)
  if not events then return fail("%s", err) end
  io.stdout:write(page.render(run_id, events))
  return require("wfengine.core").EXIT.SUCCEEDED
end

return page
