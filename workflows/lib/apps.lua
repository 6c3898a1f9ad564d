-- apps.lua: partner apps registered with the control plane and their
-- webhooks (tests/emulator/README.md, "Control plane": /apps). notify posts
-- one event to many apps at once (http.parallel), each with the
-- Idempotency-Key "<run_id>:<step>:<app>" so an app hears of it once.
local http = require "wf.http"
local service = require "lib.service"

local apps = {}

local Apps = {}
Apps.__index = Apps

function apps.client(ctx, undo)
  return setmetatable({ ctx = ctx, api = service.client(ctx, "control_plane", undo) }, Apps)
end

-- all() -> {id = app}
function Apps:all()
  local by_id = {}
  for _, app in ipairs(self.api:get("/apps").apps or {}) do by_id[app.id] = app end
  return by_id
end

function Apps:notifications(id)
  return self.api:get("/apps/" .. service.segment(id) .. "/notifications").notifications or {}
end

-- notify(list of apps, event body) -> {app id = received id}
function Apps:notify(list, body)
  local requests = {}
  for i, app in ipairs(list) do
    requests[i] = { method = "POST", url = app.webhook_url, json = body, bearer = self.api.token,
      timeout = self.api.timeout, idempotency_key = table.concat({ self.ctx.run_id, self.ctx.step, app.id }, ":") }
  end
  local received = {}
  for i, response in ipairs(http.parallel(requests)) do
    received[list[i].id] = response.json and response.json.received or true
  end
  return received
end

return apps
