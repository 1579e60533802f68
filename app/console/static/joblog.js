// A job's log in the page: the tail first, earlier lines on demand, live lines while it runs.
//
// Line numbers are the daemon's (the same in the JSON log, the stream's ids and Last-Event-ID),
// so pieces loaded in any order land in their place and nothing shows twice. Where the log's
// middle was dropped (the job printed more than its log keeps) a marked gap line stands in.

import { ApiError, getJSON, sse } from "./api.js";
import { ansiNodes } from "./ansi.js";
import { h } from "./dom.js";
import { sleep } from "./parts.js";

export const TAIL = 2000; // lines loaded first: enough to read, small enough for any log
const EARLIER = 2000; // lines per "load earlier"
// Lines kept in the page while following; older ones leave it (and can be loaded again), so a
// job printing for hours does not slow the tab down.
const MAX_SHOWN = 20000;
const BOTTOM_SLACK_PX = 24;

// The items of a log response: {number, text} per line, {gap} for the marker line (as the
// daemon numbers them: the marker replaces lines after_line+1 .. after_line+lines).
export function numbered(piece) {
  const out = [];
  const lines = piece.logs || [];
  const gap = piece.gap;
  let number = piece.first_line || 0;
  const headCount =
    gap && piece.first_line !== null && piece.first_line !== undefined
      ? Math.max(gap.after_line - piece.first_line + 1, 0)
      : 0;
  lines.forEach((text, index) => {
    if (gap && index === headCount) {
      out.push({ gap: { first: gap.after_line + 1, last: gap.after_line + gap.lines, ...gap } });
      number = gap.after_line + gap.lines + 1;
      return;
    }
    out.push({ number, text });
    number += 1;
  });
  return out;
}

// The stream's gap event says it in words: "[clusterm: N lines (B bytes), lines F-L, were ...]".
function gapFromEvent(data, lastDropped) {
  const m = /(\d+) lines \((\d+) bytes\), lines (\d+)-(\d+)/.exec(data);
  if (m) return { lines: Number(m[1]), bytes: Number(m[2]), first: Number(m[3]), last: Number(m[4]) };
  return { lines: null, bytes: null, first: lastDropped, last: lastDropped, text: data };
}

function itemNode(item) {
  if (item.gap) {
    const g = item.gap;
    const text =
      g.lines === null
        ? `… ${g.text} …`
        : `… ${g.lines} lines dropped here (lines ${g.first}-${g.last}, ${g.bytes} bytes): ` +
          "the job printed more than its log keeps …";
    return h(
      "span",
      { class: "log-gap", "data-testid": "log-gap", "data-gap-first": g.first, "data-gap-last": g.last },
      text,
    );
  }
  const span = h("span", { class: "log-line", "data-line": item.number });
  span.append(...ansiNodes(item.text));
  return span;
}

const itemFirst = (el) => Number(el.dataset.line ?? el.dataset.gapFirst);

export class JobLog {
  // `onStatus(job)` is called once when a followed job has ended (its final row).
  constructor(jobId, { signal, onStatus = () => {} } = {}) {
    this.jobId = jobId;
    this.signal = signal;
    this.onStatus = onStatus;
    this.pre = h("pre", { class: "job-log", "data-testid": "job-log", tabindex: "0" });
    this.earlierButton = h(
      "button",
      { type: "button", class: "log-earlier", "data-testid": "log-earlier", hidden: true },
      "Load earlier lines",
    );
    this.earlierButton.addEventListener("click", () => this.loadEarlier());
    this.state = h("p", { class: "log-state", "data-testid": "log-state", role: "status" });
    this.dropped = h("p", { class: "log-dropped", "data-testid": "log-dropped", hidden: true });
    this.element = h("div", { class: "log" }, this.dropped, this.earlierButton, this.pre, this.state);
    this.firstCovered = null; // the smallest line number shown (a line, or a gap's first)
    this.lastLine = 0; // the last line number covered: the cursor to follow from
    this.shown = 0;
    this.queue = [];
    this.flushTimer = null;
  }

  // The first piece: the response of GET /jobs/{id}/log?tail=... (or /info/job/...).
  show(piece) {
    const items = numbered(piece);
    const frag = document.createDocumentFragment();
    for (const item of items) frag.append(itemNode(item), "\n");
    this.pre.replaceChildren(frag);
    this.shown = items.length;
    this.lastLine = Math.max(0, piece.next_line - 1);
    this.firstCovered = items.length ? (items[0].gap ? items[0].gap.first : items[0].number) : piece.next_line;
    if (items.length === 0) this.setState(piece.complete ? "The log is empty." : "No line yet.");
    if (piece.dropped_lines > 0 && !piece.gap) {
      // The gap lies before the lines loaded: say so before anyone scrolls up to it.
      this.dropped.textContent =
        `${piece.dropped_lines} lines in the middle of this log were dropped (the job printed ` +
        "more than its log keeps); the lines before and after them are kept.";
      this.dropped.hidden = false;
    }
    this.updateEarlier();
    this.scrollToEnd();
  }

  setState(text, kind = "info") {
    this.state.textContent = text;
    this.state.className = `log-state log-state-${kind}`;
  }

  updateEarlier() {
    const more = this.firstCovered !== null && this.firstCovered > 1;
    this.earlierButton.hidden = !more;
    if (more) this.earlierButton.textContent = `Load earlier lines (before line ${this.firstCovered})`;
  }

  atBottom() {
    const pre = this.pre;
    return pre.scrollHeight - pre.scrollTop - pre.clientHeight <= BOTTOM_SLACK_PX;
  }

  scrollToEnd() {
    this.pre.scrollTop = this.pre.scrollHeight;
  }

  async loadEarlier() {
    const target = this.firstCovered;
    if (!target || target <= 1) return;
    this.earlierButton.disabled = true;
    try {
      // Only the lines before the first one shown (`limit`); the filter below still drops a
      // gap marker that reaches past them.
      const since = Math.max(0, target - 1 - EARLIER);
      const limit = target - 1 - since;
      const piece = await getJSON(`/jobs/${encodeURIComponent(this.jobId)}/log`, { since, limit, color: true });
      const items = numbered(piece).filter((it) => (it.gap ? it.gap.first : it.number) < target);
      if (items.length === 0) {
        this.firstCovered = 1;
      } else {
        const frag = document.createDocumentFragment();
        for (const item of items) frag.append(itemNode(item), "\n");
        const before = this.pre.scrollHeight;
        this.pre.insertBefore(frag, this.pre.firstChild);
        this.pre.scrollTop += this.pre.scrollHeight - before; // the lines read stay in view
        this.shown += items.length;
        this.firstCovered = items[0].gap ? items[0].gap.first : items[0].number;
      }
    } catch (err) {
      if (err && err.name === "AbortError") return;
      this.setState(`Could not load earlier lines: ${err.message}`, "error");
    } finally {
      this.earlierButton.disabled = false;
      this.updateEarlier();
    }
  }

  enqueue(item) {
    this.queue.push(item);
    if (this.flushTimer === null) this.flushTimer = setTimeout(() => this.flush(), 50);
  }

  // Lines are added in batches: one layout per batch, not per line, when a backlog streams in.
  flush() {
    if (this.flushTimer !== null) clearTimeout(this.flushTimer);
    this.flushTimer = null;
    if (this.queue.length === 0) return;
    const follow = this.atBottom();
    const frag = document.createDocumentFragment();
    for (const item of this.queue) frag.append(itemNode(item), "\n");
    if (this.firstCovered === null || this.shown === 0) {
      const first = this.queue[0];
      this.firstCovered = first.gap ? first.gap.first : first.number;
    }
    this.shown += this.queue.length;
    this.queue = [];
    this.pre.append(frag);
    if (this.shown > MAX_SHOWN && follow) this.trim();
    // Scroll along only while the reader is at the bottom: someone reading higher up stays put.
    if (follow) this.scrollToEnd();
  }

  trim() {
    while (this.shown > MAX_SHOWN && this.pre.firstChild) {
      this.pre.firstChild.remove(); // the item
      if (this.pre.firstChild && this.pre.firstChild.nodeType === Node.TEXT_NODE) {
        this.pre.firstChild.remove(); // its newline
      }
      this.shown -= 1;
    }
    const first = this.pre.firstElementChild;
    if (first) this.firstCovered = itemFirst(first);
    this.updateEarlier();
  }

  // Follow the job until its status event. `firstPath` is the stream to open first; a dropped
  // connection resumes on the job's own stream with Last-Event-ID (nothing twice, nothing lost).
  async follow(firstPath = null) {
    const resumePath = `/jobs/${encodeURIComponent(this.jobId)}/log/stream`;
    let path = firstPath || resumePath;
    let lastId = null;
    let failures = 0;
    this.setState("Following live…", "live");
    while (!this.signal || !this.signal.aborted) {
      try {
        const events = sse(
          path,
          { since: this.lastLine, color: true },
          { lastEventId: lastId, signal: this.signal },
        );
        for await (const ev of events) {
          if (ev.event !== "error") failures = 0; // a stream that only errs backs off further
          if (ev.event === "line") {
            const n = Number(ev.id);
            if (n > this.lastLine) {
              this.enqueue({ number: n, text: ev.data });
              this.lastLine = n;
            }
            lastId = ev.id;
          } else if (ev.event === "gap") {
            const last = Number(ev.id);
            if (last > this.lastLine) {
              this.enqueue({ gap: gapFromEvent(ev.data, last) });
              this.lastLine = last;
            }
            lastId = ev.id;
          } else if (ev.event === "status") {
            this.flush();
            const job = JSON.parse(ev.data);
            this.setState(`The job ended: ${job.status}.`, "done");
            this.onStatus(job);
            return;
          } else if (ev.event === "error") {
            // A refused token never gets here (api.js signs the tab out). `Gone`: the log is no
            // longer kept, so there is nothing to resume. Anything else (`Unavailable`: the
            // daemon could not re-check the token, a database hiccup or a failover) says to
            // reconnect, which the loop below does, with Last-Event-ID.
            this.flush();
            let body = {};
            try {
              body = JSON.parse(ev.data) || {};
            } catch {
              // not JSON: show it as it came
            }
            const message = body.message || ev.data;
            if (body.error === "Gone") {
              this.setState(`The log stream stopped: ${message}`, "error");
              return;
            }
            this.setState(`The log stream was interrupted: ${message}`, "warn");
            break;
          }
        }
      } catch (err) {
        if ((this.signal && this.signal.aborted) || (err && err.name === "AbortError")) return;
        this.flush();
        if (err instanceof ApiError && err.status === 404 && path !== resumePath) {
          path = resumePath; // it ended between the page's look and the stream: read its end
          continue;
        }
        if (err instanceof ApiError && err.status >= 400 && err.status < 500) {
          this.setState(`Cannot follow the log: ${err.message}`, "error");
          return;
        }
      }
      // The connection dropped (a restart, a proxy's timeout): come back where it stopped.
      this.flush();
      path = resumePath;
      failures += 1;
      const wait = Math.min(1000 * 2 ** Math.min(failures - 1, 4), 15000);
      this.setState(`Connection lost; reconnecting in ${Math.round(wait / 1000)} s…`, "warn");
      if (!(await sleep(wait, this.signal))) return;
      this.setState("Following live…", "live");
    }
  }
}
