-- mailboxes.lua: a tenant's Service mailboxes on the mail server, as
-- folders "Service/<tenant>/<mailbox>" of the admin account
-- (ctx.config.services.imap), on wf.mail.
local mail = require "wf.mail"

local mailboxes = {}

local Service = {}
Service.__index = Service

-- mailboxes.service(ctx, tenant) -> the tenant's Service folders
function mailboxes.service(ctx, tenant)
  local conf = ctx.config.services and ctx.config.services.imap
  if (type(conf) ~= "table" or type(conf.url) ~= "string") and ctx.mode == "simulate" then
    conf = { url = "imap://simulated.invalid" } -- no config needed to rehearse
  elseif type(conf) ~= "table" or type(conf.url) ~= "string" then
    ctx:fail("config: services.imap.url is missing", { retryable = false })
  end
  local box = mail.imap { url = conf.url, user = conf.user, password = conf.password }
  return setmetatable({ box = box, url = conf.url, user = conf.user,
    prefix = "Service/" .. tenant .. "/" }, Service)
end

function Service:folder(name) return self.prefix .. name end

-- names() -> the mailbox names (without the prefix), sorted
function Service:names()
  local names = {}
  for _, full in ipairs(self.box:list()) do
    if full:sub(1, #self.prefix) == self.prefix then names[#names + 1] = full:sub(#self.prefix + 1) end
  end
  table.sort(names)
  return names
end

function Service:create(name) return self.box:create(self:folder(name)) end
function Service:delete(name) return self.box:delete(self:folder(name)) end
function Service:count(name) return self.box:count(self:folder(name)) end

return mailboxes
