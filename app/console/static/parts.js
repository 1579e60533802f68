// Small pieces the Jobs, Verbosity and Drift pages share: times, statuses, counts, empty states.

import { fmtDuration, fmtTime, h } from "./dom.js";

const pad = (n) => String(n).padStart(2, "0");

function utc(iso) {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return String(iso);
  return (
    `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())} ` +
    `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())} UTC`
  );
}

// A time in local time, its UTC value in the title (a ticket quotes either).
export function when(iso, empty = "") {
  if (!iso) return empty;
  return h("time", { datetime: iso, title: utc(iso) }, fmtTime(iso));
}

// How long a job ran; "" until it has ended (a figure frozen at the page's load would mislead).
export function jobDuration(job) {
  if (!job.started_at || !job.finished_at) return "";
  return fmtDuration(new Date(job.finished_at).getTime() - new Date(job.started_at).getTime());
}

// A job status's badge colour: done well, under way, stopped, gone wrong.
const STATUS_BADGE = {
  queued: "busy",
  running: "busy",
  successful: "ok",
  failed: "bad",
  canceled: "warn",
  timeout: "bad",
  interrupted: "bad",
};

// A status word as a badge; the text is the status itself.
export function statusBadge(status, attrs = {}) {
  const kind = STATUS_BADGE[status] || "idle";
  return h("span", { class: `badge badge-${kind}`, ...attrs }, String(status ?? ""));
}

export const COUNTS = ["ok", "changed", "failed", "unreachable", "skipped", "rescued", "ignored"];

// A count cell: the number, marked when a non-zero failure count needs the eye.
export function countCell(name, value) {
  const n = Number(value ?? 0);
  const bad = (name === "failed" || name === "unreachable") && n > 0;
  return h("span", { class: bad ? "count count-bad" : "count" }, String(n));
}

export function jobLink(id) {
  return h("a", { href: `#/jobs/${encodeURIComponent(id)}`, "data-testid": "job-link" }, `#${id}`);
}

export function nodeLink(name) {
  return h("a", { href: `#/nodes/${encodeURIComponent(name)}`, class: "node-link" }, name);
}

// A definition list of [label, value] pairs (values: strings, nodes or arrays); empty ones left out.
export function details(pairs, attrs = {}) {
  const items = [];
  for (const [label, value] of pairs) {
    if (value === null || value === undefined || value === "") continue;
    if (Array.isArray(value) && value.length === 0) continue;
    items.push(h("dt", {}, label), h("dd", {}, value));
  }
  return h("dl", { class: "details", ...attrs }, items);
}

export function section(title, attrs, ...children) {
  return h("section", { class: "panel", ...attrs }, h("h2", {}, title), ...children);
}

export function empty(text, attrs = {}) {
  return h("p", { class: "empty-state", ...attrs }, text);
}

// Wait `ms`, or less if `signal` aborts (then resolve false).
export function sleep(ms, signal) {
  return new Promise((resolve) => {
    if (signal && signal.aborted) return resolve(false);
    const timer = setTimeout(() => resolve(true), ms);
    if (signal) {
      signal.addEventListener(
        "abort",
        () => {
          clearTimeout(timer);
          resolve(false);
        },
        { once: true },
      );
    }
  });
}
