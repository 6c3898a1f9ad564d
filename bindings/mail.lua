-- mail.lua: module "wf.mail", mailboxes (IMAP) and sending (SMTP) for
-- workflows. Uses the C primitives of "wf.mail.core" (mail.c: curl transfers
-- on the engine's loop, sandbox_address). Here: mailbox name quoting and
-- modified UTF-7, RFC 5322 message building, modes, and errors refined from
-- the server's own reply codes.
local core = require "wf.mail.core"

local mail = {}

mail.defaults = { timeout = 60, connect_timeout = 15 }

mail.sandbox_address = core.sandbox_address

local function fail_usage(message)
  error(core.error("usage", nil, false, message), 3)
end

-- Every value that lands in a header or an SMTP/IMAP command line: CR or LF
-- would start a header or a command of the caller's text (a Bcc:, a RCPT
-- TO), NUL cuts the C string. field names the value in the error.
local function line_safe(field, value)
  if type(value) ~= "string" then fail_usage("mail: " .. field .. " must be a string") end
  if value:find("[%z\r\n]") then
    fail_usage("mail: " .. field .. " contains a line break or NUL byte (refused in headers)")
  end
  return value
end

-- ---- base64 and encoded words ----

local B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

local function base64(bytes, alphabet, pad)
  alphabet = alphabet or B64
  local out = {}
  for i = 1, #bytes, 3 do
    local a, b, c = bytes:byte(i, i + 2)
    local n = (a << 16) | ((b or 0) << 8) | (c or 0)
    local chars = 2 + (b and 1 or 0) + (c and 1 or 0)
    for k = 1, 4 do
      if k <= chars then
        local index = (n >> (6 * (4 - k))) & 63
        out[#out + 1] = alphabet:sub(index + 1, index + 1)
      elseif pad ~= false then
        out[#out + 1] = "="
      end
    end
  end
  return table.concat(out)
end

local function is_ascii(text)
  return not text:find("[\128-\255]")
end

-- RFC 2047 encoded words for a header value with non-ASCII text: UTF-8 cut
-- at character boundaries so that each word stays within 75 characters.
local function encode_words(text)
  local words, chunk = {}, ""
  for _, code in utf8.codes(text) do
    local char = utf8.char(code)
    if #chunk + #char > 39 then -- 52 base64 characters: "Subject: " + word fits in 78
      words[#words + 1] = "=?UTF-8?B?" .. base64(chunk) .. "?="
      chunk = ""
    end
    chunk = chunk .. char
  end
  if chunk ~= "" then words[#words + 1] = "=?UTF-8?B?" .. base64(chunk) .. "?=" end
  return table.concat(words, "\r\n ")
end

local function header_text(value, field)
  value = line_safe(field, tostring(value))
  if is_ascii(value) and #value <= 900 then return value end
  if not utf8.len(value) then fail_usage("mail header value is not valid UTF-8") end
  return encode_words(value)
end

-- ---- addresses ----

local function address_list(value, field)
  if value == nil then return {} end
  if type(value) == "string" then value = { value } end
  if type(value) ~= "table" then fail_usage("mail: " .. field .. " must be an address or a list") end
  local out = {}
  for _, a in ipairs(value) do out[#out + 1] = line_safe(field, a) end
  return out
end

-- The bare address of "Name <a@b>" or "a@b".
local function bare(address)
  local inside = address:match("<([^>]*)>")
  return (inside or address):match("^%s*(.-)%s*$")
end

-- "Name <a@b>" with a non-ASCII name becomes an encoded word + <a@b>.
local function header_address(address)
  local name, addr = address:match("^%s*(.-)%s*<([^>]*)>%s*$")
  if name and name ~= "" and not is_ascii(name) then
    return encode_words(name:gsub('^"(.*)"$', "%1")) .. " <" .. addr .. ">"
  end
  return address
end

-- ---- RFC 5322 messages ----

local DAYS = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" }
local MONTHS = { "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" }

local function rfc5322_date(t)
  local d = os.date("!*t", t)
  return string.format("%s, %02d %s %04d %02d:%02d:%02d +0000", DAYS[d.wday], d.day,
    MONTHS[d.month], d.year, d.hour, d.min, d.sec)
end

local id_counter = 0
local function message_id(from)
  id_counter = id_counter + 1
  local domain = bare(from or ""):match("@([^@>%s]+)$") or "wfengine.invalid"
  return string.format("<%d.%d.%06x.%d@%s>", core.time(), id_counter, math.random(0, 0xffffff),
    math.floor(core.now() * 1000) % 100000, domain)
end

-- mail.message{ from, to, cc, subject, body, headers = {Name = value},
-- date, message_id } -> the message text (CRLF lines), and its Message-ID.
function mail.message(m)
  if type(m) ~= "table" then fail_usage("mail.message: give a table") end
  if type(m.from) ~= "string" then fail_usage("mail: from is required") end
  line_safe("from", m.from)
  local to, cc = address_list(m.to, "to"), address_list(m.cc, "cc")
  if m.reply_to ~= nil then line_safe("reply_to", m.reply_to) end
  local id = m.message_id ~= nil and line_safe("message_id", m.message_id) or message_id(m.from)
  local lines = {
    "Date: " .. (m.date ~= nil and line_safe("date", m.date) or rfc5322_date(core.time())),
    "From: " .. header_address(m.from),
  }
  local function addresses(name, list)
    if #list == 0 then return end
    local shown = {}
    for i, a in ipairs(list) do shown[i] = header_address(a) end
    lines[#lines + 1] = name .. ": " .. table.concat(shown, ",\r\n ")
  end
  addresses("To", to)
  addresses("Cc", cc)
  if m.reply_to then lines[#lines + 1] = "Reply-To: " .. header_address(m.reply_to) end
  lines[#lines + 1] = "Subject: " .. header_text(m.subject or "", "subject")
  lines[#lines + 1] = "Message-ID: " .. id
  if m.headers then
    local names = {}
    for name in pairs(m.headers) do names[#names + 1] = name end
    table.sort(names)
    for _, name in ipairs(names) do
      if not tostring(name):match("^[%w%-]+$") then fail_usage("mail: bad header name " .. tostring(name)) end
      lines[#lines + 1] = name .. ": " .. header_text(m.headers[name], "headers." .. name)
    end
  end
  local body = tostring(m.body or ""):gsub("\r\n", "\n"):gsub("\r", "\n")
  lines[#lines + 1] = "MIME-Version: 1.0"
  lines[#lines + 1] = "Content-Type: text/plain; charset=UTF-8"
  local long_line = false
  for line in (body .. "\n"):gmatch("([^\n]*)\n") do
    if #line > 998 then long_line = true end
  end
  local text
  if is_ascii(body) and not long_line then
    lines[#lines + 1] = "Content-Transfer-Encoding: 7bit"
    text = body:gsub("\n", "\r\n")
  else
    lines[#lines + 1] = "Content-Transfer-Encoding: base64"
    local encoded, wrapped = base64(body), {}
    for i = 1, #encoded, 76 do wrapped[#wrapped + 1] = encoded:sub(i, i + 75) end
    text = table.concat(wrapped, "\r\n")
  end
  if text:sub(-2) ~= "\r\n" then text = text .. "\r\n" end
  return table.concat(lines, "\r\n") .. "\r\n\r\n" .. text, id
end

-- ---- IMAP mailbox names: quoted strings of modified UTF-7 (RFC 3501 5.1.3) ----

local UTF7_ALPHABET = B64:sub(1, 63) .. ","

local function utf7_encode(name)
  local out, units = {}, {}
  local function flush()
    if #units == 0 then return end
    local bytes = {}
    for _, u in ipairs(units) do bytes[#bytes + 1] = string.char(u >> 8, u & 255) end
    out[#out + 1] = "&" .. base64(table.concat(bytes), UTF7_ALPHABET, false) .. "-"
    units = {}
  end
  for _, code in utf8.codes(name) do
    if code >= 0x20 and code <= 0x7e then
      flush()
      out[#out + 1] = code == 0x26 and "&-" or string.char(code)
    elseif code >= 0x10000 then
      code = code - 0x10000
      units[#units + 1] = 0xD800 + (code >> 10)
      units[#units + 1] = 0xDC00 + (code & 0x3FF)
    else
      units[#units + 1] = code
    end
  end
  flush()
  return table.concat(out)
end

local function utf7_decode(name)
  return (name:gsub("&([^-]*)-", function(encoded)
    if encoded == "" then return "&" end
    local bits, nbits, bytes = 0, 0, {}
    for i = 1, #encoded do
      local index = UTF7_ALPHABET:find(encoded:sub(i, i), 1, true)
      if not index then return "&" .. encoded .. "-" end
      bits = (bits << 6) | (index - 1)
      nbits = nbits + 6
      if nbits >= 8 then
        nbits = nbits - 8
        bytes[#bytes + 1] = (bits >> nbits) & 255
      end
    end
    local chars, i = {}, 1
    while i + 1 <= #bytes do
      local unit = (bytes[i] << 8) | bytes[i + 1]
      i = i + 2
      if unit >= 0xD800 and unit < 0xDC00 and i + 1 <= #bytes then
        local low = (bytes[i] << 8) | bytes[i + 1]
        i = i + 2
        unit = 0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00)
      end
      chars[#chars + 1] = utf8.char(unit)
    end
    return table.concat(chars)
  end))
end

local function check_mailbox(name)
  if type(name) ~= "string" or name == "" then fail_usage("mail: a mailbox name is required") end
  if name:find("[%z\r\n]") then fail_usage("mail: mailbox names cannot contain line breaks") end
  if not utf8.len(name) then fail_usage("mail: mailbox name is not valid UTF-8") end
  return utf7_encode(name)
end

local function quote(wire_name)
  return '"' .. wire_name:gsub('[\\"]', "\\%0") .. '"'
end

local function percent(text)
  return (text:gsub("[^%w%-%._~]", function(c) return string.format("%%%02X", c:byte()) end))
end

-- The untagged LIST replies' names: quoted strings or atoms.
local function parse_list(output)
  local names = {}
  for line in output:gmatch("[^\r\n]+") do
    local rest = line:match("^%* LIST %b() (.*)$")
    if rest then
      local after_separator = rest:match('^"[^"]*" (.*)$') or rest:match("^NIL (.*)$")
      if after_separator then
        local name = after_separator:match('^"(.*)"$')
        if name then name = name:gsub("\\(.)", "%1") else name = after_separator end
        names[#names + 1] = utf7_decode(name)
      end
    end
  end
  return names
end

-- ---- errors from the server's reply codes ----

-- RFC 5530 response codes that say "try again later".
local TRANSIENT_IMAP = { UNAVAILABLE = true, INUSE = true, SERVERBUG = true, LIMIT = true }

local function refine(err, replies, what)
  local last_imap, last_smtp
  for line in replies:gmatch("[^\r\n]+") do
    local status_text = line:match("^%S+ (NO .*)$") or line:match("^%S+ (BAD .*)$")
    if status_text then last_imap = status_text end
    local code, text = line:match("^([45]%d%d)[ -](.*)$")
    if code then last_smtp = { code = code, text = text } end
  end
  if err.curl_code == 64 then -- CURLE_USE_SSL_FAILED: no STARTTLS, nothing was sent
    err.code, err.retryable = "tls_required", false
    err.message = what .. ": the server offers no STARTTLS and this host is not loopback, so the "
      .. "password is not sent in clear (use imaps:// or smtps://, or insecure = true)"
  elseif err.curl_code == 67 then -- CURLE_LOGIN_DENIED
    err.code, err.retryable = "auth_failed", false
    err.message = what .. ": authentication failed"
    if last_imap then err.message = err.message .. " (" .. last_imap .. ")" end
    if last_smtp then err.message = err.message .. " (" .. last_smtp.code .. " " .. last_smtp.text .. ")" end
  elseif last_imap and not err.retryable then
    local bracket = last_imap:match("^%u+ %[([%w%-]+)")
    err.code = bracket or last_imap:match("^(%u+)")
    err.retryable = TRANSIENT_IMAP[bracket or ""] == true
    err.message = what .. ": " .. last_imap
  elseif last_smtp and (err.kind == "mail") then
    err.code = last_smtp.code
    err.retryable = last_smtp.code:sub(1, 1) == "4"
    err.message = what .. ": " .. last_smtp.code .. " " .. last_smtp.text
  end
  err.replies = nil
  return err
end

local function perform(spec)
  spec.timeout = spec.timeout or mail.defaults.timeout
  spec.connect_timeout = spec.connect_timeout or mail.defaults.connect_timeout
  local result = core.perform({ spec })[1]
  if result.error then error(refine(result.error, result.replies or "", spec.what), 0) end
  return result.output
end

-- ---- IMAP ----

local Box = { __name = "wf.mail.imap" }
Box.__index = Box

-- The host of a URL: lower-case, without userinfo, port or [brackets].
local function url_host(url)
  local authority = (url:match("^%a[%w+.-]*://([^/?#]*)") or ""):gsub("^.*@", "")
  return (authority:match("^%[([^%]]*)%]") or authority:match("^([^:]*)")):lower()
end

-- 127.0.0.0/8, ::1 and localhost: a password sent there never leaves the machine.
local function is_loopback(host)
  if host == "localhost" or host == "localhost." or host == "::1" then return true end
  local b, c, d = host:match("^127%.(%d+)%.(%d+)%.(%d+)$")
  return b ~= nil and tonumber(b) <= 255 and tonumber(c) <= 255 and tonumber(d) <= 255
end

-- STARTTLS on imap:// and smtp:// (imaps:// and smtps:// are TLS from the
-- start): "required" (the transfer fails before AUTH when the server offers
-- none), "try" or "none". TLS is required unless the host is loopback or
-- the caller says insecure = true.
local function tls_level(opts, kind)
  local tls = opts.tls
  if tls ~= nil and tls ~= "required" and tls ~= "none" then
    fail_usage("mail." .. kind .. ': tls must be "required" or "none"')
  end
  local scheme = (opts.url:match("^(%a[%w+.-]*):") or ""):lower()
  if tls == "required" or scheme == "imaps" or scheme == "smtps" then return "required" end
  local trusted = is_loopback(url_host(opts.url)) or opts.insecure == true
  if tls == "none" and not trusted and (opts.user ~= nil or opts.password ~= nil) then
    fail_usage("mail." .. kind .. ': tls = "none" would send the password in clear to '
      .. url_host(opts.url) .. " (not loopback): use TLS, or insecure = true")
  end
  if trusted then return tls or "try" end
  return tls or "required"
end

local function settings(opts, kind)
  if type(opts) ~= "table" then fail_usage("mail." .. kind .. ": give a table") end
  if type(opts.url) ~= "string" then fail_usage("mail." .. kind .. ": url is required") end
  -- IMAP LOGIN sends both inside a quoted string: a line break would end it.
  if opts.user ~= nil then line_safe(kind .. " user", opts.user) end
  if opts.password ~= nil then
    line_safe(kind .. " password", opts.password)
    local ok, why = core.add_secret(tostring(opts.password))
    if not ok then fail_usage("mail." .. kind .. ": the password is " .. why) end
  end
  return {
    url = opts.url:gsub("/+$", ""), user = opts.user, password = opts.password,
    timeout = opts.timeout, connect_timeout = opts.connect_timeout,
    insecure = opts.insecure == true, tls = tls_level(opts, kind),
  }
end

-- insecure = true is said in the run's output, with what it allows here.
local function warn_insecure(conn)
  if not conn.insecure then return end
  local clear = conn.tls ~= "required" and not is_loopback(url_host(conn.url))
  core.log("warn", "TLS certificate verification disabled (insecure = true) for " .. conn.url
    .. (clear and "; STARTTLS is optional, so the password may cross the network in clear" or ""))
end

function mail.imap(opts)
  local box = setmetatable(settings(opts, "imap"), Box)
  warn_insecure(box)
  return box
end

function Box:__tostring()
  return "imap " .. self.url
end

function Box:_spec(what, request)
  return { what = what, url = self.url .. "/", request = request, user = self.user,
    password = self.password, timeout = self.timeout, connect_timeout = self.connect_timeout,
    insecure = self.insecure, tls = self.tls }
end

-- Changes are reported in dry-run and skipped in simulate.
local function changing(what)
  local mode = core.mode()
  if mode == "dry-run" then core.log("would", what) return false end
  return mode ~= "simulate"
end

function Box:list()
  if core.mode() == "simulate" then return {} end
  return parse_list(perform(self:_spec("list mailboxes on " .. self.url, 'LIST "" "*"')))
end

function Box:count(name)
  local wire = check_mailbox(name)
  if core.mode() == "simulate" then return 0 end
  local output = perform(self:_spec("count mailbox " .. name, "STATUS " .. quote(wire) .. " (MESSAGES)"))
  local n = output:match("MESSAGES (%d+)")
  if not n then
    error(core.error("mail", "bad_reply", false, "count mailbox " .. name .. ": no MESSAGES in the reply"), 0)
  end
  return math.tointeger(tonumber(n))
end

function Box:create(name)
  local wire = check_mailbox(name)
  local what = "create mailbox " .. name .. " on " .. self.url
  if changing(what) then perform(self:_spec(what, "CREATE " .. quote(wire))) end
  return true
end

function Box:delete(name)
  local wire = check_mailbox(name)
  local what = "delete mailbox " .. name .. " on " .. self.url
  if changing(what) then perform(self:_spec(what, "DELETE " .. quote(wire))) end
  return true
end

-- rename(from, to): IMAP RENAME; the messages (and any child folders) move
-- with the mailbox. Missing parents of `to` are created by the server.
function Box:rename(from, to)
  local wire_from, wire_to = check_mailbox(from), check_mailbox(to)
  local what = "rename mailbox " .. from .. " to " .. to .. " on " .. self.url
  if changing(what) then perform(self:_spec(what, "RENAME " .. quote(wire_from) .. " " .. quote(wire_to))) end
  return true
end

-- append(name, message): message is the raw text or a table for mail.message.
function Box:append(name, message)
  local wire = check_mailbox(name)
  if type(message) == "table" then message = mail.message(message) end
  if type(message) ~= "string" then fail_usage("append: message must be text or a table") end
  message = message:gsub("\r?\n", "\r\n")
  local what = string.format("append a message (%d bytes) to mailbox %s on %s", #message, name, self.url)
  if changing(what) then
    local spec = self:_spec(what)
    spec.url = self.url .. "/" .. percent(wire)
    spec.upload = message
    perform(spec)
  end
  return true
end

-- ---- SMTP ----

local Sender = { __name = "wf.mail.smtp" }
Sender.__index = Sender

function mail.smtp(opts)
  local sender = setmetatable(settings(opts, "smtp"), Sender)
  warn_insecure(sender)
  return sender
end

function Sender:__tostring()
  return "smtp " .. self.url
end

-- send{ from, to, cc, bcc, subject, body, headers, reply_to } -> { message_id }
function Sender:send(m)
  if type(m) ~= "table" then fail_usage("send: give a table") end
  local text, id = mail.message(m)
  local rcpt = {}
  for _, field in ipairs { "to", "cc", "bcc" } do
    for _, a in ipairs(address_list(m[field], field)) do rcpt[#rcpt + 1] = "<" .. bare(a) .. ">" end
  end
  if #rcpt == 0 then fail_usage("send: no recipient (to, cc or bcc)") end
  local shown = {}
  for i, r in ipairs(rcpt) do shown[i] = r:sub(2, -2) end
  local what = string.format("send mail %q to %s", m.subject or "", table.concat(shown, ", "))
  local mode = core.mode()
  if mode == "simulate" then return { message_id = id, simulated = true } end
  if mode == "dry-run" then
    core.log("would", what .. string.format(" (%d bytes)", #text))
    return { message_id = id, dry_run = true }
  end
  perform { what = what, url = self.url, user = self.user, password = self.password,
    mail_from = "<" .. bare(m.from) .. ">", rcpt = rcpt, upload = text,
    timeout = self.timeout, connect_timeout = self.connect_timeout, insecure = self.insecure,
    tls = self.tls }
  return { message_id = id }
end

-- Exposed for tests.
mail._utf7_encode, mail._utf7_decode = utf7_encode, utf7_decode

return mail
