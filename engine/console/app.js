// wfengine console: plain JavaScript, no build step, no external assets.
// Every value from the server goes into the page as text (textContent or
// an attribute set one by one), never as HTML.
"use strict";
(function () {
  const EXIT = {
    succeeded: ["0", "succeeded", "good"],
    compensated: ["1", "failed, and every completed step was compensated (or nothing needed it)", "warn"],
    failed: ["3", "failed, and compensation failed or could not run: a person must look", "bad"],
    interrupted: ["4", "interrupted: resumable (resume or roll back)", "warn"],
    paused: ["5", "paused after a failure: resume or roll back", "warn"],
    crashed: ["-", "the process running it died: resume or roll back", "bad"],
  };
  const main = () => document.getElementById("main");
  let token = sessionStorage.getItem("wf-token") || "";
  let stream = null; // the SSE reader of the page shown, aborted on navigation
  let timers = [];

  // el("tag", {class: "x", onclick: fn}, child, "text", ...)
  function el(tag, attrs, ...children) {
    const node = tag === "svg" || tag === "rect" || tag === "text" || tag === "line" || tag === "title" || tag === "g"
      ? document.createElementNS("http://www.w3.org/2000/svg", tag) : document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
      else if (k === "text") node.textContent = String(v);
      else node.setAttribute(k, String(v));
    }
    for (const c of children.flat()) {
      if (c === undefined || c === null || c === false) continue;
      node.appendChild(typeof c === "object" ? c : document.createTextNode(String(c)));
    }
    return node;
  }
  function show(...nodes) { main().replaceChildren(...nodes.flat().filter((n) => n)); }
  function fmtSeconds(s) {
    if (s === undefined || s === null) return "";
    if (s < 1) return Math.round(s * 1000) + " ms";
    if (s < 120) return s.toFixed(1) + " s";
    return Math.floor(s / 60) + " min " + Math.round(s % 60) + " s";
  }
  function fmtBytes(n) {
    const u = ["B", "kB", "MB", "GB", "TB"]; let i = 0;
    while (n >= 1000 && i < u.length - 1) { n /= 1000; i++; }
    return n.toFixed(i ? 1 : 0) + " " + u[i];
  }
  function errText(e) {
    if (!e) return "";
    if (typeof e === "string") return e;
    return (e.kind ? e.kind + ": " : "") + (e.message || JSON.stringify(e));
  }

  // ---- the API -----------------------------------------------------------------
  async function api(method, path, body) {
    const init = { method, headers: { Authorization: "Bearer " + token } };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.headers["X-WFEngine-CSRF"] = "1";
      init.body = JSON.stringify(body);
    }
    const r = await fetch(path, init);
    let data = null;
    try { data = await r.json(); } catch (e) { data = { error: "HTTP " + r.status }; }
    if (r.status === 401) { askToken(); throw new Error(data.error); }
    if (!r.ok) throw new Error(data.error || ("HTTP " + r.status));
    return data;
  }

  // Server-Sent Events over fetch (EventSource cannot send the token):
  // resumes after a drop with Last-Event-ID.
  function follow(path, onEvent, onEnd) {
    const ctl = { stop: false, last: 0, abort: new AbortController() };
    async function once() {
      const h = { Authorization: "Bearer " + token, Accept: "text/event-stream" };
      if (ctl.last) h["Last-Event-ID"] = String(ctl.last);
      const r = await fetch(path, { headers: h, signal: ctl.abort.signal });
      if (!r.ok) throw new Error("HTTP " + r.status);
      const reader = r.body.getReader(); const dec = new TextDecoder(); let buf = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return false;
        buf += dec.decode(value, { stream: true });
        let at;
        while ((at = buf.indexOf("\n\n")) >= 0) {
          const block = buf.slice(0, at); buf = buf.slice(at + 2);
          let type = "message", data = "", id = null;
          for (const line of block.split("\n")) {
            if (line.startsWith("event: ")) type = line.slice(7);
            else if (line.startsWith("data: ")) data += line.slice(6);
            else if (line.startsWith("id: ")) id = Number(line.slice(4));
          }
          if (type === "end") return true;
          if (!data) continue;
          if (id) ctl.last = id;
          onEvent(type, JSON.parse(data));
        }
      }
    }
    (async () => {
      while (!ctl.stop) {
        try { if (await once()) { onEnd && onEnd(); return; } } catch (e) { if (ctl.stop) return; }
        await new Promise((res) => setTimeout(res, 1000));
      }
    })();
    return { close() { ctl.stop = true; ctl.abort.abort(); } };
  }

  function askToken(message) {
    const input = el("input", { type: "password", id: "token", autocomplete: "off" });
    show(el("h1", { text: "Token" }),
      el("p", { class: "muted", text: message || "The server printed a token at start (or read it from --token-file / WFENGINE_TOKEN)." }),
      input, el("button", { class: "primary", id: "token-save", onclick: () => {
        token = input.value.trim(); sessionStorage.setItem("wf-token", token); route();
      } }, "Use token"));
  }

  // ---- Workflows ----------------------------------------------------------------
  async function pageWorkflows() {
    const list = await api("GET", "/api/workflows");
    show(el("h1", { text: "Workflows" }), list.map((w) => el("div", { class: "card" },
      el("h2", {}, el("a", { href: "#/wizard/" + encodeURIComponent(w.name), text: w.title || w.name })),
      w.error ? el("p", { class: "err", text: w.error }) : el("p", { text: w.description || "" }),
      el("p", { class: "muted", text: w.name + ".lua" + (w.steps ? ", " + w.steps + " steps" : "") }))));
  }

  // ---- the wizard ---------------------------------------------------------------
  async function pageWizard(name) {
    const wf = await api("GET", "/api/workflows/" + encodeURIComponent(name));
    const inputs = {};
    const status = el("p", { id: "validation", class: "muted", text: "" });
    let timer = null;
    const values = () => {
      const out = {};
      for (const [k, inp] of Object.entries(inputs)) if (inp.value !== "") out[k] = inp.value;
      return out;
    };
    async function check() {
      const res = await api("POST", "/api/workflows/" + encodeURIComponent(name) + "/validate", { params: values() });
      status.textContent = res.ok ? "valid" : res.error;
      status.className = res.ok ? "ok" : "err";
      for (const [k, inp] of Object.entries(inputs)) {
        inp.classList.toggle("bad", !res.ok && String(res.error).includes("'" + k + "'"));
      }
      return res.ok;
    }
    const fields = wf.params.map((p) => {
      const inp = el("input", { type: p.secret ? "password" : "text", id: "param-" + p.name, name: p.name,
        autocomplete: p.secret ? "new-password" : "off", placeholder: p.default !== undefined ? String(p.default) : "" });
      inputs[p.name] = inp;
      inp.addEventListener("input", () => { clearTimeout(timer); timer = setTimeout(check, 250); });
      return el("div", {}, el("label", { for: "param-" + p.name }, p.name, p.required ? " *" : ""),
        inp, el("div", { class: "muted" }, p.doc || "",
          p.pattern ? " — pattern " + p.pattern : "", p.secret ? " — secret, never shown again" : "",
          p.env ? " — $" + p.env : ""));
    });
    const mode = el("select", { id: "mode" }, ["simulate", "dry-run", "run"].map((m) => el("option", { value: m, text: m })));
    const planBox = el("div", { id: "plan" });
    const startBtn = el("button", { class: "primary", id: "start", disabled: true }, "Start");
    const note = el("p", { id: "start-note", class: "err" });
    const planBtn = el("button", { id: "show-plan", onclick: async () => {
      if (!(await check())) return;
      planBox.replaceChildren(planTable(wf.steps));
      startBtn.disabled = false;
    } }, "Show the plan");
    startBtn.addEventListener("click", async () => {
      startBtn.disabled = true;
      try {
        const r = await api("POST", "/api/runs", { workflow: name, params: values(), mode: mode.value });
        location.hash = "#/run/" + encodeURIComponent(r.run_id);
      } catch (e) { note.textContent = e.message; startBtn.disabled = false; }
    });
    show(el("h1", {}, "Start ", wf.title || name), el("p", { text: wf.description || "" }),
      el("div", { class: "card" }, fields, el("label", { for: "mode" }, "Mode"), mode,
        el("div", { class: "muted", text: "simulate touches nothing; dry-run performs every read and reports every change; run does it." }),
        status, planBtn), planBox, startBtn, note);
  }

  function planTable(steps) {
    let total = 0;
    const rows = steps.map((s) => {
      if (s.estimate) total += s.estimate.median;
      return el("tr", {}, el("td", { text: s.index }), el("td", {}, el("b", { text: s.id }), el("div", { text: s.title || "" })),
        el("td", {}, s.compensate ? el("span", { class: "badge b-undo", text: "undo" }) : null,
          s.confirm ? el("span", { class: "badge b-confirm", title: s.confirm, text: "confirm" }) : null,
          s.irreversible ? el("span", { class: "badge b-irrev", text: "irreversible" }) : null,
          s.group ? el("span", { class: "badge", text: "parallel " + s.group }) : null),
        el("td", { text: s.estimate ? fmtSeconds(s.estimate.median) + " (worst " + fmtSeconds(s.estimate.worst) + ")" : "no history" }));
    });
    return el("div", {}, el("h2", { text: "Plan" }),
      el("table", { class: "plan" }, el("tr", {}, el("th", { text: "#" }), el("th", { text: "step" }), el("th", { text: "marks" }), el("th", { text: "expected" })), rows),
      el("p", { class: "muted", text: total ? "expected in all: about " + fmtSeconds(total) : "" }));
  }

  // ---- a run ------------------------------------------------------------------
  // The state of a run, built from its events (the same for the live page
  // and the static page of `show --html`).
  function newModel() { return { steps: {}, order: [], events: [], status: "running", progress: null }; }
  function stepOf(m, id) {
    if (!m.steps[id]) { m.steps[id] = { id, status: "pending", attempts: 0, logs: [] }; m.order.push(id); }
    return m.steps[id];
  }
  function apply(m, ev) {
    m.events.push(ev);
    const t = Date.parse(ev.time);
    if (!isNaN(t)) { m.first = m.first || t; m.last = t; }
    const s = ev.step ? stepOf(m, ev.step) : null;
    switch (ev.type) {
      case "run_started": m.runStarted = ev; m.status = "running";
        for (const p of ev.steps || []) stepOf(m, p.id).plan = p; break;
      case "run_resumed": m.status = ev.rollback ? "compensating" : "running"; break;
      case "step_started": s.status = "running"; s.attempts++; s.attempt = ev.attempt; s.retryAt = null; break;
      case "step_failed": s.status = ev.will_retry ? "retrying" : "failed"; s.error = ev.error;
        s.retryAt = ev.will_retry && ev.delay ? t + ev.delay * 1000 : null; break;
      case "step_succeeded": s.status = "succeeded"; s.result = ev.result; s.error = null; s.seconds = ev.elapsed; break;
      case "step_skipped": s.status = "skipped"; s.reason = ev.reason; break;
      case "compensation_started": s.comp = "running"; m.status = "compensating"; break;
      case "compensation_succeeded": s.comp = "done"; break;
      case "compensation_failed": s.comp = ev.will_retry ? "retrying" : "failed"; s.compError = ev.error; break;
      case "confirm_asked": s.status = "asking"; s.question = ev.question; break;
      case "confirm_answered": s.status = "pending"; s.answer = ev.answer; s.question = null; break;
      case "log": if (s) s.logs.push(ev); else (m.logs = m.logs || []).push(ev); break;
      case "run_succeeded": m.status = "succeeded"; break;
      case "run_failed": m.status = "failed"; m.error = ev.error; break;
      case "run_compensated": m.status = "compensated"; m.error = ev.error; break;
      case "run_paused": m.status = "paused"; m.error = ev.error; break;
      case "run_interrupted": m.status = "interrupted"; break;
    }
  }

  function runView(id, m, live) {
    const done = m.order.filter((k) => m.steps[k].status === "succeeded").length;
    const rows = m.order.map((k, i) => {
      const s = m.steps[k];
      let st = s.status;
      if (s.retryAt) st += " (next attempt in " + Math.max(0, Math.ceil((s.retryAt - Date.now()) / 1000)) + " s)";
      const info = [];
      if (s.question && s.status === "asking") {
        info.push(el("div", { class: "ask", id: "ask-" + k }, el("b", { text: "? " }), s.question, " ",
          live ? el("button", { class: "primary", id: "answer-yes", onclick: () => answer(id, k, "yes") }, "Yes") : null,
          live ? el("button", { id: "answer-no", onclick: () => answer(id, k, "no") }, "No") : null));
      }
      if (s.error) info.push(el("div", { class: "err", text: errText(s.error) }));
      if (s.comp) info.push(el("div", { class: "st-compensating", text: "undo: " + s.comp + (s.compError ? " — " + errText(s.compError) : "") }));
      if (s.result !== undefined && s.result !== null) info.push(el("pre", { class: "json", text: JSON.stringify(s.result).slice(0, 400) }));
      if (s.logs.length) info.push(el("div", { class: "logs" }, s.logs.slice(-50).map((l) => (l.level || "info") + ": " + l.message + "\n")));
      return el("tr", { class: "step-" + s.status, id: "step-" + k, "data-status": s.status },
        el("td", { text: i + 1 }), el("td", {}, el("b", { text: k }), el("div", { class: "muted", text: (s.plan && s.plan.title) || "" })),
        el("td", { class: "st st-" + s.status, text: st }), el("td", { text: s.attempts }),
        el("td", { text: fmtSeconds(s.seconds) }), el("td", {}, info));
    });
    const prog = m.progress && m.steps[m.progress.step] && m.steps[m.progress.step].status === "running" ? progressBar(m.progress) : null;
    const outcome = EXIT[m.status];
    const p = m.runStarted ? m.runStarted.params || {} : {};
    return el("div", {},
      el("h1", {}, "Run ", el("span", { id: "run-id", text: id })),
      el("p", { class: "muted" }, (m.runStarted && m.runStarted.workflow) || "", " — mode ", (m.runStarted && m.runStarted.mode) || "",
        " — ", Object.keys(p).sort().map((k) => k + "=" + p[k]).join(" ")),
      el("p", {}, el("span", { class: "st st-" + m.status, id: "run-status", text: m.status }),
        " — ", el("span", { id: "done-count", text: done }), " of " + m.order.length + " steps succeeded"),
      outcome ? el("div", { class: "outcome " + outcome[2], id: "outcome" }, "exit " + outcome[0] + ": " + outcome[1],
        m.error ? el("div", { class: "err", text: errText(m.error) }) : null) : null,
      prog, live ? controls(id, m) : null,
      el("table", { id: "steps" }, el("tr", {}, ["#", "step", "state", "attempts", "took", ""].map((h) => el("th", { text: h }))), rows),
      (m.logs || []).length ? el("div", { class: "logs" }, m.logs.map((l) => l.message + "\n")) : null,
      EXIT[m.status] ? el("div", { id: "timeline" }, el("h2", { text: "Timeline" }), gantt(m)) : null);
  }

  function progressBar(pr) {
    const frac = pr.total > 0 ? Math.min(1, pr.done / pr.total) : 0;
    const bytes = pr.unit === "bytes" || pr.unit === "B";
    const f = bytes ? fmtBytes : (n) => String(Math.round(n));
    const rate = pr.rate ? (bytes ? fmtBytes(pr.rate) : Math.round(pr.rate)) + "/s" : "";
    const eta = pr.rate && pr.total > pr.done ? "ETA " + fmtSeconds((pr.total - pr.done) / pr.rate) : "";
    return el("div", { class: "card", id: "progress" }, el("b", { text: pr.step + " " }),
      el("div", { class: "bar" }, fill(frac)),
      " " + f(pr.done) + (pr.total > 0 ? " of " + f(pr.total) : "") + " " + (bytes ? "" : pr.unit || "") + "  " + rate + "  " + eta);
  }

  function fill(frac) { // CSSOM, not a style attribute: the CSP forbids inline style
    const d = el("div"); d.style.width = (frac * 100).toFixed(1) + "%"; return d;
  }

  function controls(id, m) {
    const bar = el("div", { id: "confirm-bar" });
    const act = (verb, question) => () => {
      bar.replaceChildren(el("div", { class: "ask" }, question + " ",
        el("button", { class: "danger", id: "confirm-" + verb, onclick: async () => {
          bar.replaceChildren(el("span", { class: "muted", text: verb + "…" }));
          try { await api("POST", "/api/runs/" + encodeURIComponent(id) + "/" + verb, {}); bar.replaceChildren(); }
          catch (e) { bar.replaceChildren(el("span", { class: "err", text: e.message })); }
        } }, "Yes, " + verb), el("button", { onclick: () => bar.replaceChildren() }, "Cancel")));
    };
    const running = m.status === "running" || m.status === "compensating";
    const stopped = ["paused", "interrupted", "crashed", "failed"].includes(m.status) && m.runStarted && m.runStarted.mode === "run";
    return el("div", {},
      el("button", { id: "pause", disabled: !running, onclick: act("pause", "Pause (interrupt) this run? It stops where it is and can be resumed or rolled back.") }, "Pause"),
      el("button", { id: "resume", disabled: !stopped, onclick: act("resume", "Resume this run from where it stopped?") }, "Resume"),
      el("button", { id: "rollback", disabled: !stopped, class: "danger", onclick: act("rollback", "Roll back this run (undo every completed step)?") }, "Rollback"),
      bar);
  }

  async function answer(id, step, value) {
    try { await api("POST", "/api/runs/" + encodeURIComponent(id) + "/confirm", { step, answer: value }); }
    catch (e) { alertLine(e.message); }
  }
  function alertLine(text) { main().prepend(el("p", { class: "err", text })); }

  // The timeline: one line per step; attempts (green, red when failed),
  // waits before a retry (amber), confirm waits (grey), undo (purple).
  function gantt(m) {
    const spans = []; const open = {};
    const T = (ev) => Date.parse(ev.time);
    for (const ev of m.events) {
      const k = ev.step; if (!k) continue;
      const key = (x) => x + ":" + k;
      if (ev.type === "step_started") {
        if (open[key("wait")]) { spans.push({ k, a: open[key("wait")], b: T(ev), c: "g-wait", l: "wait" }); delete open[key("wait")]; }
        open[key("run")] = T(ev);
      } else if (ev.type === "step_succeeded" || ev.type === "step_failed") {
        if (open[key("run")]) spans.push({ k, a: open[key("run")], b: T(ev), c: ev.type === "step_failed" ? "g-fail" : "g-run", l: ev.type });
        delete open[key("run")];
        if (ev.will_retry) open[key("wait")] = T(ev);
      } else if (ev.type === "confirm_asked") open[key("ask")] = T(ev);
      else if (ev.type === "confirm_answered" && open[key("ask")]) { spans.push({ k, a: open[key("ask")], b: T(ev), c: "g-ask", l: "confirm" }); delete open[key("ask")]; }
      else if (ev.type === "compensation_started") open[key("comp")] = T(ev);
      else if ((ev.type === "compensation_succeeded" || ev.type === "compensation_failed") && open[key("comp")]) {
        spans.push({ k, a: open[key("comp")], b: T(ev), c: "g-comp", l: "undo" }); delete open[key("comp")];
      }
    }
    const rows = m.order.filter((k) => spans.some((s) => s.k === k));
    const t0 = m.first || 0, t1 = Math.max(m.last || 0, t0 + 1);
    const W = 1000, L = 220, H = 16;
    const x = (t) => L + ((t - t0) / (t1 - t0)) * (W - L - 10);
    const svg = el("svg", { class: "gantt", width: W, height: rows.length * H + 30, viewBox: "0 0 " + W + " " + (rows.length * H + 30) });
    rows.forEach((k, i) => {
      svg.appendChild(el("text", { x: 4, y: i * H + 12, text: k }));
      for (const s of spans.filter((z) => z.k === k)) {
        svg.appendChild(el("rect", { class: s.c, x: x(s.a).toFixed(1), y: i * H + 2, width: Math.max(1.5, x(s.b) - x(s.a)).toFixed(1), height: H - 4 },
          el("title", { text: k + " " + s.l + " " + fmtSeconds((s.b - s.a) / 1000) })));
      }
    });
    svg.appendChild(el("text", { x: L, y: rows.length * H + 22, text: "0" }));
    svg.appendChild(el("text", { x: W - 80, y: rows.length * H + 22, text: fmtSeconds((t1 - t0) / 1000) }));
    return svg;
  }

  async function pageRun(id) {
    const m = newModel();
    const opened = Date.now();
    let rendered = 0;
    const render = () => { rendered++; show(runView(id, m, true)); };
    show(el("p", { text: "Loading run…" }));
    let pending = false;
    const soon = () => { if (!pending) { pending = true; requestAnimationFrame(() => { pending = false; render(); }); } };
    stream = follow("/api/runs/" + encodeURIComponent(id) + "/events", (type, data) => {
      if (type === "progress") {
        const prev = m.progress;
        if (prev && prev.step === data.step && data.time > prev.time) data.rate = (data.done - prev.done) / (data.time - prev.time);
        else if (prev) data.rate = prev.rate;
        m.progress = data;
      } else {
        apply(m, data);
        // journal commit to browser, for events written after the page opened (tests read it)
        const written = Date.parse(data.time);
        if (written > opened) (window.wfLatencies = window.wfLatencies || []).push(Date.now() - written);
      }
      soon();
    }, soon);
    timers.push(setInterval(() => { if (m.order.some((k) => m.steps[k].retryAt)) render(); }, 1000));
    void rendered;
  }

  // ---- History -----------------------------------------------------------------
  async function pageHistory(query) {
    const q = new URLSearchParams(query || "");
    const status = el("select", { id: "f-status" }, ["", "running", "succeeded", "failed", "compensated", "paused", "interrupted", "crashed"]
      .map((s) => el("option", { value: s, text: s || "any status" })));
    status.value = q.get("status") || "";
    const workflow = el("input", { type: "text", id: "f-workflow", placeholder: "workflow", value: q.get("workflow") || "" });
    const since = el("input", { type: "text", id: "f-since", placeholder: "since 2026-01-31", value: q.get("since") || "" });
    const apply_ = () => {
      const n = new URLSearchParams();
      if (status.value) n.set("status", status.value);
      if (workflow.value) n.set("workflow", workflow.value);
      if (since.value) n.set("since", since.value);
      location.hash = "#/history?" + n.toString();
    };
    const runs = await api("GET", "/api/runs?" + q.toString());
    show(el("h1", { text: "History" }),
      el("div", { class: "filters" }, status, workflow, since, el("button", { id: "f-apply", onclick: apply_ }, "Filter")),
      el("table", { id: "runs" }, el("tr", {}, ["run", "workflow", "mode", "status", "started", "took", "params"].map((h) => el("th", { text: h }))),
        runs.map((r) => el("tr", {}, el("td", {}, el("a", { href: "#/run/" + encodeURIComponent(r.run_id), text: r.run_id })),
          el("td", { text: r.workflow }), el("td", { text: r.mode }), el("td", { class: "st st-" + r.status, text: r.status }),
          el("td", { text: r.started }), el("td", { text: fmtSeconds(r.seconds) }),
          el("td", { text: Object.keys(r.params || {}).sort().map((k) => k + "=" + r.params[k]).join(" ") })))));
  }

  // ---- routing -------------------------------------------------------------------
  async function route() {
    if (stream) { stream.close(); stream = null; }
    timers.forEach(clearInterval); timers = [];
    const h = location.hash.slice(1) || "/";
    if (!token) return askToken();
    const [path, query] = h.split("?");
    const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
    try {
      if (parts[0] === "wizard") await pageWizard(parts[1]);
      else if (parts[0] === "run") await pageRun(parts[1]);
      else if (parts[0] === "history") await pageHistory(query);
      else await pageWorkflows();
    } catch (e) { show(el("p", { class: "err", id: "error", text: e.message })); }
  }

  function start() {
    const data = document.getElementById("wf-data");
    if (data) { // `wfengine show RUN --html`: the run, no server
      const d = JSON.parse(data.textContent);
      const m = newModel();
      d.events.forEach((ev) => apply(m, ev));
      show(runView(d.run_id, m, false));
      return;
    }
    const t = new URLSearchParams(location.hash.replace(/^#/, "").split("?")[0].includes("token=") ? location.hash.slice(1) : "").get("token");
    if (t) { token = t; sessionStorage.setItem("wf-token", t); history.replaceState(null, "", location.pathname + "#/"); }
    window.addEventListener("hashchange", route);
    route();
  }
  document.addEventListener("DOMContentLoaded", start);
})();
