-- mailboxes.lua: a tenant's Service mailboxes on the mail server, as
-- folders "Service/<tenant>/<mailbox>" of the admin account
-- (ctx.config.services.imap), on wf.mail; and the holding area of one run,
-- "Held/<tenant>/<run>/<mailbox>", where the clone keeps the old sandbox's
-- folders (with their messages) until it has succeeded.
local mail = require "wf.mail"

local mailboxes = {}

-- Outside "Service/" so that no route, listing or check of the Service
-- folders sees what is held.
mailboxes.HELD_ROOT = "Held"

local Service = {}
Service.__index = Service

-- The run id as a folder name: Dovecot's Maildir++ refuses "." in names, so
-- "20261126T150125.331Z-3126" becomes "20261126t150125_331z_3126" (the same
-- spelling as the old database's <target>_old_<run id>).
function mailboxes.run_key(run_id)
  return (tostring(run_id):lower():gsub("[^a-z0-9]", "_"))
end

-- mailboxes.held_prefix(tenant, run_id) -> "Held/<tenant>/<run key>/"
function mailboxes.held_prefix(tenant, run_id)
  return mailboxes.HELD_ROOT .. "/" .. tenant .. "/" .. mailboxes.run_key(run_id) .. "/"
end

-- mailboxes.service(ctx, tenant) -> the tenant's Service folders
function mailboxes.service(ctx, tenant)
  local conf = ctx.config.services and ctx.config.services.imap
  if (type(conf) ~= "table" or type(conf.url) ~= "string") and ctx.mode == "simulate" then
    conf = { url = "imap://simulated.invalid" } -- no config needed to rehearse
  elseif type(conf) ~= "table" or type(conf.url) ~= "string" then
    ctx:fail("config: services.imap.url is missing", { retryable = false })
  end
  local box = mail.imap { url = conf.url, user = conf.user, password = conf.password,
    tls = conf.tls, insecure = conf.insecure == true }
  return setmetatable({ box = box, url = conf.url, user = conf.user,
    prefix = "Service/" .. tenant .. "/",
    held = mailboxes.held_prefix(tenant, ctx.run_id) }, Service)
end

-- The names under `prefix` (without it), sorted.
local function names_under(box, prefix)
  local names = {}
  for _, full in ipairs(box:list()) do
    if full:sub(1, #prefix) == prefix then names[#names + 1] = full:sub(#prefix + 1) end
  end
  table.sort(names)
  return names
end

-- mailboxes.outermost(names) -> the names none of whose parents is in the
-- list, sorted: renaming a folder moves its children with it.
function mailboxes.outermost(names)
  local set, out = {}, {}
  for _, name in ipairs(names) do set[name] = true end
  for _, name in ipairs(names) do
    local inner = false
    for parent in name:gmatch("()/") do
      if set[name:sub(1, parent - 1)] then inner = true break end
    end
    if not inner then out[#out + 1] = name end
  end
  table.sort(out)
  return out
end

function Service:folder(name) return self.prefix .. name end
function Service:held_folder(name) return self.held .. name end

-- names() -> the mailbox names (without the prefix), sorted
function Service:names() return names_under(self.box, self.prefix) end
-- held_names() -> the names held by this run (without its holding prefix), sorted
function Service:held_names() return names_under(self.box, self.held) end

function Service:create(name) return self.box:create(self:folder(name)) end
function Service:delete(name) return self.box:delete(self:folder(name)) end
function Service:count(name) return self.box:count(self:folder(name)) end

-- hold(name): Service/<tenant>/<name> -> Held/<tenant>/<run>/<name>, messages
-- and child folders with it; release(name) moves it back.
function Service:hold(name) return self.box:rename(self:folder(name), self:held_folder(name)) end
function Service:release(name) return self.box:rename(self:held_folder(name), self:folder(name)) end
function Service:discard(name) return self.box:delete(self:held_folder(name)) end

return mailboxes
