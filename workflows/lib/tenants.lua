-- tenants.lua: the control plane's tenant API (tests/emulator/README.md,
-- "Control plane"): tenant records, mode, customer tasks, clusters, mail
-- routes, recycle, license and company records. Built on lib.service.
local service = require "lib.service"

local tenants = {}

local Tenants = {}
Tenants.__index = Tenants

-- tenants.client(ctx[, undo]) -> client of services.control_plane.
function tenants.client(ctx, undo)
  return setmetatable({ api = service.client(ctx, "control_plane", undo) }, Tenants)
end

local function path(t, rest)
  return "/tenants/" .. service.segment(t) .. (rest or "")
end

function Tenants:get(t) return (self.api:get(path(t))) end
function Tenants:tasks(t) return (self.api:get(path(t, "/tasks"))) end
function Tenants:task(t, id) return (self.api:get(path(t, "/tasks/" .. service.segment(id)))) end

function Tenants:delete_task(t, id)
  return (self.api:delete(path(t, "/tasks/" .. service.segment(id)), { raise = false }))
end

function Tenants:mode(t) return self.api:get(path(t, "/mode")).mode end

-- set_mode -> {previous, current, task, iis_operations}
function Tenants:set_mode(t, mode, force)
  return (self.api:put(path(t, "/mode"), { mode = mode, force = force or nil }))
end

function Tenants:clusters() return self.api:get("/clusters").clusters or {} end
function Tenants:cluster(t) return (self.api:get(path(t, "/cluster"))) end

function Tenants:set_cluster(t, cluster)
  return (self.api:put(path(t, "/cluster"), { cluster = cluster }))
end

function Tenants:mail_routes(t) return self.api:get(path(t, "/mail-routes")).mail_routes or {} end

-- delete_mail_routes -> the deleted routes (kept by the service for restore)
function Tenants:delete_mail_routes(t)
  return self.api:delete(path(t, "/mail-routes")).deleted or {}
end

function Tenants:restore_mail_routes(t, ids)
  return (self.api:post(path(t, "/mail-routes/restore"), { ids = ids }))
end

function Tenants:add_mail_route(t, route)
  return (self.api:post(path(t, "/mail-routes"), route))
end

function Tenants:purge_mail_route(t, id)
  return (self.api:delete(path(t, "/mail-routes/" .. service.segment(id)),
    { query = { purge = 1 }, raise = false }))
end

-- recycle -> the recycle task
function Tenants:recycle(t) return self.api:post(path(t, "/recycle")).task end

function Tenants:license(t) return (self.api:get(path(t, "/license"))) end
function Tenants:put_license(t, record) return (self.api:put(path(t, "/license"), record)) end
function Tenants:company(t) return (self.api:get(path(t, "/company"))) end
function Tenants:put_company(t, record) return (self.api:put(path(t, "/company"), record)) end

return tenants
