-- iis.lua: the web farm's ApplicationHost.config operations of a tenant
-- (control plane, /tenants/T/iis/operations), queued when a tenant goes
-- live. Built on lib.service.
local service = require "lib.service"

local iis = {}

local Iis = {}
Iis.__index = Iis

function iis.client(ctx, undo)
  return setmetatable({ api = service.client(ctx, "control_plane", undo) }, Iis)
end

local function path(t, rest)
  return "/tenants/" .. service.segment(t) .. "/iis/operations" .. (rest or "")
end

-- operations(t) -> {operations = [...], active = n}
function Iis:operations(t) return (self.api:get(path(t))) end

function Iis:active(t) return self:operations(t).active or 0 end

function Iis:delete(t, id)
  return (self.api:delete(path(t, "/" .. service.segment(id)), { raise = false }))
end

return iis
