#!/usr/bin/env python3
# params.t: parameter precedence (-p over env over config params: over the
# default), ctx.params read-only, and secret redaction: a secret value never
# appears on stdout (events or human view), stderr, or the journal file,
# whichever way it travels (ctx:log, ctx:warn, errors, results, ctx.state).
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import wftest

t = wftest.Tap()

wf = t.workflow('''
return workflow {
  name = "precedence",
  params = {
    p = { default = "from_default", env = "WFTEST_P" },
    q = { default = "q_default" },
    r = { env = "WFTEST_R" },
  },
  steps = {
    step "show" { run = function(ctx) return { p = ctx.params.p, q = ctx.params.q, r = ctx.params.r or "unset" } end },
  },
}''', "precedence.lua")


def params_seen(r):
    return (r.one("step_succeeded", "show") or {}).get("result")


r = t.run(wf)
t.is_(params_seen(r), {"p": "from_default", "q": "q_default", "r": "unset"}, "defaults", result=r)
r = t.run(wf, env={"WFTEST_P": "from_env", "WFTEST_R": "r_env"})
t.is_(params_seen(r), {"p": "from_env", "q": "q_default", "r": "r_env"}, "env over default", result=r)
r = t.run(wf, "-p", "p=from_p", env={"WFTEST_P": "from_env"})
t.is_(params_seen(r), {"p": "from_p", "q": "q_default", "r": "unset"}, "-p over env", result=r)
r = t.run(wf, "--param=q=long_form", "-pr=short_form")
t.is_(params_seen(r), {"p": "from_default", "q": "long_form", "r": "short_form"},
      "--param=NAME=V and -pNAME=V forms", result=r)
r = t.run(wf, "-p", "q=first", "-p", "q=second")
t.is_((params_seen(r) or {}).get("q"), "second", "the last -p for a name wins", result=r)
t.is_((r.one("run_started") or {}).get("params"), {"p": "from_default", "q": "second"},
      "run_started journals the resolved parameters")

# config params: need wf.yaml, which may not be merged yet.
probe = t.workflow('''
return workflow { name = "probe", steps = { step "p" { run = function() return (pcall(require, "wf.yaml")) end } } }''')
has_yaml = (t.run(probe).one("step_succeeded", "p") or {}).get("result") is True
if not has_yaml:
    t.skip("wf.yaml is not available yet (config params)", 8)
else:
    cfg = t.path("config.yaml")
    with open(cfg, "w") as f:
        f.write("params:\n  p: from_config\n  q: q_config\nname: ${WFTEST_CFG:-fallback}\n")
    r = t.run(wf, "-c", cfg)
    t.is_(params_seen(r), {"p": "from_config", "q": "q_config", "r": "unset"}, "config params over default",
          result=r)
    r = t.run(wf, "-c", cfg, env={"WFTEST_P": "from_env"})
    t.is_((params_seen(r) or {}).get("p"), "from_env", "env over config", result=r)
    r = t.run(wf, "-c", cfg, "-p", "p=from_p", env={"WFTEST_P": "from_env"})
    t.is_((params_seen(r) or {}).get("p"), "from_p", "-p over env over config", result=r)
    cw = t.workflow('''return workflow { name = "cfg", params = { p = {}, q = {} }, steps = { step "c" { run = function(ctx) return ctx.config.name end } } }''')
    r = t.run(cw, "-c", cfg, env={"WFTEST_CFG": "interpolated"})
    t.is_((r.one("step_succeeded", "c") or {}).get("result"), "interpolated", "ctx.config with ${VAR}", result=r)
    r = t.run(cw, "-c", cfg)
    t.is_((r.one("step_succeeded", "c") or {}).get("result"), "fallback", "ctx.config with ${VAR:-default}",
          result=r)
    cfg_secret = "Cfg-s3cret-99"
    with open(cfg, "w") as f:
        f.write("db:\n  host: db1\n  password: %s\napi_token: ${WFTEST_TOKEN}\n" % cfg_secret)
    cs = t.workflow('''return workflow { name = "cfgsecret", steps = { step "c" { run = function(ctx)
      ctx:log("connecting to %s with %s and %s", ctx.config.db.host, ctx.config.db.password, ctx.config.api_token)
      error("login failed: " .. ctx.config.db.password)
    end } } }''')
    r = t.run(cs, "-c", cfg, env={"WFTEST_TOKEN": "Tok-s3cret-77"})
    t.is_(r.logs(), ["connecting to db1 with *** and ***"], "config values under password/token keys are secrets",
          result=r)
    leaked = [w for w, text in (("stdout", r.stdout), ("stderr", r.stderr), ("journal", r.journal_text()))
              if cfg_secret in text or "Tok-s3cret-77" in text]
    t.is_(leaked, [], "config secrets appear nowhere (stdout, stderr, journal)")
    bad_cfg = t.path("bad.yaml")
    with open(bad_cfg, "w") as f:
        f.write("params:\n  p: [unclosed\n")
    r = t.run(wf, "-c", bad_cfg)
    t.ok(r.rc == 2 and r.first_err.startswith("wfengine: ") and bad_cfg in r.first_err and not r.run_dirs(),
         "a broken config: exit 2, first line names the file, nothing journaled", diag=r.describe())

ro = t.workflow('''
return workflow {
  name = "readonly",
  params = { p = { default = "x" } },
  steps = { step "w" { run = function(ctx) ctx.params.p = "changed" end } },
}''')
r = t.run(ro)
err = (r.one("step_failed", "w") or {}).get("error") or {}
t.is_(r.rc, 1, "writing ctx.params fails the step", result=r)
t.like(str(err.get("message")), "read-only", "... with a read-only error")

# ---- secrets ----
SECRET = "Xyzzy-s3cret-42"
sw = t.workflow('''
local json = require "wf.json"
return workflow {
  name = "secrets",
  params = {
    pw = { secret = true, env = "WFTEST_PW" },
    user = { default = "ops" },
  },
  steps = {
    step "logs" { run = function(ctx)
      ctx:log("password is %s", ctx.params.pw)
      ctx:warn("again: " .. ctx.params.pw)
      ctx:log(ctx.params.pw)
      ctx.state.copy = "state " .. ctx.params.pw
      return { echoed = ctx.params.pw, nested = { deeper = { ctx.params.pw } } }
    end, compensate = function(ctx, result) ctx:log("undo with %s", result.echoed) end },
    step "fails" {
      retry = { attempts = 2, delay = 0 },
      run = function(ctx)
        if ctx.attempt == 1 then error("connect failed for " .. ctx.params.pw) end
        ctx:fail("refused " .. ctx.params.pw, { retryable = false, code = ctx.params.pw })
      end,
    },
  },
}''', "secrets.lua")


def no_secret(r, how, todo=None):
    journal = r.journal_text()
    t.ok(journal != "", "%s: the journal exists" % how, diag=r.describe())
    for where, text in (("stdout", r.stdout), ("stderr", r.stderr), ("journal", journal)):
        t.unlike(text, SECRET, "%s: the secret is not in %s" % (how, where), result=r,
                 todo=todo if where != "journal" and SECRET in text else None)


r = t.run(sw, "-p", "pw=" + SECRET)
t.is_(r.rc, 1, "secret workflow fails and compensates (exit 1)", result=r)
t.is_(r.logs()[:3], ["password is ***", "again: ***", "***"], "ctx:log and ctx:warn show *** for the secret")
t.is_((r.one("run_started") or {}).get("params"), {"pw": "***", "user": "ops"}, "run_started params: ***")
t.is_(((r.one("step_succeeded", "logs") or {}).get("result") or {}).get("nested"), {"deeper": ["***"]},
      "results are redacted, nested too")
t.is_([(e.get("error") or {}).get("message") for e in r.of("step_failed", "fails")],
      ["connect failed for ***", "refused ***"], "error messages are redacted")
no_secret(r, "--json")
r = t.run(sw, "-v", "-p", "pw=" + SECRET, json_events=False)
no_secret(r, "human view -v")
r = t.run(sw, env={"WFTEST_PW": SECRET})
no_secret(r, "secret from the environment")

pw = t.workflow('''
return workflow {
  name = "print_secret",
  params = { pw = { secret = true } },
  steps = { step "p" { run = function(ctx) print("the password is " .. ctx.params.pw) end } },
}''')
r = t.run(pw, "-p", "pw=" + SECRET)
gap = "engine bug: print() in a step writes raw to stdout (secret not redacted, --json stream broken)"
t.unlike(r.stdout, SECRET, "print() from a step does not leak the secret",
         todo=gap if SECRET in r.stdout else None, result=r)
t.is_(r.garbage, [], "print() from a step does not break the --json event stream",
      todo=gap if r.garbage else None, result=r)

# ctx.config is a read-only view; json.encode sees what it shows
cfg_path = os.path.join(os.path.dirname(pw), "view.yaml")
with open(cfg_path, "w") as f:
    f.write("a: 1\nb:\n  c: [1, 2]\n")
view = t.workflow('''
local json = require "wf.json"
return workflow {
  name = "view",
  steps = { step "v" { run = function(ctx)
    local ok = pcall(function() ctx.config.a = 2 end)
    return { text = json.encode(ctx.config, { sort_keys = true }), writable = ok }
  end } },
}''')
r = t.run(view, "-c", cfg_path)
res = (r.one("step_succeeded", "v") or {}).get("result") or {}
t.is_(res.get("text"), '{"a":1,"b":{"c":[1,2]}}', "json.encode(ctx.config) encodes the config", result=r)
t.is_(res.get("writable"), False, "ctx.config cannot be written")

# An optional secret from its env variable, then a resume without it:
# refused naming it (it ran with tok=nil before), not silently nil.
opt = t.workflow('''
return workflow {
  name = "optional_secret",
  on_failure = "pause",
  params = { tok = { secret = true, env = "WFTEST_TOK" } },
  steps = {
    step "a" { run = function(ctx) return ctx.params.tok ~= nil end },
    step "b" { run = function(ctx) if ctx.params.tok == nil then error("no token") end return true end },
  },
}''')
state = t.fresh_state()
r = t.run(opt, "--fail-at", "b", state=state, env={"WFTEST_TOK": "s3cr3t-value"})
t.is_(r.rc, 5, "optional secret: the run pauses at the injected failure", result=r)
t.is_((r.one("run_started") or {}).get("secrets"), ["tok"],
      "run_started names the secrets that had a value (never the value)", result=r)
run_id = r.run_dirs()[0]
r2 = t.run(None, run_id, command="resume", state=state)
t.is_((r2.rc, r2.first_err), (2, "wfengine: cannot resume run %s: secret parameter 'tok' had a value "
      "when the run started and has none now (give it again: -p tok=... or $WFTEST_TOK or params: in "
      "the config)" % run_id), "resume without the optional secret: exit 2 naming it", result=r2)
r3 = t.run(None, run_id, command="resume", state=state, env={"WFTEST_TOK": "s3cr3t-value"})
t.is_(r3.rc, 0, "resume with the secret again: succeeds", result=r3)
r = t.run(opt, "--fail-at", "b", state=t.fresh_state())
t.is_((r.one("run_started") or {}).get("secrets"), [],
      "a secret without a value is not listed (its resume does not ask for it)", result=r)
t.done()
