-- superid.lua: the SuperID identity service (tests/emulator/README.md,
-- "SuperID"): customer registrations, environments, tenant state, user
-- plans and user sync. Built on lib.service.
local service = require "lib.service"

local superid = {}

local SuperId = {}
SuperId.__index = SuperId

function superid.client(ctx, undo)
  return setmetatable({ api = service.client(ctx, "superid", undo) }, SuperId)
end

local function seg(id) return service.segment(id) end

function SuperId:customer(c)
  local data, response = self.api:get("/customers/" .. seg(c), { raise = false })
  if response.status == 404 then return nil end
  return data
end

-- register -> {previous, current, tenant_created}
function SuperId:register(c, record) return (self.api:put("/customers/" .. seg(c), record)) end

-- unregister -> {deleted, tenant}
function SuperId:unregister(c) return (self.api:delete("/customers/" .. seg(c))) end

function SuperId:put_tenant(t, record) return (self.api:put("/tenants/" .. seg(t), record)) end

-- replace_environment -> {previous, current}
function SuperId:replace_environment(e, record)
  return (self.api:put("/environments/" .. seg(e), record))
end

function SuperId:restore_environment(e)
  return (self.api:post("/environments/" .. seg(e) .. "/restore"))
end

function SuperId:delete_environment(e)
  return (self.api:delete("/environments/" .. seg(e), { raise = false }))
end

function SuperId:state(t) return self.api:get("/tenants/" .. seg(t) .. "/state").state end

-- set_state -> {previous, current}
function SuperId:set_state(t, state)
  return (self.api:put("/tenants/" .. seg(t) .. "/state", { state = state }))
end

function SuperId:plans(t) return self.api:get("/tenants/" .. seg(t) .. "/plans").plans or {} end

-- assign_plans({user = {plans} | json.null}) -> {previous, current}
function SuperId:assign_plans(t, assignments)
  return (self.api:post("/tenants/" .. seg(t) .. "/plans/assign", { assignments = assignments }))
end

-- sync_users -> {previous, current, added, removed}
function SuperId:sync_users(t) return (self.api:post("/tenants/" .. seg(t) .. "/users/sync")) end

function SuperId:set_users(t, users)
  return (self.api:put("/tenants/" .. seg(t) .. "/users", { users = users }))
end

return superid
