// #/verbosity: the log levels clusterm has set on the cluster's components, who set them, and when
// they go back. Read-only: levels are changed with clusterctl or the API.

import { getJSON } from "./api.js";
import { fmtAgo, h, table } from "./dom.js";
import { empty, nodeLink, when } from "./parts.js";

function revertCell(row) {
  if (!row.reverts_at) return h("span", { class: "muted" }, "never (kept until reset)");
  const target = row.revert_to === null || row.revert_to === undefined ? "" : ` to ${row.revert_to}`;
  return [when(row.reverts_at), h("span", { class: "muted small" }, ` (${fmtAgo(row.reverts_at)}${target})`)];
}

function problemCell(row) {
  if (!row.revert_attempts && !row.last_error) return "";
  const n = row.revert_attempts;
  const tries = n ? `${n} revert attempt${n === 1 ? "" : "s"}` : "";
  return h("span", { class: "error-text" }, [tries, row.last_error].filter(Boolean).join(": "));
}

export async function render(main) {
  document.title = "Verbosity · clusterm console";
  const levels = await getJSON("/verbosity");
  const headers = [
    { label: "Component", col: "component" },
    { label: "Node", col: "node" },
    { label: "Level", col: "level" },
    { label: "Before", col: "previous_level" },
    { label: "Baseline", col: "baseline_level" },
    { label: "Set by", col: "set_by" },
    { label: "Set at", col: "set_at" },
    { label: "Reverts", col: "reverts_at" },
    { label: "Problem", col: "last_error" },
  ];
  const rows = levels.map((row) => ({
    cells: [
      row.component,
      nodeLink(row.node),
      h("strong", {}, String(row.level)),
      row.previous_level === null || row.previous_level === undefined ? "" : String(row.previous_level),
      String(row.baseline_level),
      row.set_by,
      when(row.set_at),
      revertCell(row),
      problemCell(row),
    ],
    attrs: { "data-testid": "level-row", "data-component": row.component, "data-node": row.node },
  }));
  main.append(
    h("h1", {}, "Verbosity"),
    h(
      "p",
      { class: "muted" },
      "The log levels clusterm set on the cluster's components. A level with a revert time goes " +
        "back by itself; change or reset levels with clusterctl verbosity.",
    ),
    levels.length === 0
      ? empty("clusterm has set no level: every component runs at its baseline.", { "data-testid": "no-levels" })
      : h("div", { class: "table-wrap" }, table(headers, rows, { testid: "levels" })),
  );
}
