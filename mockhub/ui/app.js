// mockhub web UI: plain JavaScript, no build step, no dependencies.
//
// Safety rules this file keeps: call data only ever reaches the page as text (textContent and text
// nodes, never parsed as markup), secret header values (and secret query, form and JSON fields) are
// masked, and an email's HTML is shown only in an
// iframe with sandbox="" (no scripts, opaque origin) whose own CSP loads nothing.
"use strict";

(() => {
  const PAGE = 200; // calls fetched per page (newest first)
  const MAX_ROWS = 2000; // rows kept in the DOM; older ones are paged in on demand
  const RULES_EVERY_MS = 2000;
  const BIG_TEXT = 256 * 1024; // longer bodies are shown cut, with a button for the rest
  // What the UI knows of each fake (its colour, view, secret headers and paths) comes from GET /services:
  // this file names no fake.
  const CATALOGUE = new Map(); // name -> the fake's facts
  // Header values never shown in full: credentials and signatures (each fake adds its own).
  const SECRET_HEADERS = new Set([
    "authorization", "proxy-authorization", "x-api-key", "api-key", "x-goog-api-key", "cookie", "set-cookie",
    "x-auth-token", "x-amz-security-token", "ocp-apim-subscription-key",
  ]);
  const SECRET_NAME = /(secret|token|passw|signature|api[-_]?key|auth)/i;
  // Query, form and JSON fields whose values are credentials: each fake names its own (`secret_params`);
  // these common names are masked too. Exact names: a JSON body's "max_tokens" or "author" stays readable.
  const SECRET_PARAMS = new Set();
  const SECRET_PARAM_NAME = /^(api[-_]?key|apikey|access[-_]?token|auth[-_]?token|client[-_]?secret|password|passwd|secret|token)$/i;
  // The email iframe's own policy: nothing may load (no remote images, fonts, frames), styles inline only.
  const FRAME_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; font-src data:";

  const $ = (id) => document.getElementById(id);
  const ui = {
    list: $("list"), listWrap: $("list-wrap"), detail: $("detail"), empty: $("empty"), more: $("more"),
    shown: $("shown"), conn: $("conn"), total: $("calls-total"), service: $("f-service"),
    namespace: $("f-namespace"), namespaces: $("namespaces"), text: $("f-text"), pause: $("pause"),
    clear: $("clear"), unclear: $("unclear"), faultsCount: $("faults-count"), stubsCount: $("stubs-count"),
    limitsCount: $("limits-count"),
  };

  const state = {
    filters: { service: "", namespace: "", text: "" },
    maxSeq: 0, // newest seq received: the stream resumes after it
    floorSeq: 0, // "Clear" hides calls up to this seq
    oldestSeq: null, // oldest seq listed: "Load older" pages back from it
    hasOlder: false,
    total: 0, // calls matching the filters in the journal
    paused: false,
    pending: [], // live calls waiting for the next render
    pendingOverflow: false,
    flushTimer: 0,
    selected: null,
    es: null,
    retryTimer: 0,
    gen: 0, // bumped on each reload, so answers to an older load are dropped
    services: new Set(),
    namespaces: new Set(["default"]),
  };

  // -- small helpers -------------------------------------------------------------------------------

  // Builds an element; children are nodes or strings (strings become text nodes, never markup).
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = value;
      else if (key === "dataset") Object.assign(node.dataset, value);
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? "" : String(value));
    }
    for (const child of children.flat(Infinity)) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : String(child));
    }
    return node;
  }

  // With MOCKHUB_ADMIN_TOKEN set, the page is opened as /ui?token=...; every request carries it
  // (EventSource and download links cannot set headers, so it travels in the query string).
  const TOKEN = new URLSearchParams(location.search).get("token");
  const withToken = (url) =>
    TOKEN ? `${url}${url.includes("?") ? "&" : "?"}token=${encodeURIComponent(TOKEN)}` : url;

  async function getJSON(url, init) {
    const res = await fetch(withToken(url), Object.assign({ headers: { accept: "application/json" } }, init));
    if (!res.ok) {
      let message = `${res.status} ${res.statusText}`;
      try {
        message = (await res.json()).error.message || message;
      } catch (_) { /* not our error shape */ }
      const err = new Error(message);
      err.status = res.status;
      throw err;
    }
    return res.json();
  }

  const callUrl = (id, rest) => withToken(`/calls/${encodeURIComponent(id)}${rest || ""}`);
  const cssName = (name) => (/^[a-z0-9_-]{1,32}$/i.test(name) ? name.toLowerCase() : "other");
  const cut = (text, n) => (text.length > n ? `${text.slice(0, n - 1)}…` : text);
  const asList = (v) => (Array.isArray(v) ? v : v === null || v === undefined || v === "" ? [] : [v]);
  const compact = (obj) => Object.fromEntries(Object.entries(obj || {}).filter(([, v]) => v !== null && v !== undefined));

  function fmtTime(iso) {
    const d = new Date(iso);
    if (Number.isNaN(d.getTime())) return iso;
    const pad = (n, w) => String(n).padStart(w || 2, "0");
    return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
  }

  function fmtBytes(n) {
    if (typeof n !== "number") return "?";
    if (n < 1024) return `${n} B`;
    if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
    return `${(n / 1024 / 1024).toFixed(1)} MiB`;
  }

  function isSecretHeader(name) {
    const lower = String(name).toLowerCase();
    return SECRET_HEADERS.has(lower) || SECRET_NAME.test(lower);
  }

  function isSecretParam(name) {
    const lower = String(name).toLowerCase();
    return SECRET_PARAMS.has(lower) || SECRET_PARAM_NAME.test(lower);
  }

  // A copy of a JSON value with the values of secret fields masked, at any depth.
  function maskSecrets(value) {
    if (Array.isArray(value)) return value.map(maskSecrets);
    if (value === null || typeof value !== "object") return value;
    const out = {};
    for (const [k, v] of Object.entries(value)) {
      out[k] = isSecretParam(k) && v !== null && typeof v !== "object" ? mask(String(v)) : maskSecrets(v);
    }
    return out;
  }

  // A form body as sent, with the values of secret fields replaced.
  function maskForm(body) {
    return body.split("&").map((pair) => {
      const i = pair.indexOf("=");
      if (i < 0) return pair;
      let name = pair.slice(0, i);
      try { name = decodeURIComponent(name.replace(/\+/g, " ")); } catch (_) { /* shown as sent */ }
      return isSecretParam(name) ? `${pair.slice(0, i)}=••••••••` : pair;
    }).join("&");
  }

  // Some webhook URLs carry their credential in the path: each fake names those parts (group 2 of its
  // `secret_paths`), and they are masked like a secret header wherever a path is shown.
  const SECRET_PATHS = [];

  const viewOf = (call) => (CATALOGUE.get(call.service) || {}).view || "http";

  async function loadCatalogue() {
    try {
      const body = await getJSON("/services");
      for (const info of body.services) {
        CATALOGUE.set(info.name, info);
        for (const name of info.secret_headers || []) SECRET_HEADERS.add(String(name).toLowerCase());
        for (const name of info.secret_params || []) SECRET_PARAMS.add(String(name).toLowerCase());
        for (const source of info.secret_paths || []) {
          try {
            SECRET_PATHS.push(new RegExp(source));
          } catch (_) { /* a pattern this browser cannot compile: nothing to mask with it */ }
        }
      }
    } catch (_) { /* an older server without /services: names from the calls themselves, no colours */ }
  }

  function serviceBadge(name) {
    const info = CATALOGUE.get(name);
    const badge = el("span", { class: `badge svc svc-${cssName(name)}`, text: name, title: info ? info.label : name });
    if (info && /^#[0-9a-f]{3,8}$/i.test(info.color || "")) badge.style.background = info.color;
    return badge;
  }

  function maskPath(path) {
    const text = String(path);
    for (const re of SECRET_PATHS) {
      const m = re.exec(text);
      if (m) return `${m[1]}••••••••${text.slice(m[0].length)}`;
    }
    return text;
  }

  // "Bearer sk-abc..." -> "Bearer •••••••• (51 chars)": the scheme stays readable, the secret does not.
  function mask(value) {
    const text = String(value);
    const scheme = /^(basic|bearer|token|digest|hmac\S*)\s+/i.exec(text);
    const prefix = scheme ? scheme[0] : "";
    return `${prefix}•••••••• (${text.length - prefix.length} chars, masked)`;
  }

  // Email headers arrive as a dict, a dict of lists, or a list of pairs: all become [name, value] pairs.
  function headerPairs(headers) {
    if (!headers) return [];
    if (Array.isArray(headers)) {
      return headers.map((h) => (Array.isArray(h) ? [h[0], h[1]] : [h && h.name, h && h.value]));
    }
    if (typeof headers === "object") {
      return Object.entries(headers).flatMap(([k, v]) => (Array.isArray(v) ? v.map((x) => [k, x]) : [[k, v]]));
    }
    return [];
  }

  function parseRawHeaders(raw) {
    const head = raw.split(/\r?\n\r?\n/, 1)[0].replace(/\r?\n[ \t]+/g, " ");
    return head.split(/\r?\n/).filter((line) => line.includes(":")).map((line) => {
      const i = line.indexOf(":");
      return [line.slice(0, i), line.slice(i + 1).trim()];
    });
  }

  // -- the list -------------------------------------------------------------------------------------

  function filterParams() {
    const p = new URLSearchParams();
    const f = state.filters;
    if (f.service) p.set("service", f.service);
    if (f.namespace) p.set("namespace", f.namespace);
    const text = f.text.trim();
    if (text.startsWith("/")) p.set("path", /[*?[]/.test(text) ? text : `${text}*`);
    else if (text) p.set("contains", text);
    if (state.floorSeq > 0) p.set("after", String(state.floorSeq));
    return p;
  }

  // The one-line summary of a call: [main, secondary].
  function summaryOf(call) {
    const d = call.data || {};
    if (viewOf(call) === "email") {
      const to = asList(d.to).concat(asList(d.cc));
      const rcpt = to.length ? to : asList(d.rcpt_to);
      return [d.subject || "(no subject)", `${d.from || d.mail_from || "?"} → ${rcpt.join(", ") || "?"}`];
    }
    // The fake's own one-line summary (GET /calls serves it with every call).
    return [`${call.method} ${maskPath(call.path)}`, typeof call.summary === "string" ? call.summary : ""];
  }

  function statusClass(status) {
    if (typeof status !== "number") return "st-none";
    if (status >= 500) return "st-5xx";
    if (status >= 400) return "st-4xx";
    if (status >= 300) return "st-3xx";
    return "st-2xx";
  }

  function faultLabel(fault) {
    return `⚡ ${[fault.action, fault.preset].filter(Boolean).join(" ")}`;
  }

  function rowNode(call) {
    const [main, sub] = summaryOf(call);
    const status = call.response ? call.response.status : null;
    return el(
      "div",
      {
        class: `row${call.fault ? " faulted" : ""}${call.id === state.selected ? " selected" : ""}`,
        role: "option",
        dataset: { id: call.id, seq: call.seq },
        title: `${call.service} call #${call.seq}`,
      },
      el("span", { class: "seq", text: `#${call.seq}` }),
      el("time", { class: "time", datetime: call.time, text: fmtTime(call.time) }),
      serviceBadge(call.service),
      call.namespace !== "default" ? el("span", { class: "badge ns", text: call.namespace, title: "namespace" }) : null,
      call.direction === "outbound" ? el("span", { class: "badge out", text: "out", title: "sent by mockhub" }) : null,
      el("span", { class: "summary" },
        el("span", { class: "main", text: cut(main, 200) }),
        sub ? el("span", { class: "sub", text: cut(sub, 200) }) : null),
      el("span", { class: `status ${statusClass(status)}`, text: status === null ? "…" : String(status) }),
      call.fault ? el("span", { class: "badge fault", text: faultLabel(call.fault), title: `fault ${call.fault.id}` }) : null,
      call.stub ? el("span", { class: "badge stub", text: "stub", title: `stub ${call.stub.id}` }) : null,
    );
  }

  // A service in the filter's list: the catalogue's, then any a call or the URL names.
  function noteService(name) {
    if (state.services.has(name)) return;
    state.services.add(name);
    ui.service.append(el("option", { value: name, text: name }));
  }

  function noteFacets(call) {
    noteService(call.service);
    if (!state.namespaces.has(call.namespace)) {
      state.namespaces.add(call.namespace);
      ui.namespaces.append(el("option", { value: call.namespace }));
    }
  }

  function rowCount() {
    return ui.list.childElementCount;
  }

  function updateCounts() {
    const rows = rowCount();
    ui.total.textContent = String(state.total);
    ui.shown.textContent = `${rows.toLocaleString()} shown of ${state.total.toLocaleString()}`;
    ui.empty.hidden = rows > 0;
    ui.more.hidden = !state.hasOlder;
    if (state.hasOlder) {
      const full = rows >= MAX_ROWS;
      ui.more.disabled = full;
      ui.more.textContent = full
        ? `Showing the newest ${MAX_ROWS.toLocaleString()} rows: narrow the filters to see older calls`
        : "Load older calls";
    }
    ui.unclear.hidden = state.floorSeq === 0;
  }

  function appendOlder(calls) {
    const frag = document.createDocumentFragment();
    for (const call of calls) {
      noteFacets(call);
      frag.append(rowNode(call));
    }
    ui.list.append(frag);
    if (calls.length) state.oldestSeq = calls[calls.length - 1].seq;
  }

  async function reload() {
    const gen = ++state.gen;
    closeStream();
    clearTimeout(state.flushTimer);
    state.flushTimer = 0;
    state.pending = [];
    state.pendingOverflow = false;
    ui.list.replaceChildren();
    state.oldestSeq = null;
    state.hasOlder = false;
    const page = filterParams();
    page.set("order", "desc");
    page.set("limit", String(PAGE));
    let calls;
    let count;
    try {
      [calls, count] = await Promise.all([getJSON(`/calls?${page}`), getJSON(`/calls/count?${filterParams()}`)]);
    } catch (err) {
      if (gen === state.gen) setConn("error", `cannot list calls: ${err.message}`);
      return;
    }
    if (gen !== state.gen) return;
    state.total = count.count;
    state.maxSeq = Math.max(state.floorSeq, calls.calls.length ? calls.calls[0].seq : 0);
    appendOlder(calls.calls);
    state.hasOlder = Boolean(calls.next); // a page of big calls can be short: the server says when more follow
    updateCounts();
    if (!state.paused) openStream();
  }

  async function loadOlder() {
    if (state.oldestSeq === null || rowCount() >= MAX_ROWS) return;
    const gen = state.gen;
    const p = filterParams();
    p.set("order", "desc");
    p.set("limit", String(Math.min(PAGE, MAX_ROWS - rowCount())));
    p.set("before", String(state.oldestSeq));
    ui.more.disabled = true;
    try {
      const page = await getJSON(`/calls?${p}`);
      if (gen !== state.gen) return;
      appendOlder(page.calls);
      state.hasOlder = Boolean(page.next);
    } catch (err) {
      setConn("error", `cannot page: ${err.message}`);
    } finally {
      ui.more.disabled = false;
      updateCounts();
    }
  }

  // Live calls are rendered in batches, so a burst of thousands costs one DOM update, not thousands.
  function onLiveCall(call) {
    if (call.seq <= state.maxSeq) return; // already listed (a resumed stream's backlog)
    state.maxSeq = call.seq;
    state.total += 1;
    noteFacets(call);
    state.pending.push(call);
    if (state.pending.length > MAX_ROWS) {
      state.pending.splice(0, state.pending.length - MAX_ROWS);
      state.pendingOverflow = true;
    }
    if (!state.flushTimer) state.flushTimer = setTimeout(flush, 40);
    scheduleRules(400);
  }

  function flush() {
    state.flushTimer = 0;
    const batch = state.pending;
    state.pending = [];
    if (state.pendingOverflow) {
      // More arrived than the list holds: what was listed is no longer contiguous with them.
      ui.list.replaceChildren();
      state.pendingOverflow = false;
      state.hasOlder = true;
    }
    const frag = document.createDocumentFragment();
    for (let i = batch.length - 1; i >= 0; i--) frag.append(rowNode(batch[i]));
    ui.list.prepend(frag);
    if (rowCount() > MAX_ROWS) {
      while (rowCount() > MAX_ROWS) ui.list.lastElementChild.remove();
      state.hasOlder = true;
    }
    const last = ui.list.lastElementChild;
    state.oldestSeq = last ? Number(last.dataset.seq) : null;
    updateCounts();
  }

  // -- the live stream (Server-Sent Events) ------------------------------------------------------------

  function setConn(kind, text) {
    ui.conn.dataset.state = kind;
    ui.conn.textContent = text || kind;
  }

  function closeStream() {
    clearTimeout(state.retryTimer);
    if (state.es) {
      state.es.close();
      state.es = null;
    }
  }

  function openStream() {
    closeStream();
    const p = filterParams();
    p.set("after", String(state.maxSeq));
    const es = new EventSource(withToken(`/calls/stream?${p}`));
    state.es = es;
    setConn("connecting", "connecting…");
    es.addEventListener("open", () => setConn("live", "● live"));
    es.addEventListener("call", (ev) => {
      if (state.es === es) onLiveCall(JSON.parse(ev.data));
    });
    // Errors and the server's "overflow" (we fell behind) both end this stream; resume after the last seq.
    const restart = () => {
      es.close();
      if (state.es !== es) return;
      state.es = null;
      setConn("reconnecting", "reconnecting…");
      state.retryTimer = setTimeout(() => {
        if (!state.paused) openStream();
      }, 1000);
    };
    es.addEventListener("overflow", restart);
    es.addEventListener("error", restart);
  }

  function setPaused(paused) {
    state.paused = paused;
    ui.pause.textContent = paused ? "Resume" : "Pause";
    ui.pause.setAttribute("aria-pressed", String(paused));
    if (paused) {
      closeStream();
      setConn("paused", "❚❚ paused");
    } else {
      openStream(); // the stream's backlog brings what arrived meanwhile
    }
  }

  // -- the detail view ------------------------------------------------------------------------------

  function section(title, open, ...content) {
    return el("details", { class: "section", open: open }, el("summary", { text: title }), ...content);
  }

  // `secrets`: true masks secret headers; a function says which names to mask (isSecretParam).
  function kvTable(pairs, { secrets = false, empty = "none" } = {}) {
    if (!pairs.length) return el("p", { class: "muted", text: empty });
    const secret = typeof secrets === "function" ? secrets : secrets ? isSecretHeader : () => false;
    return el("table", { class: "kv" }, el("tbody", {}, pairs.map(([k, v]) => {
      const text = typeof v === "string" ? v : JSON.stringify(v);
      const masked = secret(k);
      return el("tr", {},
        el("th", { text: String(k) }),
        el("td", { class: masked ? "masked" : null, text: masked ? mask(text) : text }));
    })));
  }

  function jsonView(raw) {
    const value = maskSecrets(raw);
    const pre = el("pre", { class: "json" });
    const text = JSON.stringify(value, null, 2);
    if (text === undefined) pre.textContent = String(value);
    else if (text.length > BIG_TEXT) pre.textContent = text; // plain text: a node per token would be too slow
    else writeJSON(pre, value, "");
    return pre;
  }

  function writeJSON(out, value, indent) {
    if (value === null) out.append(el("span", { class: "j-null", text: "null" }));
    else if (Array.isArray(value)) {
      if (!value.length) return void out.append("[]");
      out.append("[\n");
      value.forEach((item, i) => {
        out.append(`${indent}  `);
        writeJSON(out, item, `${indent}  `);
        out.append(i < value.length - 1 ? ",\n" : "\n");
      });
      out.append(`${indent}]`);
    } else if (typeof value === "object") {
      const keys = Object.keys(value);
      if (!keys.length) return void out.append("{}");
      out.append("{\n");
      keys.forEach((key, i) => {
        out.append(`${indent}  `, el("span", { class: "j-key", text: JSON.stringify(key) }), ": ");
        writeJSON(out, value[key], `${indent}  `);
        out.append(i < keys.length - 1 ? ",\n" : "\n");
      });
      out.append(`${indent}}`);
    } else if (typeof value === "string") out.append(el("span", { class: "j-str", text: JSON.stringify(value) }));
    else out.append(el("span", { class: `j-${typeof value}`, text: String(value) }));
  }

  function textView(text) {
    const pre = el("pre", { class: "text" });
    if (text.length <= BIG_TEXT) {
      pre.textContent = text;
      return pre;
    }
    pre.textContent = text.slice(0, BIG_TEXT);
    const rest = el("button", {
      type: "button", class: "link", text: `show all ${fmtBytes(text.length)}`,
      onclick: () => { pre.textContent = text; rest.remove(); },
    });
    return el("div", {}, pre, rest);
  }

  function headerValue(headers, name) {
    for (const [k, v] of Object.entries(headers || {})) if (k.toLowerCase() === name) return String(v);
    return "";
  }

  // A body as the most useful view: pretty JSON, form fields, text, or a binary summary.
  function bodyView(body, encoding, contentType, rawUrl) {
    if (!body) return el("p", { class: "muted", text: "empty body" });
    if (encoding === "base64") {
      let bytes = 0;
      let hex = "";
      try {
        const bin = atob(body);
        bytes = bin.length;
        for (let i = 0; i < Math.min(bin.length, 256); i++) {
          hex += bin.charCodeAt(i).toString(16).padStart(2, "0") + (i % 16 === 15 ? "\n" : " ");
        }
      } catch (_) { /* not base64 after all */ }
      return el("div", {},
        el("p", { class: "muted" }, `binary body, ${fmtBytes(bytes)} (first 256 bytes in hex)`,
          rawUrl ? [" · ", el("a", { href: rawUrl, download: "body.bin", text: "download" })] : null),
        el("pre", { class: "text", text: hex }));
    }
    const type = contentType.toLowerCase();
    const trimmed = body.trimStart();
    if (type.includes("json") || trimmed.startsWith("{") || trimmed.startsWith("[")) {
      try {
        return jsonView(JSON.parse(body));
      } catch (_) { /* shown as text below */ }
    }
    if (type.includes("application/x-www-form-urlencoded")) {
      const fields = Array.from(new URLSearchParams(body).entries());
      return el("div", {}, el("h4", { text: "form fields" }), kvTable(fields, { secrets: isSecretParam }),
        el("h4", { text: "raw" }), textView(maskForm(body)));
    }
    return textView(body);
  }

  function metaList(call) {
    const status = call.response ? call.response.status : null;
    const items = [
      ["id", call.id], ["seq", `#${call.seq}`], ["time", call.time], ["service", call.service],
      ["namespace", call.namespace], ["direction", call.direction],
      ["request", `${call.method} ${maskPath(call.path)}`], ["status", status === null ? "pending" : String(status)],
      ["duration", `${call.duration_ms} ms`],
    ];
    const dl = el("dl", { class: "meta" }, items.map(([k, v]) => [el("dt", { text: k }), el("dd", { text: v })]));
    if (call.fault) {
      dl.append(el("dt", { text: "fault" }),
        el("dd", {}, el("span", { class: "badge fault", text: faultLabel(call.fault) }), ` rule ${call.fault.id}`));
    }
    if (call.stub) {
      dl.append(el("dt", { text: "stub" }),
        el("dd", {}, el("span", { class: "badge stub", text: "stub" }), ` ${call.stub.id} (reply #${call.stub.index})`));
    }
    return dl;
  }

  function responseSection(call) {
    const r = call.response;
    if (!r) return section("Response", true, el("p", { class: "muted", text: "no response recorded (yet)" }));
    return section(`Response ${r.status}`, true,
      el("h4", { text: "headers" }), kvTable(Object.entries(r.headers || {}), { secrets: true }),
      el("h4", { text: "body" }), bodyView(r.body, r.body_encoding, headerValue(r.headers, "content-type"), null));
  }

  function httpDetail(call) {
    const contentType = headerValue(call.headers, "content-type");
    const query = Object.entries(call.query || {});
    return [
      section("Request", true,
        query.length ? [el("h4", { text: "query" }), kvTable(query, { secrets: isSecretParam })] : null,
        el("h4", { text: "headers" }), kvTable(Object.entries(call.headers || {}), { secrets: true }),
        el("h4", { text: "body" }), bodyView(call.body, call.body_encoding, contentType, callUrl(call.id, "/raw"))),
      section("Parsed data", true,
        call.data_truncated ? el("p", { class: "muted truncated", text: "cut to stay readable (nested too deep, or values no reader can hold): the body above is complete" }) : null,
        jsonView(call.data || {})),
      responseSection(call),
    ];
  }

  // The email's HTML, in a sandbox: no scripts, an opaque origin, and a policy that loads nothing.
  function emailFrame(call, html, attachments) {
    const frame = document.createElement("iframe");
    frame.setAttribute("sandbox", "");
    frame.setAttribute("referrerpolicy", "no-referrer");
    frame.setAttribute("title", "email HTML (sandboxed: no scripts, no remote content)");
    frame.className = "email-html";
    const show = (doc) => { frame.srcdoc = `<!doctype html><meta charset="utf-8"><meta http-equiv="Content-Security-Policy" content="${FRAME_CSP}">${doc}`; };
    // srcdoc is set once: Chromium can keep the first document when a second srcdoc lands while the
    // first still loads (seen in CI: the cid: images stayed), so a message with inline images waits
    // for them (a local fetch) and falls back to the HTML as sent.
    const wanted = inlineParts(html, attachments);
    if (wanted.length) inlineImages(call, html, wanted).then(show, () => show(html));
    else show(html);
    return frame;
  }

  // Inline images (`cid:` links to the email's own parts) become data: URLs, the only images the
  // frame's policy allows: the email looks as sent, and still nothing is loaded from elsewhere.
  const INLINE_IMAGE_MAX = 5 * 1024 * 1024;
  function inlineParts(html, attachments) {
    const wanted = [];
    for (const [i, part] of attachments.entries()) {
      const ref = part && part.content_id ? `cid:${part.content_id}` : null;
      const type = String((part && part.content_type) || "");
      if (!ref || !html.includes(ref) || !/^image\/[a-z0-9.+-]+$/.test(type) || part.size > INLINE_IMAGE_MAX) continue;
      wanted.push({ i, ref, type });
    }
    return wanted;
  }

  async function inlineImages(call, html, wanted) {
    let doc = html;
    for (const { i, ref, type } of wanted) {
      const res = await fetch(callUrl(call.id, `/attachments/${i}`));
      if (!res.ok) continue;
      const bytes = new Blob([await res.arrayBuffer()], { type });
      const url = await new Promise((resolve, reject) => {
        const reader = new FileReader();
        reader.onload = () => resolve(String(reader.result));
        reader.onerror = () => reject(reader.error);
        reader.readAsDataURL(bytes);
      });
      doc = doc.split(ref).join(url);
    }
    return doc;
  }

  function emailDetail(call) {
    const d = call.data || {};
    const envelope = [
      ["From", d.from], ["To", asList(d.to).join(", ")], ["Cc", asList(d.cc).join(", ")],
      ["Subject", d.subject], ["Envelope from", d.mail_from], ["Envelope to", asList(d.rcpt_to).join(", ")],
      ["Auth user", d.auth_user], ["TLS", d.tls === undefined ? undefined : String(d.tls)],
    ].filter(([, v]) => v !== undefined && v !== null && v !== "");

    const attachments = Array.isArray(d.attachments) ? d.attachments : [];
    const tabs = [];
    if (typeof d.html === "string") tabs.push(["HTML", () => emailFrame(call, d.html, attachments)]);
    tabs.push(["Text", () => (typeof d.text === "string" ? textView(d.text) : el("p", { class: "muted", text: "no text part" }))]);
    tabs.push(["Headers", () => emailHeaders(call)]);
    tabs.push([`Attachments (${attachments.length})`, () => attachmentList(call, attachments)]);
    tabs.push(["Source", () => rawSource(call)]);

    const body = el("div", { class: "tab-body" });
    const bar = el("div", { class: "subtabs", role: "tablist" });
    const show = (i) => {
      for (const [j, b] of Array.from(bar.children).entries()) {
        b.classList.toggle("active", i === j);
        b.setAttribute("aria-selected", String(i === j));
      }
      body.replaceChildren(tabs[i][1]());
    };
    tabs.forEach(([label], i) => bar.append(el("button", {
      type: "button", role: "tab", class: "subtab", dataset: { tab: label.split(" ")[0].toLowerCase() },
      text: label, onclick: () => show(i),
    })));
    show(0);
    return [
      el("h3", { class: "subject", text: d.subject || "(no subject)" }),
      kvTable(envelope),
      el("div", { class: "email" }, bar, body),
      responseSection(call),
    ];
  }

  function emailHeaders(call) {
    const pairs = headerPairs(call.data && call.data.headers);
    if (pairs.length) return kvTable(pairs);
    const box = el("div", {}, el("p", { class: "muted", text: "reading the message source…" }));
    fetch(callUrl(call.id, "/raw")).then((r) => (r.ok ? r.text() : Promise.reject(new Error(r.statusText))))
      .then((raw) => box.replaceChildren(kvTable(parseRawHeaders(raw))))
      .catch((err) => box.replaceChildren(el("p", { class: "muted", text: `cannot read the source: ${err.message}` })));
    return box;
  }

  function attachmentList(call, attachments) {
    if (!attachments.length) return el("p", { class: "muted", text: "no attachments" });
    return el("ul", { class: "attachments" }, attachments.map((a, i) => {
      const name = (a && a.filename) || `attachment-${i + 1}`;
      return el("li", {},
        el("a", { href: callUrl(call.id, `/attachments/${i}`), download: name, text: name }),
        el("span", { class: "muted", text: ` ${(a && a.content_type) || "?"}, ${fmtBytes(a && a.size)}` }));
    }));
  }

  function rawSource(call) {
    const box = el("div", {}, el("p", { class: "muted", text: "loading…" }));
    fetch(callUrl(call.id, "/raw")).then((r) => (r.ok ? r.text() : Promise.reject(new Error(r.statusText))))
      .then((raw) => box.replaceChildren(
        el("p", {}, el("a", { href: callUrl(call.id, "/raw"), download: `message-${call.seq}.eml`, text: "download .eml" })),
        textView(raw)))
      .catch((err) => box.replaceChildren(el("p", { class: "muted", text: `cannot read the source: ${err.message}` })));
    return box;
  }

  function renderDetail(call) {
    const [main] = summaryOf(call);
    return [
      el("header", { class: "detail-head" },
        serviceBadge(call.service),
        el("h2", { text: viewOf(call) === "email" ? "email" : main }),
        el("a", { href: callUrl(call.id), target: "_blank", rel: "noopener", text: "JSON" })),
      metaList(call),
      viewOf(call) === "email" ? emailDetail(call) : httpDetail(call),
    ];
  }

  async function select(id) {
    state.selected = id;
    for (const row of ui.list.querySelectorAll(".row.selected")) row.classList.remove("selected");
    const row = ui.list.querySelector(`.row[data-id="${CSS.escape(id)}"]`);
    if (row) row.classList.add("selected");
    saveHash();
    ui.detail.replaceChildren(el("p", { class: "placeholder", text: "loading…" }));
    let call;
    try {
      call = await getJSON(callUrl(id));
    } catch (err) {
      if (state.selected === id) {
        const why = err.status === 404 ? "This call is no longer in the journal (reset, deleted or evicted)." : err.message;
        ui.detail.replaceChildren(el("p", { class: "placeholder", text: why }));
      }
      return;
    }
    if (state.selected !== id) return;
    ui.detail.replaceChildren(...renderDetail(call).flat());
    ui.detail.scrollTop = 0;
  }

  function moveSelection(step) {
    const current = state.selected && ui.list.querySelector(`.row[data-id="${CSS.escape(state.selected)}"]`);
    const next = current ? (step > 0 ? current.nextElementSibling : current.previousElementSibling) : ui.list.firstElementChild;
    if (next) {
      select(next.dataset.id);
      next.scrollIntoView({ block: "nearest" });
    }
  }

  // -- faults and stubs --------------------------------------------------------------------------------

  let rulesTimer = 0;
  function scheduleRules(delay) {
    if (!rulesTimer) rulesTimer = setTimeout(refreshRules, delay);
  }

  function ruleRow(cells, onDelete) {
    return el("tr", {}, cells.map((c) => el("td", {}, c)),
      el("td", {}, el("button", { type: "button", class: "danger small", text: "Delete", onclick: onDelete })));
  }

  function code(value) {
    const obj = compact(value);
    return Object.keys(obj).length ? el("code", { text: JSON.stringify(obj) }) : el("span", { class: "muted", text: "any" });
  }

  async function deleteRule(kind, id) {
    try {
      await getJSON(`/${kind}/${encodeURIComponent(id)}`, { method: "DELETE" });
    } catch (err) {
      if (err.status !== 404) setConn("error", `cannot delete ${id}: ${err.message}`);
    }
    refreshRules();
  }

  async function clearRules(kind) {
    const noun = { faults: "fault rule", stubs: "stub", limits: "rate limit" }[kind];
    if (!window.confirm(`Delete every ${noun}?`)) return;
    await getJSON(`/${kind}`, { method: "DELETE" }).catch(() => null);
    refreshRules();
  }

  function faultAction(f) {
    const extra = compact({
      preset: f.preset, status: f.status, delay_ms: f.delay_ms, stage: f.stage, code: f.code,
      after_chunks: f.after_chunks || null, after: f.after || null,
      probability: f.probability === 1 ? null : f.probability,
    });
    const parts = Object.entries(extra).map(([k, v]) => `${k}=${v}`);
    return el("span", {}, el("span", { class: "badge fault", text: `⚡ ${f.action}` }), parts.length ? ` ${parts.join(" ")}` : "");
  }

  function stubAnswer(s) {
    if (s.response) return el("code", { text: JSON.stringify(compact(s.response)) });
    if (s.sequence) return el("code", { text: `sequence of ${s.sequence.length}: ${JSON.stringify(s.sequence.map(compact))}` });
    return el("code", { text: JSON.stringify(compact(s.reply)) });
  }

  function limitRate(l) {
    const parts = [];
    if (l.requests !== null && l.requests !== undefined) parts.push(`${l.requests} requests`);
    if (l.tokens !== null && l.tokens !== undefined) parts.push(`${l.tokens} tokens`);
    const extra = compact({ stage: l.stage, code: l.code });
    const more = Object.entries(extra).map(([k, v]) => ` ${k}=${v}`).join("");
    return el("span", {}, el("span", { class: "badge fault", text: `⏱ ${parts.join(" + ")} / ${l.per}` }), more);
  }

  function limitKeys(l) {
    if (!l.keys.length) return el("span", { class: "muted", text: "idle" });
    const shown = l.keys.slice(0, 3).map((k) => `${k.key || "all"}: ${k.requests}${k.tokens ? ` (${k.tokens} tok)` : ""}`);
    return el("code", { text: shown.join(", ") + (l.keys.length > 3 ? ` … +${l.keys.length - 3}` : "") });
  }

  async function refreshRules() {
    clearTimeout(rulesTimer);
    rulesTimer = 0;
    try {
      const [faults, stubs, limits] = await Promise.all([
        getJSON("/faults"), getJSON("/stubs"), getJSON("/limits").catch(() => ({ limits: [], count: 0 })),
      ]);
      const ftbody = document.querySelector("#faults-table tbody");
      ftbody.replaceChildren(...faults.faults.map((f) => ruleRow([
        el("code", { text: f.id }), f.service || "any", code(f.match), faultAction(f),
        `${f.fired} / ${f.seen}`, f.remaining === null ? "∞" : String(f.remaining), fmtTime(f.created),
      ], () => deleteRule("faults", f.id))));
      const stbody = document.querySelector("#stubs-table tbody");
      stbody.replaceChildren(...stubs.stubs.map((s) => ruleRow([
        el("code", { text: s.id }), s.service || "any", code(s.match), stubAnswer(s),
        String(s.hits), s.times === null ? "∞" : String(s.times), fmtTime(s.created),
      ], () => deleteRule("stubs", s.id))));
      $("faults-empty").hidden = faults.count > 0;
      $("stubs-empty").hidden = stubs.count > 0;
      ui.faultsCount.textContent = String(faults.count);
      ui.faultsCount.classList.toggle("hot", faults.count > 0);
      ui.stubsCount.textContent = String(stubs.count);
      const ltbody = document.querySelector("#limits-table tbody");
      ltbody.replaceChildren(...limits.limits.map((l) => ruleRow([
        el("code", { text: l.id }), l.service || "any", code(l.match), limitRate(l), l.key || "all calls",
        `${l.passed} / ${l.limited}`, limitKeys(l), fmtTime(l.created),
      ], () => deleteRule("limits", l.id))));
      $("limits-empty").hidden = limits.count > 0;
      ui.limitsCount.textContent = String(limits.count);
      ui.limitsCount.classList.toggle("hot", limits.count > 0);
    } catch (_) { /* the server is away; the stream shows that */ }
    scheduleRules(RULES_EVERY_MS);
  }

  // -- wiring --------------------------------------------------------------------------------------------

  function showPanel(name) {
    for (const tab of document.querySelectorAll(".tab")) {
      const active = tab.dataset.panel === name;
      tab.classList.toggle("active", active);
      tab.setAttribute("aria-selected", String(active));
      $(`panel-${tab.dataset.panel}`).hidden = !active;
    }
    if (name !== "calls") refreshRules();
  }

  function saveHash() {
    const p = new URLSearchParams();
    const f = state.filters;
    if (f.service) p.set("service", f.service);
    if (f.namespace) p.set("namespace", f.namespace);
    if (f.text) p.set("q", f.text);
    if (state.selected) p.set("call", state.selected);
    const hash = p.toString();
    history.replaceState(null, "", hash ? `#${hash}` : location.pathname);
  }

  function readHash() {
    const p = new URLSearchParams(location.hash.slice(1));
    state.filters.service = p.get("service") || "";
    state.filters.namespace = p.get("namespace") || "";
    state.filters.text = p.get("q") || "";
    state.selected = p.get("call");
  }

  let filterTimer = 0;
  function onFilters(delay) {
    clearTimeout(filterTimer);
    filterTimer = setTimeout(() => {
      state.filters = { service: ui.service.value, namespace: ui.namespace.value.trim(), text: ui.text.value };
      saveHash();
      reload();
    }, delay);
  }

  async function init() {
    await loadCatalogue();
    for (const name of CATALOGUE.keys()) noteService(name);
    ui.namespaces.append(el("option", { value: "default" }));
    readHash();
    if (state.filters.service) noteService(state.filters.service);
    ui.service.value = state.filters.service;
    ui.namespace.value = state.filters.namespace;
    ui.text.value = state.filters.text;

    $("filters").addEventListener("submit", (ev) => {
      ev.preventDefault();
      onFilters(0);
    });
    ui.service.addEventListener("change", () => onFilters(0));
    ui.namespace.addEventListener("input", () => onFilters(300));
    ui.text.addEventListener("input", () => onFilters(300));
    ui.pause.addEventListener("click", () => setPaused(!state.paused));
    ui.clear.addEventListener("click", () => {
      state.floorSeq = state.maxSeq;
      reload();
    });
    ui.unclear.addEventListener("click", () => {
      state.floorSeq = 0;
      reload();
    });
    ui.more.addEventListener("click", loadOlder);
    ui.list.addEventListener("click", (ev) => {
      const row = ev.target.closest(".row");
      if (row) select(row.dataset.id);
    });
    ui.list.addEventListener("keydown", (ev) => {
      if (ev.key === "ArrowDown" || ev.key === "j") moveSelection(1);
      else if (ev.key === "ArrowUp" || ev.key === "k") moveSelection(-1);
      else return;
      ev.preventDefault();
    });
    document.addEventListener("keydown", (ev) => {
      if (ev.key === "/" && !/^(INPUT|SELECT|TEXTAREA)$/.test(document.activeElement.tagName)) {
        ev.preventDefault();
        ui.text.focus();
      }
    });
    for (const tab of document.querySelectorAll(".tab")) tab.addEventListener("click", () => showPanel(tab.dataset.panel));
    $("faults-refresh").addEventListener("click", refreshRules);
    $("stubs-refresh").addEventListener("click", refreshRules);
    $("faults-clear").addEventListener("click", () => clearRules("faults"));
    $("stubs-clear").addEventListener("click", () => clearRules("stubs"));
    $("limits-refresh").addEventListener("click", refreshRules);
    $("limits-clear").addEventListener("click", () => clearRules("limits"));

    reload();
    refreshRules();
    if (state.selected) select(state.selected);
  }

  init();
})();
