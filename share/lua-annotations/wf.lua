---@meta wf
-- LuaLS annotations of the workflow language (docs/workflow-language.md):
-- `workflow`, `step`, `parallel` (globals, and `require "wf"`), their
-- fields, ctx and errors. Point the editor's workspace.library here
-- (docs/workflow-language.md, "Editor support"). Installed by `make install`.

---A step or a parallel group, as `workflow { steps = { ... } }` lists them.
---@class wf.Unit

---@class wf.Step: wf.Unit
---@class wf.Group: wf.Unit

---The table of `workflow { ... }`.
---@class wf.WorkflowDef
---@field name? string the workflow's name (default: the file name)
---@field description? string one line, shown by plan
---@field params? table<string, wf.Param> parameters, by name
---@field retry? wf.Retry the default retry policy of every step
---@field timeout? number default seconds per attempt of every step
---@field on_failure? "compensate"|"pause" what a failure does (default "compensate")
---@field lock? string|fun(ctx: { params: table<string, any> }): string one run per key at a time
---@field steps (wf.Step|wf.Group)[] the steps and parallel groups, in order

---The table of `step "id" { ... }`.
---@class wf.StepDef
---@field title? string shown in the view and plan (default: the id, capitalised)
---@field doc? string longer notes, shown by plan --format markdown|json
---@field run fun(ctx: wf.Ctx): any required; the result is journaled and given to compensate
---@field compensate? fun(ctx: wf.Ctx, result: any) undo what run did, given its result
---@field retry? wf.Retry this step's retry policy, merged over the workflow's
---@field timeout? number seconds per attempt
---@field when? fun(ctx: wf.Ctx): boolean false skips the step
---@field confirm? string a question asked on the terminal before the step runs
---@field irreversible? boolean after it succeeds, a later failure pauses instead of compensating
---@field simulate? fun(ctx: wf.Ctx): any used instead of run in --simulate
---@field undo_partial? boolean compensate can also undo a cut-short attempt (result nil)

---The table of `parallel "id" { step ..., title = ..., doc = ... }`.
---@class wf.GroupDef
---@field title? string
---@field doc? string
---@field [integer] wf.Step

---A parameter's declaration.
---@class wf.Param
---@field required? boolean the run refuses to start without a value
---@field default? any the value when none is given
---@field doc? string shown by check, plan and the errors about the parameter
---@field secret? boolean masked as *** everywhere; at least 4 bytes
---@field env? string the environment variable to read the value from
---@field pattern? string a Lua pattern the whole value must match (anchored)
---@field check? fun(value: any, params: table<string, any>): string? nil accepts, a message rejects

---A retry policy.
---@class wf.Retry
---@field attempts? integer total tries (default 1)
---@field delay? number seconds before the 2nd try (default 1)
---@field backoff? number multiplier for each further try (default 2)
---@field max_delay? number cap on the delay (default 60)
---@field jitter? boolean the delay is drawn uniformly from [d/2, d] (default true)
---@field retry_on? fun(err: wf.Error): boolean default: retry unless err.retryable == false

---What every function of a step receives.
---@class wf.Ctx
---@field run_id string
---@field step string the step's id
---@field attempt integer 1 for the first attempt
---@field mode "run"|"dry-run"|"simulate"
---@field params table<string, any> read-only
---@field config table read-only: the -c config
---@field state table shared by all steps, saved (JSON) with each completed step
local Ctx = {}

---Journaled and shown; secrets redacted.
---@param fmt any
---@param ... any
function Ctx:log(fmt, ...) end

---A warning, journaled and shown; secrets redacted.
---@param fmt any
---@param ... any
function Ctx:warn(fmt, ...) end

---Says what the step changes, as a count, logged and journaled with a tally
---{n, what, verb} that the change report totals and --approved compares:
---"343 scheduled tasks disabled" in a run, "would disable 343 scheduled
---tasks" in a dry-run or simulate.
---@param n integer the count (a whole number; anything else, 2.5 included, counts 0)
---@param what string what is counted, plural ("scheduled tasks"; written singular when n is 1)
---@param verb string the verb ("disable"), for "would disable"
---@param done string its past participle ("disabled")
---@param detail? string appended to the line
function Ctx:tally(n, what, verb, done, detail) end

---Drives the live progress bar; unit = "bytes" prints sizes.
---@param done number
---@param total number
---@param unit? string
function Ctx:progress(done, total, unit) end

---Waits without blocking the engine (virtual in simulate).
---@param seconds number
function Ctx:sleep(seconds) end

---Calls fn(ctx) until it returns a true value, which it returns; fails
---with kind "timeout" after opts.timeout seconds (default 300).
---@generic T
---@param fn fun(ctx: wf.Ctx): T
---@param opts? { timeout?: number, interval?: number, what?: string }
---@return T
function Ctx:wait_until(fn, opts) end

---Raises a structured error (kind "step" by default).
---@param message string
---@param opts? { retryable?: boolean, code?: any, kind?: string, retry_after?: number }
function Ctx:fail(message, opts) end

---Runs each fn(ctx) concurrently inside the step; returns their results in
---order; the first error cancels the others and is raised.
---@param fns (fun(ctx: wf.Ctx): any)[]
---@param opts? { limit?: integer }
---@return any[]
function Ctx:parallel(fns, opts) end

---An error raised by the bindings and ctx:fail; tostring gives "kind code: message".
---@class wf.Error
---@field message string what happened
---@field kind string "sql", "http", "mail", "timeout", "injected", "cancelled", "declined", "step", "lua", ...
---@field code any SQLSTATE, HTTP status, ...
---@field retryable boolean whether a retry may help
---@field where? string file:line in the workflow where it was raised
---@field retry_after? number seconds to wait before the next attempt

---@class wf
local wf = {}

---Declares the workflow; the file returns it.
---@param def wf.WorkflowDef
---@return table
function wf.workflow(def) end

---`step "id" { ... }`: a step.
---@param id string [a-z][a-z0-9_]*
---@return fun(def: wf.StepDef): wf.Step
function wf.step(id) end

---`parallel "id" { step ..., step ... }`: steps that run concurrently.
---@param id string [a-z][a-z0-9_]*
---@return fun(def: wf.GroupDef): wf.Group
function wf.parallel(id) end

workflow = wf.workflow
step = wf.step
parallel = wf.parallel

return wf
