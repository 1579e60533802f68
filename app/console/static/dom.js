// Building the page without HTML strings: every value reaches the document as a text node or an
// attribute value, so nothing the daemon sends can become markup (see docs/console.md#security).

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    // Handlers are added with addEventListener; an on* attribute would be inline script.
    if (name.toLowerCase() in HTMLElement.prototype && /^on/i.test(name)) {
      throw new Error(`h(): no inline handler attributes (${name})`);
    }
    el.setAttribute(name, value === true ? "" : String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else if (child instanceof Node) el.appendChild(child);
    else el.appendChild(document.createTextNode(String(child)));
  }
}

const pad = (n, width = 2) => String(n).padStart(width, "0");

// Local time as YYYY-MM-DD HH:MM:SS; '' for none, the input itself if it is not a time.
export function fmtTime(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return String(iso);
  return (
    `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
    `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`
  );
}

// "3 minutes ago", "in 2 hours"; '' for none.
export function fmtAgo(iso, now = Date.now()) {
  if (!iso) return "";
  const t = new Date(iso).getTime();
  if (Number.isNaN(t)) return String(iso);
  const diff = Math.round((now - t) / 1000);
  const ahead = diff < 0;
  const s = Math.abs(diff);
  let text;
  if (s < 45) text = `${s} second${s === 1 ? "" : "s"}`;
  else if (s < 45 * 60) text = plural(Math.round(s / 60), "minute");
  else if (s < 36 * 3600) text = plural(Math.round(s / 3600), "hour");
  else text = plural(Math.round(s / 86400), "day");
  return ahead ? `in ${text}` : `${text} ago`;
}

function plural(n, unit) {
  return `${n} ${unit}${n === 1 ? "" : "s"}`;
}

// 850 ms, 12.3 s, 4 m 05 s, 2 h 03 m.
export function fmtDuration(ms) {
  if (ms === null || ms === undefined || Number.isNaN(Number(ms))) return "";
  const v = Math.max(0, Number(ms));
  if (v < 1000) return `${Math.round(v)} ms`;
  const s = v / 1000;
  if (s < 60) return `${s.toFixed(1)} s`;
  const total = Math.floor(s);
  if (total < 3600) return `${Math.floor(total / 60)} m ${pad(total % 60)} s`;
  return `${Math.floor(total / 3600)} h ${pad(Math.floor((total % 3600) / 60))} m`;
}

// A table: headers are strings or {label, col}; rows are arrays of cells (string, Node or array),
// or {cells, attrs} to set attributes on the row. Cells get data-col when the header names one.
export function table(headers, rows, { testid, empty } = {}) {
  const cols = headers.map((hd) => (typeof hd === "string" ? { label: hd } : hd));
  const body = h("tbody");
  for (const row of rows) {
    const cells = Array.isArray(row) ? row : row.cells;
    const attrs = Array.isArray(row) ? {} : row.attrs || {};
    body.appendChild(
      h("tr", attrs, cells.map((cell, i) => h("td", { "data-col": cols[i] && cols[i].col }, cell))),
    );
  }
  if (rows.length === 0 && empty) {
    body.appendChild(h("tr", { class: "empty" }, h("td", { colspan: cols.length }, empty)));
  }
  return h(
    "table",
    { "data-testid": testid },
    h("thead", {}, h("tr", {}, cols.map((c) => h("th", { scope: "col" }, c.label)))),
    body,
  );
}

// Replace an element's children.
export function replace(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

// A small status line a page shows while it waits, or when something went wrong.
export function notice(text, kind = "info") {
  return h("p", { class: `notice notice-${kind}`, role: kind === "error" ? "alert" : "status" }, text);
}

// The hash for a path and parameters: every segment encoded, so a name is never read as a route.
export function routeHash(path, params) {
  const text = "#/" + path.map((p) => encodeURIComponent(String(p))).join("/");
  const search = params ? new URLSearchParams(params).toString() : "";
  return search ? `${text}?${search}` : text;
}

// Badge colours by meaning: done and well, in progress, needs a look, failed, at rest.
const STATE_KIND = {
  commissioned: "ok",
  provisioning: "busy",
  updating: "busy",
  decommissioning: "busy",
  cleaning: "busy",
  maintenance: "warn",
  failed: "bad",
  registered: "idle",
  decommissioned: "idle",
};
const RESULT_KIND = {
  succeeded: "ok",
  started: "busy",
  retrying: "warn",
  failed: "bad",
  interrupted: "bad",
  canceled: "idle",
};

export function badge(text, kind = "idle") {
  return h("span", { class: `badge badge-${kind}`, "data-value": text }, text);
}

export function stateBadge(state) {
  return state ? badge(state, STATE_KIND[state] || "idle") : "";
}

export function resultBadge(result) {
  return result ? badge(result, RESULT_KIND[result] || "idle") : "";
}
