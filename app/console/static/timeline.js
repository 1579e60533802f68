// Timeline: the cluster's events newest first, filtered by the form (reflected in the hash), with
// older pages by cursor and a live follow over the SSE stream that resumes where it stopped.

import { ApiError, getJSON, sse } from "./api.js";
import { fmtTime, h, notice, replace, resultBadge, routeHash } from "./dom.js";

const PAGE = 50;
const RESULTS = ["started", "succeeded", "failed", "retrying", "canceled", "interrupted"];
const SEVERITIES = ["debug", "info", "audit", "warning", "error"];
const LIST_FIELDS = ["node", "action", "result", "actor"]; // comma-separated in the form
const FIELDS = [...LIST_FIELDS, "since", "until", "min_severity", "job", "reason", "audit"];
const BACKOFF_MS = [1000, 2000, 5000, 10000, 30000];
const LOCAL_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?$/;

// ---- event rows, shared with the node page ----

export function eventsTable({ showNode = true, testid = "events-table" } = {}) {
  const cols = [
    ["Time", "time"],
    showNode ? ["Node", "node"] : null,
    ["Action", "action"],
    ["Result", "result"],
    ["Reason", "reason"],
    ["State", "change"],
    ["Job", "job"],
    ["Actor", "actor"],
    ["Note", "note"],
  ].filter(Boolean);
  const tbody = h("tbody");
  const element = h(
    "div",
    { class: "table-wrap" },
    h(
      "table",
      { "data-testid": testid, class: "events" },
      h("thead", {}, h("tr", {}, cols.map(([label]) => h("th", { scope: "col" }, label)))),
      tbody,
    ),
  );
  return { element, tbody };
}

function detailsText(details) {
  if (!details || typeof details !== "object") return "";
  return Object.entries(details)
    .map(([key, value]) => {
      const text = typeof value === "string" ? value : JSON.stringify(value);
      return `${key}=${text.length > 200 ? `${text.slice(0, 200)}…` : text}`;
    })
    .join(" ");
}

export function eventRow(event, { showNode = true } = {}) {
  const cell = (col, ...content) => h("td", { "data-col": col }, ...content);
  const change =
    event.from_state || event.to_state ? `${event.from_state || "·"} → ${event.to_state || "·"}` : "";
  const sev = event.severity === "warning" || event.severity === "error" ? event.severity : null;
  const extra = detailsText(event.details);
  return h(
    "tr",
    {
      "data-testid": "event-row",
      "data-event-id": event.id,
      class: sev ? `sev-${sev}` : null,
    },
    cell("time", h("span", { title: `${event.occurred_at} (id ${event.id})` }, fmtTime(event.occurred_at))),
    showNode
      ? cell("node", event.node ? h("a", { href: routeHash(["nodes", event.node]) }, event.node) : "")
      : null,
    cell("action", event.action),
    cell("result", resultBadge(event.result), sev ? [" ", h("span", { class: "badge badge-bad" }, sev)] : ""),
    cell("reason", event.reason),
    cell("change", change),
    cell(
      "job",
      event.job_id !== null && event.job_id !== undefined
        ? h("a", { href: routeHash(["jobs", event.job_id]), "data-testid": "event-job-link" }, `#${event.job_id}`)
        : "",
      event.attempt ? h("span", { class: "muted small" }, ` try ${event.attempt}`) : "",
    ),
    cell("actor", event.actor || ""),
    cell(
      "note",
      event.note || "",
      extra ? h("div", { class: "muted small mono" }, extra) : "",
    ),
  );
}

export function appendEvents(tbody, events, options) {
  for (const event of events) tbody.appendChild(eventRow(event, options));
}

// ---- filters ----

function split(value) {
  return value
    .split(",")
    .map((part) => part.trim())
    .filter(Boolean);
}

// A datetime-local value means the browser's local time; anything else (1h, an ISO time with
// its zone) is passed on for the daemon to accept or refuse.
function apiTime(value) {
  if (!value) return undefined;
  if (LOCAL_TIME.test(value)) {
    const d = new Date(value);
    if (!Number.isNaN(d.getTime())) return d.toISOString();
  }
  return value;
}

function apiParams(params) {
  const out = {};
  for (const name of LIST_FIELDS) {
    const values = params.getAll(name).flatMap(split);
    if (values.length) out[name] = values;
  }
  for (const name of ["min_severity", "job", "reason", "audit"]) {
    const value = params.get(name);
    if (value) out[name] = name === "reason" ? split(value) : value;
  }
  out.since = apiTime(params.get("since"));
  out.until = apiTime(params.get("until"));
  return out;
}

function field(label, input) {
  return h("label", {}, label, input);
}

function filterForm(params) {
  const text = (name, placeholder, list) =>
    h("input", {
      type: "text",
      name,
      value: params.getAll(name).join(","),
      placeholder,
      list,
      autocomplete: "off",
    });
  const time = (name) => {
    const value = params.get(name) || "";
    return h("input", {
      type: LOCAL_TIME.test(value) || value === "" ? "datetime-local" : "text",
      name,
      value,
      step: "1",
    });
  };
  const severity = h(
    "select",
    { name: "min_severity" },
    h("option", { value: "" }, "any"),
    SEVERITIES.map((s) =>
      h("option", { value: s, selected: params.get("min_severity") === s }, `${s} and above`),
    ),
  );
  const hidden = ["job", "reason", "audit"]
    .filter((name) => params.get(name))
    .map((name) => h("input", { type: "hidden", name, value: params.get(name) }));
  return h(
    "form",
    { class: "filters", "data-testid": "timeline-filters", role: "search" },
    h("datalist", { id: "timeline-results" }, RESULTS.map((r) => h("option", { value: r }))),
    field("Node", text("node", "node1, node2")),
    field("Action", text("action", "commission")),
    field("Result", text("result", "failed", "timeline-results")),
    field("Actor", text("actor", "token name")),
    field("Since", time("since")),
    field("Until", time("until")),
    field("Severity", severity),
    hidden,
    h("button", { type: "submit", class: "primary", "data-testid": "timeline-apply" }, "Apply"),
    h("button", { type: "button", "data-testid": "timeline-clear" }, "Clear"),
  );
}

function formHash(form, follow) {
  const params = new URLSearchParams();
  for (const [name, value] of new FormData(form)) {
    const text = String(value).trim();
    if (text && FIELDS.includes(name)) params.append(name, text);
  }
  if (follow) params.set("follow", "1");
  return routeHash(["timeline"], params);
}

function go(hash) {
  if (hash === location.hash) window.dispatchEvent(new HashChangeEvent("hashchange"));
  else location.hash = hash;
}

function describeFilters(params) {
  const parts = [];
  for (const name of FIELDS) {
    const value = params.getAll(name).join(",");
    if (value) parts.push(`${name}=${value}`);
  }
  return parts.length ? `Filtered by ${parts.join(", ")}` : "All events";
}

// ---- the page ----

export async function render(main, route) {
  const params = route.params;
  const query = apiParams(params);
  main.appendChild(h("h1", {}, "Timeline"));
  const form = filterForm(params);
  main.appendChild(form);

  const followBox = h("input", { type: "checkbox", "data-testid": "timeline-follow" });
  const followStatus = h("span", { class: "muted small", role: "status", "data-testid": "follow-status" });
  const canFollow = !params.get("until");
  followBox.disabled = !canFollow;
  const summary = h("p", { class: "muted", "data-testid": "timeline-summary" }, describeFilters(params));
  main.appendChild(
    h(
      "div",
      { class: "toolbar" },
      summary,
      h("span", { class: "spacer" }),
      h(
        "label",
        {
          class: "follow",
          title: canFollow ? "Show new events as they happen" : "An until time excludes new events",
        },
        followBox,
        "Follow live",
      ),
      followStatus,
    ),
  );
  const notes = h("div", { "data-testid": "timeline-notes" });
  main.appendChild(notes);

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    go(formHash(form, followBox.checked));
  });
  form.querySelector("[data-testid=timeline-clear]").addEventListener("click", () => {
    go(routeHash(["timeline"], followBox.checked ? { follow: "1" } : undefined));
  });

  const waiting = notice("Loading events from GET /info/timeline…");
  main.appendChild(waiting);
  const first = await getJSON("/info/timeline", { ...query, limit: PAGE });
  waiting.remove();

  const { element, tbody } = eventsTable({ testid: "timeline-table" });
  main.appendChild(element);
  const seen = new Set();
  const add = (events, where) => {
    const fresh = events.filter((e) => !seen.has(e.id));
    for (const e of fresh) seen.add(e.id);
    if (where === "top") {
      // The stream sends oldest first; each goes on top, so the newest ends up first.
      for (const e of fresh) {
        const row = eventRow(e);
        row.classList.add("fresh");
        tbody.insertBefore(row, tbody.firstChild);
      }
    } else {
      appendEvents(tbody, fresh);
    }
    emptyRow.hidden = seen.size > 0;
  };
  const emptyRow = h("tr", { class: "empty" }, h("td", { colspan: 9 }, "No events match these filters."));
  tbody.appendChild(emptyRow);
  add(first.items, "bottom");

  const more = h("button", { type: "button", class: "more", "data-testid": "timeline-more" }, "Load older events");
  const moreStatus = h("span", { class: "muted small", role: "status" });
  let before = first.next_before_id;
  more.hidden = before === null || before === undefined;
  more.addEventListener("click", async () => {
    more.disabled = true;
    replace(moreStatus, "Loading older events…");
    try {
      const page = await getJSON("/info/timeline", { ...query, limit: PAGE, before_id: before });
      add(page.items, "bottom");
      before = page.next_before_id;
      more.hidden = before === null || before === undefined;
      replace(moreStatus, before === null || before === undefined ? "That is the oldest event kept." : "");
    } catch (err) {
      replace(moreStatus, h("span", { class: "notice notice-error", role: "alert" }, err.message));
    } finally {
      more.disabled = false;
    }
  });
  main.appendChild(h("div", { class: "more-bar" }, more, " ", moreStatus));

  // ---- live follow ----
  let cursor = first.next_after_id ?? first.latest_id ?? null;
  let controller = null;
  const streamQuery = { ...query };
  delete streamQuery.since; // new events are after any since; the stream takes no time range
  delete streamQuery.until;

  const say = (text, kind) => {
    replace(followStatus, text);
    followStatus.className = kind === "live" ? "live small" : "muted small";
  };

  let lastReset = null; // the last reset shown: said once, however often it comes again

  async function follow(signal) {
    let attempt = 0;
    while (!signal.aborted) {
      say("Following live", "live");
      let failed = "the connection closed";
      try {
        for await (const message of sse("/info/timeline/stream", streamQuery, {
          lastEventId: cursor,
          signal,
        })) {
          if (message.event === "message") {
            attempt = 0; // only events reset the backoff: a stream that only errs backs off
            add([JSON.parse(message.data)], "top");
            if (message.id) cursor = message.id;
          } else if (message.event === "reset") {
            const body = parse(message.data);
            // Move the cursor past what the reset said, or the next reconnect (a narrow filter
            // may see no event for long) would get the same reset again.
            if (message.id) cursor = message.id;
            else if (body.purged_through_id != null) cursor = String(body.purged_through_id);
            else cursor = null; // a cursor the daemon does not know: it starts at the newest
            const text = body.message || message.data;
            if (text !== lastReset) notes.appendChild(notice(text, "warn"));
            lastReset = text;
          } else if (message.event === "error") {
            const body = parse(message.data);
            if (body.status === 401 || String(body.error).toLowerCase() === "unauthorized") return;
            failed = body.message || message.data;
            break;
          }
        }
      } catch (err) {
        if (signal.aborted || (err && err.name === "AbortError")) return;
        if (err instanceof ApiError && err.status === 401) return; // back to sign-in
        if (err instanceof ApiError && err.status >= 400 && err.status < 500) {
          // A refused filter will be refused again: say so and stop.
          say("");
          followBox.checked = false;
          notes.appendChild(notice(`Live follow stopped: ${err.message}`, "error"));
          return;
        }
        failed = err.message || String(err);
      }
      if (signal.aborted) return;
      const wait = BACKOFF_MS[Math.min(attempt, BACKOFF_MS.length - 1)];
      attempt += 1;
      say(`Live follow interrupted (${failed}); reconnecting in ${wait / 1000} s…`);
      await sleep(wait, signal);
    }
  }

  function setFollow(on) {
    if (controller) {
      controller.abort();
      controller = null;
    }
    if (on) {
      controller = new AbortController();
      follow(controller.signal).catch((err) => {
        console.error(err);
        say(`Live follow failed: ${err.message}`);
      });
    } else {
      say("");
    }
    // Kept in the hash (without a new history entry), so a reload keeps following.
    const next = new URLSearchParams(params);
    if (on) next.set("follow", "1");
    else next.delete("follow");
    history.replaceState(null, "", routeHash(["timeline"], next));
  }

  followBox.addEventListener("change", () => setFollow(followBox.checked));
  if (canFollow && params.get("follow") === "1") {
    followBox.checked = true;
    setFollow(true);
  }
  return () => {
    if (controller) controller.abort();
  };
}

function parse(data) {
  try {
    const value = JSON.parse(data);
    return value && typeof value === "object" ? value : {};
  } catch {
    return {};
  }
}

function sleep(ms, signal) {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener(
      "abort",
      () => {
        clearTimeout(timer);
        resolve();
      },
      { once: true },
    );
  });
}
