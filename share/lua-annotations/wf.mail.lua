---@meta wf.mail
-- LuaLS annotations of wf.mail (docs/modules.md, "wf.mail").

---@class wf.mail.Connect
---@field url string imaps://, imap://, smtps:// or smtp://
---@field user? string
---@field password? string
---@field timeout? number
---@field connect_timeout? number
---@field tls? "required"|"none"
---@field insecure? boolean

---A message: for mail.message, sender:send and box:append.
---@class wf.mail.Message
---@field from string
---@field to string|string[]
---@field cc? string|string[]
---@field bcc? string|string[]
---@field subject? string
---@field body? string
---@field headers? table<string, string>
---@field reply_to? string

---Mailboxes over IMAP (mail.imap).
---@class wf.mail.Mailbox
local Mailbox = {}

---@return string[]
function Mailbox:list() end

---@param name string
---@return integer
function Mailbox:count(name) end

---@param name string
---@return true
function Mailbox:create(name) end

---@param name string
---@return true
function Mailbox:delete(name) end

---IMAP RENAME: messages and child folders move with it.
---@param from string
---@param to string
---@return true
function Mailbox:rename(from, to) end

---@param name string
---@param message string|wf.mail.Message
---@return true
function Mailbox:append(name, message) end

---Sending over SMTP (mail.smtp).
---@class wf.mail.Sender
local Sender = {}

---@param message wf.mail.Message
---@return { message_id: string, dry_run?: boolean, simulated?: boolean }
function Sender:send(message) end

---@class wf.mail
local mail = {}

---@param opts wf.mail.Connect
---@return wf.mail.Mailbox
function mail.imap(opts) end

---@param opts wf.mail.Connect
---@return wf.mail.Sender
function mail.smtp(opts) end

---Builds a message: its text and its Message-ID.
---@param message wf.mail.Message
---@return string text
---@return string message_id
function mail.message(message) end

---Rewrites an address into the sandbox mail domain (nil gives nil).
---@param address string|number|nil
---@param domain string
---@return string?
function mail.sandbox_address(address, domain) end

return mail
