// The Jobs pages: #/jobs (the active job live, the last one, recent ones), #/jobs/<id> (one job:
// its log and hosts) and #/jobs/<id>/hosts/<host> (one host: counts and failed tasks).
// Read-only: nothing here starts or cancels a job.

import { stripAnsi } from "./ansi.js";
import { ApiError, getJSON } from "./api.js";
import { h, replace, table } from "./dom.js";
import { JobLog, TAIL } from "./joblog.js";
import {
  COUNTS,
  countCell,
  details,
  empty,
  jobDuration,
  jobLink,
  nodeLink,
  section,
  sleep,
  statusBadge,
  when,
} from "./parts.js";

const PAGE_SIZE = 25;
const ACTIVE_TAIL = 500; // the Jobs page shows the active job's end; its own page has more
const IDLE_POLL_MS = 5000; // how often the Jobs page looks for a job starting
const HOSTS_POLL_MS = 10000; // how often a running job's page refreshes its hosts' counts
const KINDS = ["commission", "decommission", "update", "discover", "cleanup", "maintenance"];
const STATUSES = ["queued", "running", "successful", "failed", "canceled", "timeout", "interrupted"];
const ACTIVE = ["queued", "running"];
const ENDED = STATUSES.filter((s) => !ACTIVE.includes(s));

export async function render(main, route) {
  const controller = new AbortController();
  const [, id, sub, host] = route.path;
  if (id === undefined) {
    await renderJobs(main, route, controller.signal);
  } else if (sub === undefined) {
    await renderJob(main, jobId(id), controller.signal);
  } else if (sub === "hosts" && host !== undefined && route.path.length === 4) {
    await renderHost(main, jobId(id), host);
  } else {
    throw new Error(
      `There is no page at ${location.hash}: a job is at #/jobs/<id>, its host at #/jobs/<id>/hosts/<host>.`,
    );
  }
  return () => controller.abort();
}

function jobId(text) {
  if (!/^[0-9]{1,10}$/.test(text) || Number(text) < 1) {
    throw new Error(`"${text}" is not a job id: job ids are whole numbers from 1 (see #/jobs).`);
  }
  return Number(text);
}

const jobPath = (id) => `/jobs/${encodeURIComponent(id)}`;
const hostHref = (id, host) => `#/jobs/${encodeURIComponent(id)}/hosts/${encodeURIComponent(host)}`;

// A check job changed nothing: marked wherever the job is shown, so nobody reads its "successful"
// as work done. Tags say which steps ran.
function checkMark(job) {
  if (!job.check) return null;
  return h("span", { class: "badge badge-busy", "data-testid": "job-check", title: "ran with --check --diff: nothing was changed" }, "check");
}

function kindCell(job, { mark = true } = {}) {
  const how = [];
  if (job.tags && job.tags.length) how.push(`tags ${job.tags.join(",")}`);
  if (job.skip_tags && job.skip_tags.length) how.push(`skip ${job.skip_tags.join(",")}`);
  const badge = mark ? checkMark(job) : null;
  return [job.kind, badge ? [" ", badge] : null, how.length ? h("span", { class: "muted small" }, ` (${how.join("; ")})`) : null];
}

function nodesList(nodes) {
  if (!nodes || nodes.length === 0) return "";
  return h("span", { class: "node-list" }, nodes.map((n, i) => [i ? ", " : "", nodeLink(n)]));
}

// What the reader of a ticket needs first: what ran, by whom, when, how it ended.
function jobDetails(job, { statusTestid = "job-status" } = {}) {
  return details([
    ["Status", [statusBadge(job.status, { "data-testid": statusTestid }), job.check ? [" ", checkMark(job), h("span", { class: "muted small" }, " nothing was changed")] : null]],
    ["What", job.desc],
    ["Kind", kindCell(job, { mark: false })], // the status says "check" already
    ["Nodes", nodesList(job.nodes)],
    ["Host group", job.host_group],
    ["Who", h("span", { "data-testid": "job-actor" }, job.actor)],
    ["Created", when(job.created_at)],
    ["Started", when(job.started_at)],
    ["Finished", when(job.finished_at)],
    ["Duration", jobDuration(job)],
    ["Exit code", job.rc === null || job.rc === undefined ? "" : String(job.rc)],
    ["Error", job.error ? h("span", { class: "error-text", "data-testid": "job-error" }, job.error) : ""],
  ]);
}

// ---- #/jobs/<id>/hosts/<host> ----------------------------------------------------------------

async function renderHost(main, id, host) {
  const body = await getJSON(`${jobPath(id)}/hosts/${encodeURIComponent(host)}`);
  const job = body.job;
  document.title = `${host} in job ${id} · clusterm console`;
  const counts = table(
    COUNTS,
    [{ cells: COUNTS.map((c) => countCell(c, body[c])), attrs: { "data-testid": "host-count-row" } }],
    { testid: "host-counts" },
  );
  const notes = [];
  if (body.tasks_dropped) {
    notes.push(
      `${body.tasks_dropped} task results of this host were not kept (the job's bound was reached); ` +
        "failed and unreachable ones always are.",
    );
  }
  if (!body.tasks_recorded) {
    notes.push("Only failed and unreachable tasks were recorded (the setting job_task_results is off).");
  }
  if (job.check) {
    notes.push("A check job (--check --diff): nothing was changed; a task marked changed would change something.");
  }
  const problems = body.tasks.filter((t) => t.status === "failed" || t.status === "unreachable");
  const failed = table(
    [
      { label: "Task", col: "task" },
      { label: "Status", col: "status" },
      { label: "Message", col: "message" },
    ],
    problems.map((t) => ({
      cells: [taskName(t), h("span", { class: "badge badge-bad" }, t.status), failureText(t)],
      attrs: { "data-testid": "failed-task", "data-status": t.status },
    })),
    { testid: "failed-tasks", empty: "No task failed on this host, and it was never unreachable." },
  );
  const tasks = table(
    [
      { label: "#", col: "index" },
      { label: "Task", col: "task" },
      { label: "Action", col: "action" },
      { label: "Status", col: "status" },
      { label: "Started", col: "started" },
      { label: "Duration", col: "duration" },
    ],
    body.tasks.map((t, i) => ({
      cells: [
        String(i + 1),
        taskName(t),
        t.action || "",
        h("span", { class: `task-status task-${t.status}` }, t.status),
        when(t.started_at),
        t.duration_ms === null || t.duration_ms === undefined ? "" : `${(t.duration_ms / 1000).toFixed(2)} s`,
      ],
      attrs: { "data-testid": "host-task", "data-status": t.status },
    })),
    { testid: "host-tasks", empty: "No task result is recorded for this host." },
  );
  main.append(
    h("p", { class: "crumbs no-print" }, h("a", { href: "#/jobs" }, "Jobs"), " › ", jobLink(id), " › ", host),
    h("h1", {}, `Host ${host} in job #${id}`),
    details([
      ["Job", [jobLink(id), " ", job.desc]],
      ["Job status", [statusBadge(job.status), job.check ? [" ", checkMark(job)] : null]],
      ["Job error", job.error || ""],
    ], { "data-testid": "host-job" }),
    h("h2", {}, "Counts"),
    h("div", { class: "table-wrap" }, counts),
    ...notes.map((n) => h("p", { class: "notice notice-warn" }, n)),
    h("h2", {}, "Failed and unreachable tasks"),
    h("div", { class: "table-wrap" }, failed),
    h("h2", {}, "Every task, in order"),
    h("div", { class: "table-wrap" }, tasks),
  );
}

function taskName(t) {
  const name = h("span", { class: "task-name" }, t.task || "(unnamed task)");
  const extra = [];
  if (t.role) extra.push(`role ${t.role}`);
  if (t.run && t.run !== "main") extra.push(`${t.run} run`);
  return extra.length ? [name, h("span", { class: "muted small" }, ` (${extra.join(", ")})`)] : name;
}

// A failure's message, its exit code and the end of its output: all text.
function failureText(t) {
  const parts = [h("span", { class: "failure-msg" }, t.msg ? stripAnsi(t.msg) : "(no message)")];
  if (t.rc !== null && t.rc !== undefined) parts.push(h("span", { class: "muted small" }, ` (rc ${t.rc})`));
  if (t.stderr_tail) parts.push(h("pre", { class: "output-tail", "data-stream": "stderr" }, stripAnsi(t.stderr_tail)));
  if (t.stdout_tail) parts.push(h("pre", { class: "output-tail", "data-stream": "stdout" }, stripAnsi(t.stdout_tail)));
  return parts;
}

// ---- per-host tables (the job page, the active job) ------------------------------------------

// The job's hosts: /jobs/{id}/hosts when its results are kept, else the recap in the job's row.
async function hostsPanel(job) {
  let body = null;
  let note = null;
  try {
    body = await getJSON(`${jobPath(job.id)}/hosts`);
  } catch (err) {
    if (!(err instanceof ApiError) || err.status !== 410) throw err;
    note = "Per-task results are no longer kept for this job; these are the counts of its recap.";
  }
  const hosts = body
    ? body.hosts
    : Object.entries(job.hosts || {})
        .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
        .map(([host, counts]) => ({ host, ...counts, failed_tasks: [] }));
  // A check job's hosts say what they would change: the tasks that reported changed.
  const checked = Boolean(job.check && body);
  const wouldChange = (hst) => {
    const tasks = hst.would_change || [];
    if (!tasks.length) return h("span", { class: "muted", "data-testid": "would-change" }, "nothing");
    return h("ul", { class: "would-change", "data-testid": "would-change" }, tasks.map((t) => h("li", {}, t)));
  };
  const rows = hosts.map((hst) => ({
    cells: [
      body ? h("a", { href: hostHref(job.id, hst.host), "data-testid": "host-link" }, hst.host) : hst.host,
      ...COUNTS.map((c) => countCell(c, hst[c])),
      ...(checked ? [wouldChange(hst)] : []),
    ],
    attrs: { "data-testid": "host-row", "data-host": hst.host },
  }));
  const running = job.status === "queued" || job.status === "running";
  const hostsTable = table(
    [
      { label: "Host", col: "host" },
      ...COUNTS.map((c) => ({ label: c, col: c })),
      ...(checked ? [{ label: "Would change", col: "would_change" }] : []),
    ],
    rows,
    { testid: "job-hosts", empty: running ? "No host has reported yet." : "No host reported a result." },
  );
  const failures = hosts.flatMap((hst) => hst.failed_tasks || []);
  const out = [h("div", { class: "table-wrap" }, hostsTable)];
  if (note) out.unshift(h("p", { class: "notice notice-info" }, note));
  if (failures.length) {
    out.push(
      h("h3", {}, "Failed and unreachable tasks"),
      h(
        "div",
        { class: "table-wrap" },
        table(
          [
            { label: "Host", col: "host" },
            { label: "Task", col: "task" },
            { label: "Status", col: "status" },
            { label: "Message", col: "message" },
          ],
          failures.map((t) => ({
            cells: [
              h("a", { href: hostHref(job.id, t.host) }, t.host),
              taskName(t),
              h("span", { class: "badge badge-bad" }, t.status),
              failureText(t),
            ],
            attrs: { "data-testid": "job-failed-task", "data-host": t.host },
          })),
          { testid: "job-failed-tasks" },
        ),
      ),
    );
  }
  return out;
}

// ---- #/jobs/<id> ---------------------------------------------------------------------------

async function renderJob(main, id, signal) {
  let piece = null;
  let job;
  let gone = null;
  try {
    piece = await getJSON(`${jobPath(id)}/log`, { tail: TAIL, color: true });
    job = piece;
  } catch (err) {
    if (!(err instanceof ApiError) || err.status !== 410) throw err;
    gone = err.message;
    job = await getJSON(jobPath(id));
  }
  document.title = `Job ${id} · clusterm console`;
  const summary = h("div", { "data-testid": "job-summary" }, jobDetails(job));
  const hosts = h("div", { "data-testid": "job-hosts-panel" }, await hostsPanel(job));
  let logPanel;
  let log = null;
  let hostsFinal = false; // the final hosts are shown: a refresh still on its way must not replace them
  if (piece) {
    log = new JobLog(id, {
      signal,
      onStatus: async (ended) => {
        hostsFinal = true;
        replace(summary, jobDetails(ended));
        try {
          replace(hosts, await hostsPanel(ended));
        } catch (err) {
          replace(hosts, h("p", { class: "notice notice-error" }, `Could not load the hosts: ${err.message}`));
        }
      },
    });
    log.show(piece);
    logPanel = log.element;
  } else {
    logPanel = h("p", { class: "notice notice-info", "data-testid": "log-gone" }, gone);
  }
  main.append(
    h("p", { class: "crumbs no-print" }, h("a", { href: "#/jobs" }, "Jobs"), " › ", `#${id}`),
    h("h1", {}, `Job #${id}`, job.desc ? h("span", { class: "subtitle" }, ` — ${job.desc}`) : null),
    summary,
    section("Hosts", { "data-testid": "hosts-section" }, hosts),
    section("Log", { "data-testid": "log-section" }, logPanel),
  );
  if (log) log.scrollToEnd(); // the end is what a reader opens a job for: its recap, its error
  if (log && (job.status === "queued" || job.status === "running" || !piece.complete)) {
    // The hosts' counts grow as tasks end: look again now and then until the job's end
    // (onStatus) shows the final ones.
    const timer = setInterval(async () => {
      try {
        const fresh = await hostsPanel(job);
        if (!hostsFinal) replace(hosts, fresh);
      } catch {
        // the next look, or the job's end, tries again
      }
    }, HOSTS_POLL_MS);
    signal.addEventListener("abort", () => clearInterval(timer), { once: true });
    log.follow().finally(() => clearInterval(timer)); // until the job ends or the page is left
  } else if (log) {
    log.setState(`The job ended: ${job.status}.`, "done");
  }
}

// ---- #/jobs --------------------------------------------------------------------------------

async function renderJobs(main, route, signal) {
  document.title = "Jobs · clusterm console";
  const active = h("section", { class: "panel", "data-testid": "active-job" }, h("h2", {}, "Active job"));
  const last = h("section", { class: "panel", "data-testid": "last-job" }, h("h2", {}, "Last job"));
  const recent = h("section", { class: "panel", "data-testid": "recent-jobs" }, h("h2", {}, "Recent jobs"));
  main.append(h("h1", {}, "Jobs"), active, last, recent);
  const refresh = async () => {
    await Promise.all([showLast(last), showRecent(recent, route)]);
  };
  await Promise.all([showActive(active, signal, refresh, true), refresh()]);
}

// The active job's section: its summary and its log following live; when none runs, the page
// looks again every few seconds, and a job that ends stays shown (with its hosts) until the next.
async function showActive(el, signal, refresh, firstLook) {
  const body = h("div", { class: "active-body" });
  replace(el, h("h2", {}, "Active job"), body);
  // Found through the list (an empty answer when none runs), not GET /info/job/active (a 404,
  // which the browser reports as an error on every look).
  const look = async () => {
    const [job] = await getJSON("/jobs", { status: ACTIVE, limit: 1 });
    if (!job) return null;
    return getJSON(`${jobPath(job.id)}/log`, { tail: ACTIVE_TAIL, color: true });
  };
  let piece = await look();
  if (firstLook && piece === null) {
    replace(body, empty("No job is running now.", { "data-testid": "no-active-job" }));
  }
  const foundAtLoad = piece !== null; // then the page's own first load lists it already
  // The rest runs in the background: the page is ready once the first look is shown.
  const watch = async () => {
    let shown = false;
    for (;;) {
      if (piece === null) {
        if (!(await sleep(IDLE_POLL_MS, signal))) return;
        try {
          piece = await look();
        } catch (err) {
          if (signal.aborted) return;
          replace(body, h("p", { class: "notice notice-error" }, `Could not look for an active job: ${err.message}`));
          continue;
        }
        if (piece === null) {
          if (!shown) replace(body, empty("No job is running now.", { "data-testid": "no-active-job" }));
          continue;
        }
      }
      // A job found now (or one that was only queued when the page loaded) is news for the
      // recent jobs' table too.
      if (shown || !foundAtLoad) refresh().catch(() => {});
      shown = true;
      const job = piece;
      const summary = h("div", {}, jobDetails(job, { statusTestid: "active-job-status" }));
      const hosts = h("div", { class: "active-hosts" });
      const log = new JobLog(job.id, {
        signal,
        onStatus: async (ended) => {
          replace(summary, jobDetails(ended, { statusTestid: "active-job-status" }));
          try {
            replace(hosts, h("h3", {}, "Hosts"), await hostsPanel(ended));
          } catch (err) {
            replace(hosts, h("p", { class: "notice notice-error" }, `Could not load the hosts: ${err.message}`));
          }
          refresh().catch(() => {});
        },
      });
      replace(
        body,
        h("p", {}, jobLink(job.id), " ", job.desc, " ", checkMark(job), " ", h("span", { class: "live" }, "live")),
        summary,
        log.element,
        hosts,
      );
      log.show(piece);
      // The job's own stream, not /info/job/active/stream: should this job end and another start
      // before the stream opens, the active stream would pour the next job's lines into this one.
      await log.follow();
      if (signal.aborted) return;
      // The job that ended stays below, for its status and hosts, until another one starts.
      body.querySelector(".live")?.remove();
      body.prepend(empty("No job is running now; the one that ran last:", { "data-testid": "no-active-job" }));
      piece = null;
    }
  };
  watch().catch((err) => {
    if (!signal.aborted) replace(body, h("p", { class: "notice notice-error" }, err.message));
  });
}

// The newest job that has ended (what GET /info/job/last serves, without its 404 when none has).
async function showLast(el) {
  const [piece] = await getJSON("/jobs", { status: ENDED, limit: 1 });
  if (!piece) {
    replace(el, h("h2", {}, "Last job"), empty("No job has finished yet.", { "data-testid": "no-last-job" }));
    return;
  }
  const recap = Object.entries(piece.hosts || {})
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([host, c]) => `${host}: ${COUNTS.map((k) => `${k}=${c[k] ?? 0}`).join(" ")}`);
  replace(
    el,
    h("h2", {}, "Last job"),
    h(
      "p",
      {},
      jobLink(piece.id),
      " ",
      piece.desc,
      " ",
      statusBadge(piece.status, { "data-testid": "last-job-status" }),
      piece.check ? [" ", checkMark(piece)] : null,
    ),
    details([
      ["Who", piece.actor],
      ["Finished", when(piece.finished_at)],
      ["Duration", jobDuration(piece)],
      ["Error", piece.error || ""],
      ["Recap", recap.length ? h("pre", { class: "recap" }, recap.join("\n")) : ""],
    ]),
  );
}

function filtersOf(params) {
  return {
    status: params.getAll("status").filter((s) => STATUSES.includes(s)),
    kind: params.getAll("kind").filter((k) => KINDS.includes(k)),
    node: params.get("node") || "",
  };
}

function select(name, values, chosen, label) {
  const el = h(
    "select",
    { name, "data-testid": `jobs-filter-${name}` },
    h("option", { value: "" }, `any ${label}`),
    values.map((v) => h("option", { value: v, selected: chosen.includes(v) }, v)),
  );
  return h("label", {}, label, el);
}

async function showRecent(el, route) {
  const filters = filtersOf(route.params);
  const form = h(
    "form",
    { class: "filters", "data-testid": "jobs-filters" },
    select("status", STATUSES, filters.status, "status"),
    select("kind", KINDS, filters.kind, "kind"),
    h(
      "label",
      {},
      "node",
      h("input", { type: "text", name: "node", value: filters.node, "data-testid": "jobs-filter-node" }),
    ),
    h("button", { type: "submit", "data-testid": "jobs-apply" }, "Apply"),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const data = new FormData(form);
    const params = new URLSearchParams();
    for (const key of ["status", "kind", "node"]) {
      const value = String(data.get(key) || "").trim();
      if (value) params.set(key, value);
    }
    const text = params.toString();
    location.hash = `#/jobs${text ? `?${text}` : ""}`;
  });
  const tbody = h("tbody");
  const headers = ["Job", "Kind", "Status", "Nodes", "Who", "Created", "Duration", "Error"];
  const cols = ["id", "kind", "status", "nodes", "actor", "created", "duration", "error"];
  const tbl = h(
    "table",
    { "data-testid": "jobs-table" },
    h("thead", {}, h("tr", {}, headers.map((label) => h("th", { scope: "col" }, label)))),
    tbody,
  );
  const more = h("button", { type: "button", class: "more", "data-testid": "jobs-more", hidden: true }, "Older jobs");
  const params = { limit: PAGE_SIZE, status: filters.status, kind: filters.kind, node: filters.node };
  let oldest = null;
  const load = async () => {
    const jobs = await getJSON("/jobs", { ...params, before_id: oldest });
    for (const job of jobs) {
      const cells = [
        jobLink(job.id),
        kindCell(job),
        statusBadge(job.status),
        nodesList(job.nodes),
        job.actor,
        when(job.created_at),
        jobDuration(job),
        job.error ? h("span", { class: "error-text" }, job.error) : "",
      ];
      tbody.append(
        h("tr", { "data-testid": "job-row", "data-job-id": job.id, "data-status": job.status },
          cells.map((cell, i) => h("td", { "data-col": cols[i] }, cell))),
      );
      oldest = job.id;
    }
    if (tbody.children.length === 0) {
      tbody.append(h("tr", { class: "empty" }, h("td", { colspan: headers.length }, "No job matches.")));
    }
    more.hidden = jobs.length < PAGE_SIZE;
  };
  more.addEventListener("click", async () => {
    more.disabled = true;
    try {
      await load();
    } catch (err) {
      more.after(h("p", { class: "notice notice-error" }, `Could not load older jobs: ${err.message}`));
    } finally {
      more.disabled = false;
    }
  });
  await load();
  replace(el, h("h2", {}, "Recent jobs"), form, h("div", { class: "table-wrap" }, tbl), more);
}
