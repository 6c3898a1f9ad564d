-- mailboxes.lua: a tenant's Service mailboxes on the mail server, as
-- folders "Service/<tenant>/<mailbox>" of the admin account
-- (ctx.config.services.imap), on wf.mail; and the holding area of one run,
-- "Held/<tenant>/<run>/<mailbox>", where the clone keeps the old sandbox's
-- folders (with their messages) until it has succeeded: hold_all,
-- release_all, restore, undo_attempt and discard are those moves, for the
-- clone's provision_mail_service and wait_iis_operations steps.
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

-- ---- holding a tenant's folders (the clone) ----

local function set_of(list)
  local set = {}
  for _, v in ipairs(list) do set[v] = true end
  return set
end

-- mailboxes.hold_all(ctx, folders, keep): moves the Service folders but
-- `keep` into this run's holding area (Held/<tenant>/<run>/). The mail
-- server is the record of what is held, not ctx.state (journaled only when a
-- step completes): a retry or a resume finds what an earlier attempt moved
-- there and moves only the rest. A name both held and back in Service/ is
-- not this run's doing: stop for a person. Returns the held names
-- (outermost: children move with a parent).
function mailboxes.hold_all(ctx, folders, keep)
  local held = mailboxes.outermost(folders:held_names())
  local already = set_of(held)
  local moving = {}
  for _, name in ipairs(folders:names()) do
    if name ~= keep then moving[#moving + 1] = name end
  end
  for _, name in ipairs(mailboxes.outermost(moving)) do
    if already[name] then
      ctx:fail(string.format("both %s and %s exist: look before resuming", folders:folder(name),
        folders:held_folder(name)), { retryable = false })
    end
    folders:hold(name)
    if ctx.mode == "run" then ctx:log("moved %s to %s", folders:folder(name), folders:held_folder(name)) end
    held[#held + 1] = name
  end
  return mailboxes.outermost(held)
end

-- mailboxes.release_all(ctx, folders[, expected]): hold_all's undo: every
-- folder still held by this run goes back to Service/, messages and all.
-- Idempotent: what a previous attempt moved back is no longer held. A name
-- expected but neither held nor back is reported (discard deleted it before
-- the run was rolled back instead of resumed).
function mailboxes.release_all(ctx, folders, expected)
  local back = set_of(folders:names())
  for _, name in ipairs(mailboxes.outermost(folders:held_names())) do
    if back[name] then
      ctx:fail(string.format("both %s and %s exist: look, then move one back by hand",
        folders:folder(name), folders:held_folder(name)), { retryable = false })
    end
    folders:release(name)
    back[name] = true
    if ctx.mode == "run" then ctx:log("moved %s back to %s", folders:held_folder(name), folders:folder(name)) end
  end
  for _, name in ipairs(expected or {}) do
    if not back[name] and ctx.mode == "run" then
      ctx:warn("%s was neither held nor back: its messages are gone", folders:folder(name))
    end
  end
end

-- mailboxes.restore(ctx, folders, keep, created_keep[, expected]): the held
-- folders back, and `keep` gone if it was created (created_keep).
function mailboxes.restore(ctx, folders, keep, created_keep, expected)
  mailboxes.release_all(ctx, folders, expected)
  if created_keep and set_of(folders:names())[keep] then folders:delete(keep) end
end

-- mailboxes.undo_attempt(ctx, folders, keep, had_keep): an attempt that
-- failed after holding: the folders go back and a `keep` it created goes (a
-- failed step's own compensate never runs), so a step that fails for good
-- leaves Service/ as it found it. If that fails too (the mail server is the
-- problem), they stay held, intact: the next attempt or a resume carries on
-- from there.
function mailboxes.undo_attempt(ctx, folders, keep, had_keep)
  local ok, err = pcall(mailboxes.restore, ctx, folders, keep, not had_keep)
  if not ok then
    ctx:warn("could not move the Service folders back after the failed attempt; they stay under %s: %s",
      folders.held, tostring(err))
  end
end

-- Depth first: in Maildir++ a parent deleted before its children stays listed.
local function deepest_first(names)
  local function depth(name) return select(2, name:gsub("/", "")) end
  table.sort(names, function(a, b)
    if depth(a) ~= depth(b) then return depth(a) > depth(b) end
    return a < b
  end)
  return names
end

-- mailboxes.discard(folders, names) -> the names deleted from the holding
-- area, deepest first. A name already gone (NONEXISTENT: a retry, or a
-- parent that only existed through its children) is fine.
function mailboxes.discard(folders, names)
  local gone = {}
  for _, name in ipairs(deepest_first(names)) do
    local ok, err = pcall(folders.discard, folders, name)
    if not ok and not (type(err) == "table" and err.code == "NONEXISTENT") then error(err, 0) end
    gone[#gone + 1] = name
  end
  return gone
end

-- mailboxes.has(folders, name) -> whether the Service folder `name` exists
function mailboxes.has(folders, name)
  return set_of(folders:names())[name] == true
end

return mailboxes
