// #/drift: the last drift check (nodes clusterm commissioned that the cluster no longer lists),
// what it found and the re-join jobs it started. Read-only: a check is asked for with clusterctl.

import { ApiError, getJSON } from "./api.js";
import { fmtAgo, h } from "./dom.js";
import { details, empty, jobLink, nodeLink, when } from "./parts.js";

const OUTCOME_BADGE = { checked: "ok", skipped: "warn", failed: "bad" };

export async function render(main) {
  document.title = "Drift · clusterm console";
  let check = null;
  try {
    check = await getJSON("/info/drift");
  } catch (err) {
    if (!(err instanceof ApiError) || err.status !== 404) throw err;
  }
  main.append(h("h1", {}, "Drift"));
  if (check === null) {
    main.append(
      h(
        "p",
        {},
        h("span", { class: "badge badge-idle", "data-testid": "drift-outcome", "data-outcome": "none" }, "no check yet"),
      ),
      empty(
        "No drift check has run yet. One runs on its own every interval; ask for one now with " +
          "clusterctl drift check.",
      ),
      h("ul", { class: "missing-list", "data-testid": "drift-missing" }),
    );
    return;
  }
  const missing = check.missing || [];
  const jobs = check.remediation_jobs || [];
  const interval = Number(check.interval_s);
  main.append(
    h(
      "p",
      {},
      h(
        "span",
        {
          class: `badge badge-${OUTCOME_BADGE[check.outcome] || "idle"}`,
          "data-testid": "drift-outcome",
          "data-outcome": check.outcome,
        },
        check.outcome,
      ),
      " ",
      h("span", { "data-testid": "drift-message" }, check.message),
    ),
    details([
      ["Checked", [when(check.at), h("span", { class: "muted small" }, ` (${fmtAgo(check.at)})`)]],
      ["Control plane", check.master || ""],
      [
        "Checks every",
        // 0: the watch is off and checks run only when asked for (clusterctl drift check).
        !Number.isFinite(interval) ? "" : interval > 0 ? `${interval} s` : "off: only when asked for",
      ],
      [
        "Re-joins",
        check.remediate
          ? "started by the check"
          : "off (the setting drift_remediate): missing nodes are only reported",
      ],
      ["Re-join jobs", jobs.length ? jobs.map((id, i) => [i ? ", " : "", jobLink(id)]) : ""],
    ], { "data-testid": "drift-details" }),
    h("h2", {}, `Missing nodes (${missing.length})`),
    h(
      "ul",
      { class: "missing-list", "data-testid": "drift-missing" },
      missing.map((name) => h("li", { "data-node": name }, nodeLink(name))),
    ),
  );
  if (missing.length === 0) {
    main.append(empty("No node is missing: every commissioned node is in the cluster."));
  }
}
