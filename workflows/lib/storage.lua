-- storage.lua: per-customer blob containers: Azure storage (templates,
-- EjPackages: services.storage) and the SoArc archive server (packages:
-- services.soarc). Copy from another customer answers `previous`, which
-- put_all brings back. Built on lib.service.
local service = require "lib.service"
local json = require "wf.json"

local storage = {}

local Container = {}
Container.__index = Container

-- The three containers a clone copies: service, container, list key.
local KINDS = {
  templates = { "storage", "templates", "blobs" },
  ejpackages = { "storage", "ejpackages", "blobs" },
  soarc = { "soarc", "packages", "packages" },
}

-- storage.container(ctx, kind, customer[, undo]); kind: templates, ejpackages, soarc
function storage.container(ctx, kind, customer, undo)
  local k = assert(KINDS[kind], "unknown container kind " .. tostring(kind))
  return setmetatable({ api = service.client(ctx, k[1], undo), key = k[3],
    path = "/" .. service.segment(customer) .. "/" .. k[2] }, Container)
end

function Container:list() return self.api:get(self.path)[self.key] or {} end

-- copy_from(customer) mirrors the other customer's container here:
-- -> {copied, skipped, deleted, previous}
function Container:copy_from(customer)
  return (self.api:post(self.path .. "/copy", { from = customer, mirror = true }))
end

-- put_all(items) replaces the whole container (the undo of copy_from).
function Container:put_all(items)
  return (self.api:put(self.path, { [self.key] = json.array(items or {}) }))
end

return storage
