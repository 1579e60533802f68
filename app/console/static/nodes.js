// Nodes: the inventory (state, group, address, labels, missing-from-cluster marks) and one node's
// details with its history from the timeline, which outlives the node.

import { ApiError, getJSON } from "./api.js";
import { fmtAgo, fmtTime, h, notice, replace, routeHash, stateBadge, table } from "./dom.js";
import { eventsTable, appendEvents } from "./timeline.js";

const HISTORY_PAGE = 50;

export async function render(main, route) {
  if (route.path.length > 1) return renderNode(main, route.path[1]);
  return renderList(main, route);
}

// The states in which the drift check expects a node in the cluster's Node list: only there is
// its absence news, as the Drift page and clusterm_nodes_missing count it. A registered, failed or
// decommissioned node is just "not in cluster"; one being updated may leave the list for a while.
const IN_CLUSTER = new Set(["commissioned", "maintenance"]);

function isMissing(node) {
  return node.in_cluster === false && IN_CLUSTER.has(node.state);
}

function missingMark(node) {
  if (isMissing(node)) {
    const since = node.missing_since ? ` since ${fmtTime(node.missing_since)}` : "";
    return h(
      "span",
      {
        class: "missing",
        "data-testid": "missing-mark",
        title: "The cluster's Node list did not hold this node at the last drift check",
      },
      `missing from cluster${since}`,
    );
  }
  if (node.in_cluster === null || node.in_cluster === undefined) {
    return h("span", { class: "muted", title: "No drift check has run yet" }, "not checked");
  }
  return h("span", { class: "muted" }, node.in_cluster ? "in cluster" : "not in cluster");
}

function labels(map) {
  const entries = Object.entries(map || {});
  if (entries.length === 0) return "";
  return h(
    "span",
    { class: "labels" },
    entries.map(([key, value]) => h("span", { class: "label" }, `${key}=${value}`)),
  );
}

function address(node) {
  return `${node.ssh_user}@${node.address}${node.ssh_port === 22 ? "" : `:${node.ssh_port}`}`;
}

function nodeLink(name) {
  return h("a", { href: routeHash(["nodes", name]), "data-testid": "node-link" }, name);
}

async function renderList(main, route) {
  const state = route.params.get("state") || "";
  main.appendChild(h("h1", {}, "Nodes"));
  const waiting = notice("Loading the inventory from GET /info/nodes…");
  main.appendChild(waiting);
  const nodes = await getJSON("/info/nodes", { state });
  waiting.remove();

  const counts = {};
  for (const node of nodes) counts[node.state] = (counts[node.state] || 0) + 1;
  const missing = nodes.filter(isMissing).length;
  const search = h("input", {
    type: "search",
    placeholder: "Filter by name, group, address, label",
    "aria-label": "Filter nodes",
    "data-testid": "nodes-filter",
    class: "no-print",
  });
  const summary = h(
    "p",
    { class: "muted", "data-testid": "nodes-summary" },
    `${nodes.length} node${nodes.length === 1 ? "" : "s"}`,
    Object.keys(counts).length ? ": " : "",
    Object.entries(counts)
      .sort()
      .map(([s, n], i) => [i ? ", " : "", `${n} ${s}`]),
    missing ? [" — ", h("span", { class: "missing" }, `${missing} missing from the cluster`)] : "",
    state ? ` (only state ${state})` : "",
    ` · loaded ${fmtTime(new Date().toISOString())}`,
  );
  main.appendChild(h("div", { class: "toolbar" }, summary, h("span", { class: "spacer" }), search));

  const rows = nodes.map((node) => ({
    attrs: { "data-testid": "node-row", "data-node": node.name, "data-state": node.state },
    cells: [
      nodeLink(node.name),
      stateBadge(node.state),
      node.host_group,
      address(node),
      labels(node.labels),
      missingMark(node),
      node.last_seen_at
        ? h("span", { title: fmtTime(node.last_seen_at) }, fmtAgo(node.last_seen_at))
        : "",
    ],
  }));
  const headers = [
    { label: "Name", col: "name" },
    { label: "State", col: "state" },
    { label: "Group", col: "group" },
    { label: "Address", col: "address" },
    { label: "Labels", col: "labels" },
    { label: "Cluster", col: "missing" },
    { label: "Last seen", col: "last_seen" },
  ];
  const tbl = table(headers, rows, {
    testid: "nodes-table",
    empty: state ? `No node is ${state}.` : "No nodes yet: add some with clusterctl nodes add.",
  });
  main.appendChild(h("div", { class: "table-wrap" }, tbl));

  search.addEventListener("input", () => {
    const needle = search.value.trim().toLowerCase();
    for (const tr of tbl.querySelectorAll("tr[data-testid=node-row]")) {
      tr.hidden = needle !== "" && !tr.textContent.toLowerCase().includes(needle);
    }
  });
}

function details(node) {
  const rows = [
    ["Name", node.name],
    ["State", stateBadge(node.state)],
    ["Group", node.host_group],
    ["Address", h("span", { class: "mono" }, address(node))],
    ["Labels", labels(node.labels) || h("span", { class: "muted" }, "none")],
    ["Cluster", missingMark(node)],
    ["Last seen", node.last_seen_at ? `${fmtTime(node.last_seen_at)} (${fmtAgo(node.last_seen_at)})` : "never"],
    ["Added", fmtTime(node.created_at)],
    ["Updated", fmtTime(node.updated_at)],
  ];
  if (node.vars && Object.keys(node.vars).length) {
    rows.push(["Vars", h("pre", { class: "json" }, JSON.stringify(node.vars, null, 2))]);
  }
  return h(
    "dl",
    { class: "details", "data-testid": "node-details" },
    rows.map(([term, value]) => [h("dt", {}, term), h("dd", {}, value)]),
  );
}

async function renderNode(main, name) {
  main.appendChild(
    h(
      "div",
      { class: "toolbar" },
      h("h1", {}, "Node ", name),
      h("span", { class: "spacer" }),
      h("a", { href: "#/nodes", class: "no-print" }, "All nodes"),
      h("a", { href: routeHash(["timeline"], { node: name }), class: "no-print" }, "In the timeline"),
    ),
  );
  const waiting = notice(`Loading ${name} and its history…`);
  main.appendChild(waiting);
  const [node, history] = await Promise.all([
    getJSON(`/info/node/${encodeURIComponent(name)}`).catch((err) => {
      // A deleted node's history is kept: show it even when the node itself is gone.
      if (err instanceof ApiError && err.status === 404) return null;
      throw err;
    }),
    getJSON(`/info/node/${encodeURIComponent(name)}/history`, { limit: HISTORY_PAGE }),
  ]);
  waiting.remove();
  main.appendChild(
    node
      ? details(node)
      : notice(`${name} is not in the inventory (deleted, or never added); its history is kept below.`, "warn"),
  );

  main.appendChild(h("h2", {}, "History"));
  const { element, tbody } = eventsTable({ showNode: false, testid: "history-table" });
  main.appendChild(element);
  appendEvents(tbody, history.items, { showNode: false });
  if (history.items.length === 0) {
    tbody.appendChild(h("tr", { class: "empty" }, h("td", { colspan: 8 }, "No events recorded for this node.")));
  }
  const more = h("button", { type: "button", class: "more", "data-testid": "history-more" }, "Load older events");
  const status = h("span", { class: "muted small", role: "status" });
  let before = history.next_before_id;
  more.hidden = before === null || before === undefined;
  more.addEventListener("click", async () => {
    more.disabled = true;
    replace(status, "Loading older events…");
    try {
      const page = await getJSON(`/info/node/${encodeURIComponent(name)}/history`, {
        limit: HISTORY_PAGE,
        before_id: before,
      });
      appendEvents(tbody, page.items, { showNode: false });
      before = page.next_before_id;
      more.hidden = before === null || before === undefined;
      replace(status);
    } catch (err) {
      replace(status, h("span", { class: "notice notice-error", role: "alert" }, err.message));
    } finally {
      more.disabled = false;
    }
  });
  main.appendChild(h("div", { class: "more-bar" }, more, " ", status));
}
