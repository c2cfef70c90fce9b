// The Scarab console: one page served by every node at /ui/, no framework and no build step.
// It is a client of /v1 like curl or the CLI: everything it shows comes from the API, with
// the user's token (kept in session storage), so it can do nothing its user could not.
//
// Views are hash routes (#/configs, #/config/KEY, #/edit/KEY, #/new, #/history/KEY,
// #/schemas, #/schema/NAME/V, #/register/NAME, #/migrations, #/audit, #/cluster). Text from
// the server is only ever set as text (never as HTML), and the page's CSP allows no other
// origin and no inline script.

"use strict";

const TOKEN_KEY = "scarab.token";
const VALIDATE_DEBOUNCE_MS = 300;
const LIST_PAGES = 5; // at most 5 pages of 1,000 configs in the tree

// ---------------------------------------------------------------- DOM helpers

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else if (v === true) el.setAttribute(k, "");
    else el.setAttribute(k, String(v));
  }
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

const main = () => document.getElementById("main");

// Replaces an element's children (`null`, `false` and `undefined` are left out, where the
// DOM's own replaceChildren would show them as text).
function put(el, ...children) {
  el.replaceChildren(...children.flat(Infinity).filter((c) => c !== null && c !== undefined && c !== false));
}

function show(...children) {
  put(main(), ...children);
}

function notice(kind, ...text) {
  return h("div", { class: `notice ${kind}`, role: kind === "error" ? "alert" : "status" }, ...text);
}

function when(iso) {
  return iso ? iso.replace("T", " ").replace("Z", " UTC") : "—";
}

function link(href, text) {
  return h("a", { href }, text);
}

// ---------------------------------------------------------------- keys and reasons

// What a key may hold (the server refuses anything else, and percent-escapes in paths).
const KEY_CHARS = /^[A-Za-z0-9._\-]+(\/[A-Za-z0-9._\-]+)*$/;

// A key as a URL path: each segment escaped (a no-op for a valid key, and a key typed with
// `?` or `#` cannot turn into another request).
function keyPath(key) {
  const segments = key.split("/");
  // A link to #/config/../auth/users must not reach another route: no dot segments.
  if (segments.some((seg) => seg === "" || seg === "." || seg === "..")) throw new Error(`${JSON.stringify(key)} is not a key`);
  return segments.map(encodeURIComponent).join("/");
}

// A schema name (or a number) as one path segment.
function seg(name) {
  const text = String(name);
  if (text === "" || text === "." || text === "..") throw new Error(`${JSON.stringify(text)} is not a name`);
  return encodeURIComponent(text);
}

// The X-Scarab-Reason header for `text`, or an error message: the server takes visible
// ASCII and spaces, at most 1024 characters.
function reasonHeader(text) {
  const reason = text.trim();
  if (!reason) return { headers: {} };
  if (reason.length > 1024) return { error: "A reason has at most 1024 characters." };
  if (!/^[\x20-\x7e]+$/.test(reason)) return { error: "A reason is plain ASCII (letters, digits, punctuation, spaces)." };
  return { headers: { "x-scarab-reason": reason } };
}

// ---------------------------------------------------------------- exact JSON

// Numbers that a JavaScript number cannot hold exactly (2^53 and beyond, long decimals)
// keep their source text, so that showing or editing a value never changes it.
class RawNumber {
  constructor(src) { this.src = src; }
}

// Whether this browser gives a reviver the source text of a number (JSON.parse source text
// access): without it, numbers beyond 2^53 are rounded, and the editor says so.
const EXACT_NUMBERS = (() => {
  let exact = false;
  JSON.parse("1", (key, value, context) => { exact = !!context && context.source === "1"; return value; });
  return exact;
})();

function parseExact(text) {
  return JSON.parse(text, function (key, value, context) {
    if (typeof value === "number" && context && typeof context.source === "string") {
      if (String(value) !== context.source) return new RawNumber(context.source);
    }
    return value;
  });
}

function stringify(value, indent = "") {
  const next = indent + "  ";
  if (value instanceof RawNumber) return value.src;
  if (Array.isArray(value)) {
    if (value.length === 0) return "[]";
    return "[\n" + value.map((v) => next + stringify(v, next)).join(",\n") + "\n" + indent + "]";
  }
  if (value !== null && typeof value === "object") {
    const keys = Object.keys(value);
    if (keys.length === 0) return "{}";
    return "{\n" + keys.map((k) => next + JSON.stringify(k) + ": " + stringify(value[k], next)).join(",\n") + "\n" + indent + "}";
  }
  return JSON.stringify(value);
}

// ---------------------------------------------------------------- the API

class ApiError extends Error {
  constructor(status, body) {
    const err = (body && body.error) || {};
    super(err.message || `HTTP ${status}`);
    this.status = status;
    this.code = err.code || "http_" + status;
    this.body = body;
  }
}

function authHeaders() {
  const token = sessionStorage.getItem(TOKEN_KEY);
  return token ? { authorization: "Bearer " + token } : {};
}

// One request; answers {status, headers, body (parsed exactly), text}. Throws ApiError for
// a non-2xx answer (401 also shows the login form), TypeError when the node is unreachable.
async function api(method, path, { body, headers, raw } = {}) {
  const init = { method, headers: { ...authHeaders(), ...(headers || {}) } };
  if (body !== undefined) {
    if (body instanceof FormData) init.body = body;
    else {
      init.headers["content-type"] = "application/json";
      init.body = typeof body === "string" ? body : JSON.stringify(body);
    }
  }
  const resp = await fetch(path, init);
  if (raw && resp.ok) return resp;
  const text = await resp.text();
  let parsed = null;
  try { parsed = text ? parseExact(text) : null; } catch { parsed = null; }
  if (!resp.ok) {
    if (resp.status === 401) login(parsed && parsed.error ? parsed.error.message : null);
    throw new ApiError(resp.status, parsed);
  }
  return { status: resp.status, headers: resp.headers, body: parsed, text };
}

function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== "") q.set(k, v);
  const s = q.toString();
  return s ? "?" + s : "";
}

function failure(e) {
  if (e instanceof ApiError) return notice("error", h("strong", {}, e.code), ": ", e.message);
  return notice("error", "The node did not answer: ", String(e.message || e));
}

// ---------------------------------------------------------------- connection state

// What the page says about its live updates: "live", "connection lost" or "resumed".
const connection = {
  state: null,
  set(state, why) {
    const el = document.getElementById("connection");
    el.title = why || "The live updates of this page";
    if (state === "ok") state = this.state === "lost" ? "resumed" : this.state === "resumed" ? "resumed" : "live";
    this.state = state;
    el.className = "connection " + (state || "");
    el.textContent = state === "live" ? "live" : state === "lost" ? "connection lost, retrying…" : state === "resumed" ? "reconnected" : state === "off" ? "no live updates" : "";
    el.dataset.state = state || "";
  },
};

// A watch over fetch (not EventSource, which cannot send the token): server-sent events of
// /v1/watch for `prefix` from revision `from` (the revision the view was read at, plus one,
// so that no write between the read and the watch is missed); `onChange(batch)` for each
// change, and `onChange({reset: true, events: []})` when the server can no longer resume
// (the revisions were compacted): the view then reads everything again. After a lost
// connection it reconnects with Last-Event-ID, so no change is missed or seen twice.
class Watch {
  constructor(prefix, from, onChange) {
    this.prefix = prefix;
    this.from = from;
    this.onChange = onChange;
    this.lastId = null;
    this.abort = new AbortController();
    this.run();
  }

  stop() {
    this.stopped = true;
    this.abort.abort();
  }

  reset() {
    this.lastId = null;
    this.from = null;
    this.onChange({ reset: true, events: [] });
  }

  async run() {
    let delay = 250;
    while (!this.stopped) {
      try {
        const headers = { ...authHeaders(), accept: "text/event-stream" };
        if (this.lastId) headers["last-event-id"] = this.lastId;
        const from = this.lastId ? null : this.from;
        const resp = await fetch("/v1/watch" + query({ prefix: this.prefix, progress: "5s", from_revision: from }), {
          headers, signal: this.abort.signal,
        });
        if (resp.status === 401) {
          login("The token was refused: sign in again.");
          return;
        }
        if (resp.status === 410) {
          this.reset();
          continue;
        }
        if (resp.status >= 400 && resp.status < 500 && resp.status !== 429) {
          // Retrying cannot help (403: the token may not watch all of this prefix).
          const body = await resp.json().catch(() => null);
          connection.set("off", (body && body.error && body.error.message) || "watch refused: " + resp.status);
          return;
        }
        if (!resp.ok) throw new Error("watch answered " + resp.status);
        connection.set("ok");
        delay = 250;
        await this.read(resp.body.getReader());
        if (!this.stopped) throw new Error("the watch ended");
      } catch (e) {
        if (this.stopped) return;
        connection.set("lost");
        await new Promise((r) => setTimeout(r, delay));
        delay = Math.min(delay * 2, 4000);
      }
    }
  }

  async read(reader) {
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      // Lines may end in CRLF, LF or CR (the SSE grammar); a CR at the end of a chunk may
      // be the first half of a CRLF, so it waits for the next chunk.
      buffer += decoder.decode(value, { stream: true });
      const held = buffer.endsWith("\r") ? "\r" : "";
      if (held) buffer = buffer.slice(0, -1);
      buffer = buffer.replace(/\r\n?/g, "\n");
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const event = { type: "message", data: [] };
        for (const line of block.split("\n")) {
          const colon = line.indexOf(":");
          if (colon <= 0) continue;
          const field = line.slice(0, colon);
          const val = line.slice(colon + 1).replace(/^ /, "");
          if (field === "event") event.type = val;
          else if (field === "id") event.id = val;
          else if (field === "data") event.data.push(val);
        }
        if (event.id) this.lastId = event.id;
        if (event.type === "change") this.onChange(JSON.parse(event.data.join("\n")));
        // The server ends the stream with an error it cannot resume from (compacted).
        if (event.type === "error") {
          this.reset();
          return;
        }
      }
      buffer += held;
    }
  }
}

// ---------------------------------------------------------------- login

function login(message) {
  if (document.querySelector("form.login")) return;
  stopView();
  const input = h("input", { type: "password", name: "token", autocomplete: "off", placeholder: "scarab_…" });
  const form = h("form", { class: "login panel", onsubmit: (ev) => {
    ev.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, input.value.trim());
    showWho();
    route();
  } },
    h("h1", {}, "Sign in"),
    message ? notice("error", message) : null,
    h("p", { class: "muted" }, "Paste a token (scarab auth token create). It is kept in this tab's session storage only."),
    h("label", {}, "Token", input),
    h("button", { type: "submit" }, "Sign in"));
  show(form);
  input.focus();
}

async function showWho() {
  const el = document.getElementById("who");
  try {
    const { body } = await api("GET", "/v1/auth/whoami");
    const token = sessionStorage.getItem(TOKEN_KEY);
    put(el, 
      body.authenticated_by === "open" ? "authentication off" : "signed in as " + body.principal,
      token ? h("button", { class: "secondary", onclick: () => { sessionStorage.removeItem(TOKEN_KEY); location.reload(); } }, "Sign out") : null);
  } catch {
    put(el);
  }
}

// ---------------------------------------------------------------- routing

let cleanup = [];
let routeId = 0;

// Called first thing by a view: answers whether the view is still the one shown, for the
// view to check after each `await` (the user may have gone elsewhere meanwhile).
function living() {
  const mine = routeId;
  return () => mine === routeId;
}

function stopView() {
  for (const f of cleanup) f();
  cleanup = [];
  // A view without live updates says nothing about them.
  connection.set(null);
}

function onLeave(f) {
  cleanup.push(f);
}

function parseHash() {
  const hash = location.hash.replace(/^#\/?/, "");
  const [path, q] = hash.split("?");
  return { path, params: new URLSearchParams(q || "") };
}

const ROUTES = [
  ["configs", () => configsView()],
  ["config/", (rest) => configView(rest)],
  ["edit/", (rest) => editView(rest)],
  ["new", () => editView(null)],
  ["history/", (rest) => historyView(rest)],
  ["schemas", () => schemasView()],
  ["schema/", (rest) => schemaView(rest)],
  ["register/", (rest) => registerView(rest)],
  ["migrations", () => migrationsView()],
  ["audit", () => auditView()],
  ["cluster", () => clusterView()],
];

async function route() {
  stopView();
  routeId++;
  const { path } = parseHash();
  for (const a of document.querySelectorAll("header nav a")) {
    a.classList.toggle("active", path.startsWith(a.dataset.view));
  }
  for (const [prefix, view] of ROUTES) {
    if (prefix.endsWith("/") ? path.startsWith(prefix) : path === prefix) {
      try {
        await view(path.slice(prefix.length));
        const flash = sessionStorage.getItem("scarab.flash");
        if (flash) {
          sessionStorage.removeItem("scarab.flash");
          main().prepend(notice("ok", flash));
        }
      } catch (e) {
        if (!(e instanceof ApiError && e.status === 401)) show(failure(e));
      }
      return;
    }
  }
  location.hash = "#/configs";
}

function go(hash) {
  if (location.hash === hash) route();
  else location.hash = hash;
}

// ---------------------------------------------------------------- configs: tree and list

// The configs under `prefix` (at most LIST_PAGES pages) and the revision of the first page.
async function listConfigs(prefix) {
  const items = [];
  let after = null;
  let revision = null;
  for (let page = 0; page < LIST_PAGES; page++) {
    const { body } = await api("GET", "/v1/configs" + query({ prefix, limit: 1000, after }));
    if (revision === null) revision = body.revision;
    items.push(...body.items);
    if (!body.next) return { items, more: false, revision };
    after = body.next;
  }
  return { items, more: true, revision };
}

function tree(keys, selected) {
  const root = Object.create(null);
  for (const key of keys) {
    let node = root;
    const parts = key.split("/");
    parts.forEach((part, i) => {
      const leaf = i === parts.length - 1;
      const name = leaf ? part : part + "/";
      node[name] = node[name] || (leaf ? key : Object.create(null));
      if (!leaf) node = node[name];
    });
  }
  const render = (node, path) => h("ul", {}, Object.keys(node).sort().map((name) => {
    const child = node[name];
    if (typeof child === "string") {
      return h("li", {}, h("a", { href: "#/config/" + child, class: child === selected ? "selected" : null, "data-key": child }, name));
    }
    return h("li", {}, h("details", { open: true },
      h("summary", {}, h("a", { href: "#/configs?prefix=" + encodeURIComponent(path + name) }, name)),
      render(child, path + name)));
  }));
  return h("nav", { class: "tree", "aria-label": "Configs by prefix" }, render(root, ""));
}

async function configsView() {
  const alive = living();
  const { params } = parseHash();
  const prefix = params.get("prefix") || "";
  const search = h("input", { type: "search", placeholder: "Search keys", value: params.get("q") || "", name: "q" });
  const body = h("div");
  show(h("h1", {}, prefix ? `Configs under ${prefix}` : "Configs"),
    h("div", { class: "row" }, search, h("button", { onclick: () => go("#/new" + query({ prefix })) }, "New config")),
    body);
  let items = [];
  let more = false;
  const render = () => {
    const q = search.value.trim().toLowerCase();
    const shown = items.filter((c) => !q || c.key.toLowerCase().includes(q));
    put(body, h("div", { class: "split" },
      h("div", { class: "panel" }, tree(shown.map((c) => c.key))),
      h("div", {},
        h("table", { class: "configs" },
          h("thead", {}, h("tr", {}, h("th", {}, "Key"), h("th", {}, "Schema"), h("th", { class: "num" }, "Revision"),
            h("th", { class: "num" }, "Version"), h("th", {}, "Updated"), h("th", {}, "By"))),
          h("tbody", {}, shown.map((c) => h("tr", { "data-key": c.key },
            h("td", {}, link("#/config/" + c.key, c.key)),
            h("td", {}, `${c.schema} v${c.schema_version}`),
            h("td", { class: "num revision" }, c.revision),
            h("td", { class: "num" }, c.key_version),
            h("td", {}, when(c.updated_at)),
            h("td", {}, c.updated_by))))),
        shown.length === 0 ? h("p", { class: "muted" }, "No configs.") : null,
        more ? h("p", { class: "muted" }, `Only the first ${items.length} configs are shown: narrow the prefix.`) : null)));
  };
  let revision = null;
  const load = async () => {
    ({ items, more, revision } = await listConfigs(prefix));
    if (alive()) render();
  };
  search.addEventListener("input", render);
  await load();
  if (!alive()) return;
  let pending = null;
  const watch = new Watch(prefix, revision + 1, () => {
    clearTimeout(pending);
    pending = setTimeout(() => load().catch(() => {}), 100);
  });
  onLeave(() => { watch.stop(); clearTimeout(pending); });
}

// ---------------------------------------------------------------- one config

async function getConfig(key) {
  const { body } = await api("GET", "/v1/configs/" + keyPath(key));
  return body;
}

function metadata(c) {
  return h("dl", { class: "meta" },
    h("dt", {}, "Revision"), h("dd", { "data-field": "revision" }, c.revision),
    h("dt", {}, "Key version"), h("dd", { "data-field": "key_version" }, c.key_version),
    h("dt", {}, "Schema"), h("dd", {}, link(`#/schema/${c.schema}/${c.schema_version}`, `${c.schema} v${c.schema_version}`),
      c.converted_from ? ` (converted from v${c.converted_from})` : ""),
    h("dt", {}, "Plugin"), h("dd", { class: "mono" }, c.plugin_digest || "none"),
    h("dt", {}, "Created"), h("dd", {}, when(c.created_at), " by ", c.created_by),
    h("dt", {}, "Updated"), h("dd", { "data-field": "updated" }, when(c.updated_at), " by ", c.updated_by));
}

async function configView(key) {
  const alive = living();
  const box = h("div");
  const status = h("div");
  show(h("h1", {}, key),
    h("div", { class: "row" },
      h("button", { onclick: () => go("#/edit/" + key) }, "Edit"),
      h("button", { class: "secondary", onclick: () => go("#/history/" + key) }, "History"),
      h("button", { class: "secondary delete", onclick: () => removeConfig(key, status) }, "Delete")),
    status, box);
  let read = null;
  const load = async (live) => {
    let c;
    try {
      const answer = await api("GET", "/v1/configs/" + keyPath(key));
      c = answer.body;
      read = Number(answer.headers.get("x-scarab-revision")) || c.revision;
    } catch (e) {
      if (e instanceof ApiError && e.status === 404) {
        put(box, notice("error", `${key} does not exist (or was deleted).`));
        return;
      }
      throw e;
    }
    if (!alive()) return;
    put(box, h("div", { class: "two" + (live ? " flash" : "") },
      h("div", { class: "panel" }, metadata(c)),
      h("pre", { class: "value", "data-revision": c.revision }, stringify(c.value))));
  };
  await load(false);
  if (!alive()) return;
  const watch = new Watch(key, read === null ? null : read + 1, (batch) => {
    if (batch.reset || batch.events.some((e) => e.key === key)) load(true).catch(() => {});
  });
  onLeave(() => watch.stop());
}

// Asks for a reason (kept in the audit trail) beside the button, then deletes.
function removeConfig(key, status) {
  const reason = h("input", { type: "text", name: "delete-reason", placeholder: "Why (kept in the audit trail)", size: 40 });
  const confirm = h("button", { type: "button", class: "danger confirm-delete", onclick: async () => {
    try {
      const why = reasonHeader(reason.value);
      if (why.error) return put(status, notice("error", why.error));
      await api("DELETE", "/v1/configs/" + keyPath(key), { headers: why.headers });
      sessionStorage.setItem("scarab.flash", `Deleted ${key}.`);
      go("#/configs");
    } catch (e) {
      put(status, failure(e));
    }
  } }, `Delete ${key}`);
  put(status, h("div", { class: "notice" }, reason, " ", confirm, " ",
    h("button", { type: "button", class: "secondary", onclick: () => put(status) }, "Keep it")));
  reason.focus();
}

// ---------------------------------------------------------------- edit and create

// The value of `doc` at JSON pointer `path`, as far down as it exists: [node, depth reached].
function pointerParts(path) {
  if (!path) return [];
  return path.split("/").slice(1).map((p) => p.replace(/~1/g, "/").replace(/~0/g, "~"));
}

// The document as a tree with each violation beside the field it is about (or the nearest
// field that exists, for a missing one).
function outline(doc, violations) {
  const at = new Map();
  for (const v of violations) {
    const parts = pointerParts(v.path);
    let node = doc;
    const reached = [];
    for (const p of parts) {
      if (node !== null && typeof node === "object" && !(node instanceof RawNumber) && Object.hasOwn(node, p)) {
        node = node[p];
        reached.push(p.replace(/~/g, "~0").replace(/\//g, "~1"));
      } else break;
    }
    const where = "/" + reached.join("/");
    if (!at.has(where)) at.set(where, []);
    at.get(where).push(v);
  }
  const why = (path) => (at.get(path) || []).map((v) =>
    h("span", { class: "why" }, h("span", { class: "badge " + v.source }, v.source), " ", v.message));
  const render = (value, path) => {
    if (value !== null && typeof value === "object" && !(value instanceof RawNumber)) {
      const entries = Array.isArray(value) ? value.map((v, i) => [String(i), v]) : Object.entries(value);
      return h("ul", {}, entries.map(([k, v]) => {
        const p = (path === "/" ? "" : path) + "/" + k.replace(/~/g, "~0").replace(/\//g, "~1");
        const scalar = v === null || typeof v !== "object" || v instanceof RawNumber;
        return h("li", { "data-path": p, class: at.has(p) ? "invalid" : null },
          h("span", { class: "field" }, k, ": ", scalar ? stringify(v) : Array.isArray(v) ? "[" : "{"),
          why(p),
          scalar ? null : [render(v, p), Array.isArray(v) ? "]" : "}"]);
      }));
    }
    return h("span", {}, stringify(value));
  };
  return h("div", { class: "outline", "data-path": "/" }, why("/"), render(doc, "/"));
}

async function editView(key) {
  const alive = living();
  const { params } = parseHash();
  const creating = key === null;
  const { body: catalog } = await api("GET", "/v1/schemas");
  let current = null;
  if (!creating) current = await getConfig(key);
  if (!alive()) return;

  const keyInput = h("input", { type: "text", name: "key", value: creating ? params.get("prefix") || "" : key, readonly: !creating, size: 40 });
  const schemaSelect = h("select", { name: "schema" }, catalog.schemas.map((s) => h("option", { value: s.name }, s.name)));
  const versionSelect = h("select", { name: "schema_version" });
  const editor = h("textarea", { class: "editor", name: "value", spellcheck: "false", "aria-label": "The config's value (JSON)" });
  const reason = h("input", { type: "text", name: "reason", placeholder: "Why (kept in the audit trail)", size: 50 });
  const save = h("button", { type: "submit", disabled: true }, creating ? "Create" : "Save");
  const result = h("div", { class: "validation", "data-state": "pending" });
  const status = h("div");

  const versionsOf = (name) => (catalog.schemas.find((s) => s.name === name) || { versions: [] }).versions;
  const fillVersions = (name, selected) => {
    const versions = versionsOf(name);
    put(versionSelect, ...versions.map((v) => h("option", { value: v }, "v" + v)));
    versionSelect.value = String(selected || versions[versions.length - 1] || "");
  };
  if (current) {
    schemaSelect.value = current.schema;
    fillVersions(current.schema, current.schema_version);
    editor.value = stringify(current.value);
  } else {
    fillVersions(schemaSelect.value);
    editor.value = "{\n}";
  }

  // Each change of the text, the key, the schema or the version is a new generation: an
  // answer about an older one is dropped, and Save is enabled only by the answer about the
  // text and key now in the form.
  let generation = 0;
  let timer = null;
  const validate = async () => {
    const mine = generation;
    save.disabled = true;
    result.dataset.state = "pending";
    const k = keyInput.value.trim();
    if (!KEY_CHARS.test(k)) {
      result.dataset.state = "invalid";
      put(result, notice("error", "A key is segments of A-Z a-z 0-9 . _ - separated by single slashes."));
      return;
    }
    let doc;
    try {
      doc = parseExact(editor.value);
    } catch (e) {
      result.dataset.state = "invalid";
      put(result, h("ul", { class: "violations" },
        h("li", { "data-path": "" }, h("span", { class: "badge json" }, "json"), " ", e.message)));
      return;
    }
    try {
      const { body } = await api("POST", `/v1/schemas/${seg(schemaSelect.value)}/versions/${seg(versionSelect.value)}/validate` + query({ key: k }), { body: editor.value });
      if (mine !== generation) return;
      result.dataset.state = body.valid ? "valid" : "invalid";
      put(result, 
        body.valid ? h("p", { class: "ok" }, "Valid against ", `${schemaSelect.value} v${versionSelect.value}`, body.plugin_digest ? " and its plugin" : "", ".")
          : h("ul", { class: "violations" }, body.violations.map((v) => h("li", { "data-path": v.path, "data-source": v.source },
            h("code", {}, v.path || "/"), " ", h("span", { class: "badge " + v.source }, v.source), " ", v.message,
            v.code ? h("span", { class: "muted" }, ` (${v.code})`) : null))),
        body.valid ? null : outline(doc, body.violations));
      save.disabled = !body.valid;
    } catch (e) {
      if (mine !== generation) return;
      result.dataset.state = "error";
      put(result, failure(e));
    }
  };
  const later = () => {
    generation++;
    save.disabled = true;
    clearTimeout(timer);
    timer = setTimeout(validate, VALIDATE_DEBOUNCE_MS);
  };
  editor.addEventListener("input", later);
  keyInput.addEventListener("input", later);
  schemaSelect.addEventListener("change", () => { fillVersions(schemaSelect.value); later(); });
  versionSelect.addEventListener("change", later);
  onLeave(() => clearTimeout(timer));

  const submit = async (ev) => {
    ev.preventDefault();
    const k = keyInput.value.trim();
    const why = reasonHeader(reason.value);
    if (why.error) return put(status, notice("error", why.error));
    const headers = { ...why.headers };
    if (current) headers["if-match"] = `"${current.revision}"`;
    else headers["if-none-match"] = "*";
    const validated = generation;
    // The value goes as typed: its numbers are never rounded through a JavaScript number.
    const body = `{"schema":${JSON.stringify(schemaSelect.value)},"schema_version":${Number(versionSelect.value)},"value":${editor.value}}`;
    save.disabled = true;
    try {
      const { body: written } = await api("PUT", "/v1/configs/" + keyPath(k), { body, headers });
      sessionStorage.setItem("scarab.flash", `Saved ${k} at revision ${written.revision}.`);
      go("#/config/" + k);
    } catch (e) {
      // Save again only what the last check found valid.
      save.disabled = !(validated === generation && result.dataset.state === "valid");
      if (e instanceof ApiError && e.status === 412) {
        let now = null;
        try { now = await getConfig(k); } catch { /* deleted meanwhile */ }
        put(status, notice("error",
          now ? `${k} was changed by ${now.updated_by} at ${when(now.updated_at)} (revision ${now.revision}) after you opened it. `
            : `${k} already exists, or was deleted after you opened it. `,
          h("button", { type: "button", class: "secondary", onclick: () => route() }, "Reload"),
          " loads the current value (your edits are lost)."));
        status.dataset.conflict = "true";
      } else if (e instanceof ApiError && e.body && e.body.error && e.body.error.violations) {
        put(status, failure(e));
        put(result, h("ul", { class: "violations" }, e.body.error.violations.map((v) =>
          h("li", { "data-path": v.path, "data-source": v.source }, h("code", {}, v.path || "/"), " ", h("span", { class: "badge " + v.source }, v.source), " ", v.message))));
      } else {
        put(status, failure(e));
      }
    }
  };

  show(h("h1", {}, creating ? "New config" : `Edit ${key}`),
    EXACT_NUMBERS ? null : notice("error", "This browser rounds numbers beyond 2^53 (it lacks JSON.parse source text access): such a number in this value would be saved rounded."),
    h("form", { class: "edit", onsubmit: submit },
      h("div", { class: "row" },
        h("label", {}, "Key", keyInput),
        h("label", {}, "Schema", schemaSelect),
        h("label", {}, "Version", versionSelect),
        current ? h("span", { class: "muted" }, `editing revision ${current.revision}`) : null),
      h("div", { class: "two" },
        h("div", {}, editor),
        h("div", { class: "panel" }, h("h2", {}, "Validation"), result)),
      h("div", { class: "row" }, h("label", {}, "Reason", reason), save,
        h("button", { type: "button", class: "secondary", onclick: () => history.back() }, "Cancel")),
      status));
  validate();
}

// ---------------------------------------------------------------- history, diff, rollback

// Line diff of two texts (longest common subsequence): rows of [kind, lineA, lineB].
// Lines the table of a diff may hold (rows × columns): beyond it, the two are shown whole.
const DIFF_CELLS = 4_000_000;

function diffLines(a, b) {
  const xs = a.split("\n");
  const ys = b.split("\n");
  // The common start and end are equal rows; only the middle needs the table.
  let head = 0;
  while (head < xs.length && head < ys.length && xs[head] === ys[head]) head++;
  let tail = 0;
  while (tail < xs.length - head && tail < ys.length - head && xs[xs.length - 1 - tail] === ys[ys.length - 1 - tail]) tail++;
  const same = (l) => ["same", l, l];
  const x = xs.slice(head, xs.length - tail);
  const y = ys.slice(head, ys.length - tail);
  const n = x.length, m = y.length;
  if ((n + 1) * (m + 1) > DIFF_CELLS) {
    const rows = xs.slice(0, head).map(same);
    for (let k = 0; k < Math.max(n, m); k++) rows.push([k >= m ? "removed" : k >= n ? "added" : "changed", x[k], y[k]]);
    return rows.concat(xs.slice(xs.length - tail).map(same));
  }
  const lcs = Array.from({ length: n + 1 }, () => new Uint32Array(m + 1));
  for (let i = n - 1; i >= 0; i--)
    for (let j = m - 1; j >= 0; j--)
      lcs[i][j] = x[i] === y[j] ? lcs[i + 1][j + 1] + 1 : Math.max(lcs[i + 1][j], lcs[i][j + 1]);
  const rows = xs.slice(0, head).map(same);
  let i = 0, j = 0;
  const gone = [], added = [];
  const flush = () => {
    while (gone.length || added.length) {
      const l = gone.shift(), r = added.shift();
      rows.push([l !== undefined && r !== undefined ? "changed" : l !== undefined ? "removed" : "added", l, r]);
    }
  };
  while (i < n || j < m) {
    if (i < n && j < m && x[i] === y[j]) { flush(); rows.push(["same", x[i], y[j]]); i++; j++; }
    else if (j < m && (i === n || lcs[i][j + 1] >= lcs[i + 1][j])) added.push(y[j++]);
    else gone.push(x[i++]);
  }
  flush();
  return rows.concat(xs.slice(xs.length - tail).map(same));
}

function diffTable(a, b, labelA, labelB) {
  const rows = diffLines(a, b);
  let la = 0, lb = 0;
  return h("table", { class: "diff" },
    h("thead", {}, h("tr", {}, h("th", { class: "ln" }), h("th", {}, labelA), h("th", { class: "ln" }), h("th", {}, labelB))),
    h("tbody", {}, rows.map(([kind, l, r]) => h("tr", { class: kind },
      h("td", { class: "ln" }, l !== undefined ? ++la : ""), h("td", { class: "a" }, l !== undefined ? l : ""),
      h("td", { class: "ln" }, r !== undefined ? ++lb : ""), h("td", { class: "b" }, r !== undefined ? r : "")))));
}

async function historyView(key) {
  const alive = living();
  const { params } = parseHash();
  const { body } = await api("GET", `/v1/configs/${keyPath(key)}/history` + query({ limit: 100 }));
  const items = body.items;
  const text = (rev) => {
    const it = items.find((i) => i.revision === rev);
    return it ? (it.deleted ? "(deleted)" : stringify(it.value)) : "";
  };
  let a = Number(params.get("a")) || (items[1] || items[0] || {}).revision;
  let b = Number(params.get("b")) || (items[0] || {}).revision;
  const diffBox = h("div", { class: "diffbox" });
  const status = h("div");
  const renderDiff = () => put(diffBox, items.length ? diffTable(text(a), text(b), `revision ${a}`, `revision ${b}`) : "");
  const rollback = async (rev, reasonInput) => {
    const why = reasonHeader(reasonInput.value);
    if (why.error) return put(status, notice("error", why.error));
    try {
      const { body: done } = await api("POST", `/v1/configs/${keyPath(key)}/rollback`, {
        body: { revision: rev }, headers: why.headers,
      });
      sessionStorage.setItem("scarab.flash", `Rolled ${key} back to revision ${rev}: now revision ${done.revision}.`);
      go(`#/history/${key}`);
    } catch (e) {
      put(status, failure(e));
    }
  };
  const row = (it, idx) => {
    const reasonInput = h("input", { type: "text", placeholder: "reason", name: "reason", size: 18 });
    const radio = (side, rev) => h("input", { type: "radio", name: side, value: rev, checked: (side === "a" ? a : b) === rev,
      "aria-label": `compare revision ${rev} as ${side === "a" ? "left" : "right"}`,
      onchange: () => { if (side === "a") a = rev; else b = rev; renderDiff(); } });
    return h("tr", { "data-revision": it.revision, class: idx === 0 ? "current" : null },
      h("td", {}, radio("a", it.revision)), h("td", {}, radio("b", it.revision)),
      h("td", { class: "num" }, it.revision), h("td", { class: "num" }, it.key_version),
      h("td", {}, it.deleted ? "deleted" : `${it.schema} v${it.schema_version}`),
      h("td", {}, when(it.updated_at)), h("td", {}, it.updated_by),
      h("td", {}, idx === 0 || it.deleted ? (idx === 0 ? h("span", { class: "muted" }, "current") : "")
        : h("span", {}, reasonInput, " ", h("button", { class: "secondary rollback", onclick: () => rollback(it.revision, reasonInput) }, "Roll back to this"))));
  };
  const tbody = h("tbody", {}, items.map(row));
  let before = body.next_before;
  const older = h("button", { type: "button", class: "secondary older", disabled: !before, onclick: async () => {
    try {
      const { body: page } = await api("GET", `/v1/configs/${keyPath(key)}/history` + query({ limit: 100, before }));
      const start = items.length;
      items.push(...page.items);
      tbody.append(...page.items.map((it, i) => row(it, start + i)));
      before = page.next_before;
      older.disabled = !before;
    } catch (e) {
      put(status, failure(e));
    }
  } }, "Older revisions");
  if (!alive()) return;
  show(h("h1", {}, `History of ${key}`),
    h("div", { class: "row" }, link("#/config/" + key, "← the config")),
    status,
    h("table", { class: "history" },
      h("thead", {}, h("tr", {}, h("th", {}, "Left"), h("th", {}, "Right"), h("th", { class: "num" }, "Revision"),
        h("th", { class: "num" }, "Key version"), h("th", {}, "Schema"), h("th", {}, "At"), h("th", {}, "By"), h("th", {}, ""))),
      tbody),
    h("div", { class: "row" }, older),
    body.compacted_through ? h("p", { class: "muted" }, `Revisions up to ${body.compacted_through} were dropped by retention.`) : null,
    h("h2", {}, "Difference"), diffBox);
  renderDiff();
}

// ---------------------------------------------------------------- schemas

async function schemasView() {
  const alive = living();
  const { body } = await api("GET", "/v1/schemas");
  if (!alive()) return;
  show(h("h1", {}, "Schemas"),
    h("table", { class: "schemas" },
      h("thead", {}, h("tr", {}, h("th", {}, "Name"), h("th", {}, "Versions"), h("th", {}))),
      h("tbody", {}, body.schemas.map((s) => h("tr", { "data-schema": s.name },
        h("td", {}, s.name),
        h("td", {}, s.versions.map((v) => [link(`#/schema/${s.name}/${v}`, "v" + v), " "])),
        h("td", {}, link(`#/register/${s.name}`, "register a new version")))))),
    h("p", {}, link("#/register/", "Register a new schema")));
}

function download(name, blob) {
  const url = URL.createObjectURL(blob);
  const a = h("a", { href: url, download: name });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

async function schemaView(rest) {
  const alive = living();
  const [name, version] = rest.split("/");
  const { body: s } = await api("GET", `/v1/schemas/${seg(name)}/versions/${seg(version)}`);
  const contract = s.plugin_contract;
  const getPlugin = async () => {
    const resp = await api("GET", `/v1/schemas/${seg(name)}/versions/${seg(version)}/plugin`, { raw: true });
    download(`${name.replace(/-/g, "_")}_v${version}.wasm`, await resp.blob());
  };
  if (!alive()) return;
  show(h("h1", {}, `${name} v${version}`),
    h("div", { class: "row" },
      h("button", { class: "secondary", onclick: () => download(`${name}-v${version}.json`, new Blob([stringify(s.schema)], { type: "application/json" })) }, "Download the JSON Schema"),
      s.plugin_digest ? h("button", { class: "secondary", onclick: getPlugin }, "Download the plugin") : null,
      h("button", { onclick: () => go(`#/register/${name}`) }, "Register a new version")),
    h("div", { class: "two" },
      h("div", { class: "panel" }, h("dl", { class: "meta" },
        h("dt", {}, "Revision"), h("dd", {}, s.revision),
        h("dt", {}, "Registered"), h("dd", {}, when(s.registered_at), " by ", s.registered_by),
        h("dt", {}, "Plugin digest"), h("dd", { class: "mono" }, s.plugin_digest || "no plugin"),
        h("dt", {}, "WIT version"), h("dd", {}, contract ? contract.wit : "—"),
        h("dt", {}, "Migrator"), h("dd", {}, contract && contract.migration ? `from v${contract.migration.from_version}` : "none"),
        h("dt", {}, "Downgrade"), h("dd", {}, contract && contract.migration ? (contract.migration.downgrade ? "yes" : "no") : "—"),
        (s.references || []).length ? [h("dt", {}, "References"), h("dd", {}, s.references.map((r) => `${r.name} v${r.version} `))] : null)),
      h("pre", { class: "schema" }, stringify(s.schema))));
}

function report(r) {
  const c = r.compatibility || r;
  return h("div", { class: "report", "data-compatible": String(!!c.compatible) },
    notice(c.compatible ? "ok" : "error",
      c.compatible ? "Compatible" : "Not compatible", `: ${c.checked} stored config(s) of v${c.from_version ?? "—"} checked, ${c.failed} failed.`),
    r.plugin_contract ? h("p", {}, `Plugin: WIT ${r.plugin_contract.wit}, migrator ${r.plugin_contract.migration ? "from v" + r.plugin_contract.migration.from_version + (r.plugin_contract.migration.downgrade ? " with downgrade" : "") : "none"}.`) : null,
    (c.failures || []).length ? h("ul", {}, c.failures.map((f) => h("li", {}, h("code", {}, f.key || ""), " ", f.reason || f.message || JSON.stringify(f)))) : null);
}

async function registerView(rest) {
  const alive = living();
  const name = rest || "";
  let next = 1;
  if (name) {
    try {
      const { body } = await api("GET", `/v1/schemas/${seg(name)}`);
      next = Math.max(0, ...body.versions.map((v) => v.version)) + 1;
    } catch (e) {
      if (!(e instanceof ApiError && e.status === 404)) throw e;
    }
  }
  const nameInput = h("input", { type: "text", name: "name", value: name });
  const versionInput = h("input", { type: "number", name: "version", min: 1, value: next });
  const schemaFile = h("input", { type: "file", name: "schema", accept: ".json,application/json" });
  const pluginFile = h("input", { type: "file", name: "plugin", accept: ".wasm,application/wasm" });
  const check = h("button", { type: "button", class: "check" }, "Check compatibility");
  const register = h("button", { type: "button", class: "register", disabled: true }, "Register");
  const out = h("div");
  const form = () => {
    const fd = new FormData();
    if (schemaFile.files[0]) fd.append("schema", new Blob([schemaFile.files[0]], { type: "application/json" }), schemaFile.files[0].name);
    if (pluginFile.files[0]) fd.append("plugin", new Blob([pluginFile.files[0]], { type: "application/wasm" }), pluginFile.files[0].name);
    return fd;
  };
  const path = () => `/v1/schemas/${seg(nameInput.value.trim())}/versions/${seg(versionInput.value)}`;
  for (const input of [nameInput, versionInput, schemaFile, pluginFile]) input.addEventListener("change", () => { register.disabled = true; });
  check.addEventListener("click", async () => {
    register.disabled = true;
    try {
      const { body } = await api("POST", path() + "/compatibility", { body: form() });
      put(out, report(body));
      register.disabled = !(body.compatibility || {}).compatible;
    } catch (e) {
      put(out, failure(e), e.body && e.body.error && e.body.error.report ? report(e.body.error.report) : "");
    }
  });
  register.addEventListener("click", async () => {
    try {
      await api("PUT", path(), { body: form() });
      go(`#/schema/${encodeURIComponent(nameInput.value.trim())}/${Number(versionInput.value)}`);
    } catch (e) {
      put(out, failure(e));
    }
  });
  if (!alive()) return;
  show(h("h1", {}, name ? `Register a version of ${name}` : "Register a schema"),
    h("div", { class: "panel" },
      h("div", { class: "row" }, h("label", {}, "Name", nameInput), h("label", {}, "Version", versionInput)),
      h("div", { class: "row" }, h("label", {}, "JSON Schema", schemaFile), h("label", {}, "Plugin (optional)", pluginFile)),
      h("p", { class: "muted" }, "The check is a dry run: it upgrades every config stored at the previous version and reports, registering nothing."),
      h("div", { class: "row" }, check, register)),
    out);
}

// ---------------------------------------------------------------- migrations

async function migrationsView() {
  const alive = living();
  const { body: catalog } = await api("GET", "/v1/schemas");
  const schemaSelect = h("select", { name: "schema" }, catalog.schemas.map((s) => h("option", { value: s.name }, s.name)));
  const target = h("input", { type: "number", name: "target_version", min: 1, value: 1 });
  const dry = h("input", { type: "checkbox", name: "dry_run", checked: true });
  const out = h("div");
  const list = h("div");
  const start = async (ev) => {
    ev.preventDefault();
    const dryRun = dry.checked;
    try {
      const { body } = await api("POST", `/v1/schemas/${seg(schemaSelect.value)}/migrations`, {
        body: { target_version: Number(target.value), dry_run: dryRun },
      });
      put(out, dryRun
        ? notice(body.failed.length ? "error" : "ok", `Dry run: ${body.convertible} of ${body.total} config(s) convert to v${body.target_version}.`,
          body.failed.length ? h("ul", {}, body.failed.map((f) => h("li", {}, h("code", {}, f.key), " ", f.reason || f.message || ""))) : "")
        : notice("ok", `Migration ${body.id} started.`));
      load();
    } catch (e) {
      put(out, failure(e));
    }
  };
  const load = async () => {
    const all = [];
    for (const s of catalog.schemas) {
      const { body } = await api("GET", `/v1/schemas/${seg(s.name)}/migrations`);
      all.push(...body.migrations);
    }
    all.sort((x, y) => y.id - x.id);
    put(list, h("table", { class: "migrations" },
      h("thead", {}, h("tr", {}, h("th", { class: "num" }, "Id"), h("th", {}, "Schema"), h("th", {}, "Target"), h("th", {}, "Status"),
        h("th", {}, "Progress"), h("th", {}, "Failures"))),
      h("tbody", {}, all.map((m) => {
        const bar = h("div");
        bar.style.width = (m.total ? Math.round((100 * (m.done + m.skipped + m.failed_count)) / m.total) : 100) + "%";
        return h("tr", { "data-id": m.id, "data-status": m.status },
          h("td", { class: "num" }, m.id), h("td", {}, m.schema), h("td", {}, "v" + m.target_version),
          h("td", {}, m.status),
          h("td", {}, h("div", { class: "progress", title: `${m.done} done, ${m.skipped} skipped of ${m.total}` }, bar),
            `${m.done} done, ${m.skipped} skipped of ${m.total}`),
          h("td", {}, m.failed_count ? h("ul", {}, (m.failed || []).map((f) => h("li", {}, h("code", {}, f.key), " ", f.reason || f.message || ""))) : "none"));
      }))),
    all.length ? null : h("p", { class: "muted" }, "No migrations yet."));
    return all.some((m) => m.status === "running");
  };
  if (!alive()) return;
  show(h("h1", {}, "Migrations"),
    h("form", { class: "panel start", onsubmit: start },
      h("div", { class: "row" }, h("label", {}, "Schema", schemaSelect), h("label", {}, "Target version", target),
        h("label", { class: "inline" }, dry, "dry run (convert and report, write nothing)"),
        h("button", { type: "submit" }, "Start"))),
    out, list);
  // Live progress: polled while this view is open.
  let stopped = false;
  onLeave(() => { stopped = true; });
  const tick = async () => {
    if (stopped) return;
    try { await load(); connection.set("ok"); } catch (e) { if (!(e instanceof ApiError)) connection.set("lost"); }
    setTimeout(tick, 1000);
  };
  await tick();
}

// ---------------------------------------------------------------- audit

async function auditView() {
  const { params } = parseHash();
  const fields = {};
  const input = (name, type = "text", extra = {}) => (fields[name] = h("input", { type, name, value: params.get(name) || "", ...extra }));
  const out = h("div");
  let before = null;
  const stamp = (v) => (v ? new Date(v).toISOString() : "");
  const load = async (more) => {
    const q = {
      prefix: fields.prefix.value, actor: fields.actor.value, action: fields.action.value,
      since: stamp(fields.since.value), until: stamp(fields.until.value), limit: 50,
      before: more ? before : null,
    };
    const { body } = await api("GET", "/v1/audit" + query(q));
    before = body.next_before;
    const rows = body.items.map((r) => h("tr", { "data-seq": r.seq, "data-actor": r.actor, "data-action": r.action },
      h("td", { class: "num" }, r.seq), h("td", {}, when(r.at)), h("td", {}, r.actor, r.on_behalf_of ? ` for ${r.on_behalf_of}` : ""),
      h("td", {}, r.action), h("td", {}, r.object),
      h("td", { class: "num" }, r.revision_before ?? "—", " → ", r.revision_after ?? "—"),
      h("td", {}, r.reason || "")));
    if (more) out.querySelector("tbody").append(...rows);
    else put(out, h("table", { class: "audit" },
      h("thead", {}, h("tr", {}, h("th", { class: "num" }, "Seq"), h("th", {}, "At"), h("th", {}, "Actor"), h("th", {}, "Action"),
        h("th", {}, "Object"), h("th", { class: "num" }, "Revisions"), h("th", {}, "Reason"))),
      h("tbody", {}, rows)));
    older.disabled = !before;
  };
  const older = h("button", { class: "secondary", type: "button", onclick: () => load(true).catch((e) => out.append(failure(e))) }, "Older");
  show(h("h1", {}, "Audit trail"),
    h("form", { class: "panel filters", onsubmit: (ev) => { ev.preventDefault(); load(false).catch((e) => put(out, failure(e))); } },
      h("div", { class: "row" },
        h("label", {}, "Object prefix", input("prefix")), h("label", {}, "Actor", input("actor")),
        h("label", {}, "Action (or family)", input("action", "text", { placeholder: "config" })),
        h("label", {}, "Since", input("since", "datetime-local")), h("label", {}, "Until", input("until", "datetime-local")),
        h("button", { type: "submit" }, "Filter"))),
    out, older);
  await load(false);
}

// ---------------------------------------------------------------- cluster

async function clusterView() {
  const head = h("div", { class: "panel" });
  const table = h("div");
  show(h("h1", {}, "Cluster"), head, table);
  let stopped = false;
  onLeave(() => { stopped = true; });
  const tick = async () => {
    if (stopped) return;
    try {
      const { body: v } = await api("GET", "/v1/cluster");
      connection.set("ok");
      put(head, h("dl", { class: "meta" },
        h("dt", {}, "Leader"), h("dd", { "data-field": "leader" }, v.leader ?? "none"),
        h("dt", {}, "Term"), h("dd", {}, v.term),
        h("dt", {}, "Last log index"), h("dd", {}, v.last_log_index ?? "—"),
        h("dt", {}, "Membership"), h("dd", {}, v.membership_committed ? "committed" : "change under way"),
        h("dt", {}, "Seen from"), h("dd", {}, `node ${v.served_by}`)));
      put(table, h("table", { class: "members" },
        h("thead", {}, h("tr", {}, h("th", { class: "num" }, "Node"), h("th", {}, "API"), h("th", {}, "Role"), h("th", {}, "State"),
          h("th", { class: "num" }, "Matched index"), h("th", { class: "num" }, "Lag"), h("th", {}, "Last answer"))),
        h("tbody", {}, v.members.map((m) => {
          const state = m.reachable === false ? "unreachable" : m.reachable ? "reachable" : "unknown";
          return h("tr", { "data-node": m.node_id, "data-state": state, class: state },
            h("td", { class: "num" }, m.node_id), h("td", {}, m.api), h("td", {}, m.role + (m.leader ? " (leader)" : "")),
            h("td", { class: "state" }, state),
            h("td", { class: "num" }, m.matched_index ?? "—"), h("td", { class: "num" }, m.lag ?? "—"),
            h("td", {}, m.node_id === v.served_by ? "itself" : m.last_contact_ms == null ? "never" : `${m.last_contact_ms} ms ago`));
        }))));
    } catch (e) {
      if (!(e instanceof ApiError)) connection.set("lost");
    }
    setTimeout(tick, 1000);
  };
  await tick();
}

// ---------------------------------------------------------------- start

window.addEventListener("hashchange", route);
window.addEventListener("DOMContentLoaded", () => {
  showWho();
  route();
});
