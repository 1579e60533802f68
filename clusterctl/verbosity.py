"""`clusterctl verbosity set|get|reset|components|rbac`: Kubernetes components' log verbosity
on many nodes, and the RBAC it needs.

Exit codes: 0 every target succeeded, 1 at least one failed (the table says which), as for any
refusal; 2 usage errors; 3 cannot reach clusterm.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from clusterctl import rbac
from clusterctl.api import Refused
from clusterctl.common import JsonOpt, api
from clusterctl.output import Column, error, print_json, print_table

verbosity_app = typer.Typer(
    help="Log verbosity of Kubernetes components (kubelet, kube-apiserver, ...).",
    no_args_is_help=True,
)

NodeOpt = Annotated[list[str] | None, typer.Option("--node", "-n", help="a node name; repeatable")]
AllOpt = Annotated[bool, typer.Option("--all", help="every node the component runs on")]

RESULT_COLUMNS: list[Column] = [
    ("NODE", lambda r: r["node"]),
    ("COMPONENT", lambda r: r["component"]),
    ("RESULT", lambda r: "ok" if r["ok"] else "FAILED"),
    ("STATUS", lambda r: r["status"]),
    ("FROM", lambda r: r["previous_level"]),
    ("TO", lambda r: r["level"]),
    ("MESSAGE", lambda r: r["message"]),
]
LEVEL_COLUMNS: list[Column] = [
    ("NODE", lambda r: r["node"]),
    ("COMPONENT", lambda r: r["component"]),
    ("LEVEL", lambda r: r["level"]),
    ("BASELINE", lambda r: r["baseline_level"]),
    ("SET BY", lambda r: r["set_by"]),
    ("SET AT", lambda r: r["set_at"][:19]),
    ("REVERTS TO", lambda r: r["revert_to"] if r["reverts_at"] else None),
    ("REVERTS AT", lambda r: (r["reverts_at"] or "")[:19]),
    ("LAST ERROR", lambda r: r["last_error"]),
]


def _report(ctx: typer.Context, method: str, path: str, as_json: bool, **kwargs: Any) -> int:
    """Send, print one row per target, and exit 1 if any target failed."""
    try:
        report = api(ctx).request(method, path, **kwargs).json()
    except Refused as exc:
        if not (isinstance(exc.body, dict) and "results" in exc.body):
            raise  # refused as a whole (bad input, unknown node): no per-target results
        report = exc.body
    if as_json:
        print_json(report)
    else:
        print_table(report["results"], RESULT_COLUMNS)
        if report.get("reverts_at") and report["succeeded"]:
            typer.echo(f"reverts at {report['reverts_at'][:19]} UTC", err=True)
    if report["failed"]:
        error(f"{report['failed']} of {len(report['results'])} targets failed")
        return 1
    return 0


@verbosity_app.command("set")
def verbosity_set(
    ctx: typer.Context,
    component: str,
    level: Annotated[int, typer.Argument(min=0, max=2147483647)],
    node: NodeOpt = None,
    all_: AllOpt = False,
    group: Annotated[str | None, typer.Option("--group", "-g", help="master or worker")] = None,
    ttl: Annotated[
        str | None,
        typer.Option(help="revert after this long: 90s, 15m, 1h; 0 for never [default: server's]"),
    ] = None,
    json_: JsonOpt = False,
) -> int:
    """Set COMPONENT's verbosity to LEVEL on nodes; it reverts by itself after the ttl."""
    chosen = sum([bool(node), all_, group is not None])
    if chosen != 1:
        raise typer.BadParameter("give exactly one of --node, --all, --group", param_hint="nodes")
    nodes: Any = node if node else "all" if all_ else {"group": group}
    body: dict[str, Any] = {"component": component, "nodes": nodes, "level": level}
    if ttl is not None:
        body["ttl"] = ttl
    return _report(ctx, "POST", "/verbosity", json_, json=body)


@verbosity_app.command("get")
def verbosity_get(
    ctx: typer.Context,
    component: Annotated[str | None, typer.Option(help="only this component")] = None,
    node: Annotated[str | None, typer.Option("--node", "-n", help="only this node")] = None,
    json_: JsonOpt = False,
) -> None:
    """Every level clusterm has set: who set it, when, and when it reverts."""
    rows = api(ctx).get("/verbosity", component=component, node=node)
    if json_:
        print_json(rows)
    else:
        print_table(rows, LEVEL_COLUMNS)


@verbosity_app.command("reset")
def verbosity_reset(
    ctx: typer.Context,
    component: str,
    node: NodeOpt = None,
    all_: AllOpt = False,
    json_: JsonOpt = False,
) -> int:
    """Put COMPONENT's level back now (to where a pending revert would, else the baseline)."""
    if bool(node) == all_:
        raise typer.BadParameter("give either --node (repeatable) or --all", param_hint="nodes")
    params: dict[str, Any] = {"component": component}
    if node:
        params["node"] = node
    return _report(ctx, "DELETE", "/verbosity", json_, params=params)


COMPONENT_COLUMNS: list[Column] = [
    ("COMPONENT", lambda c: c["name"]),
    ("URL", lambda c: c["url"]),
    ("GROUPS", lambda c: ",".join(c["host_groups"])),
    ("BASELINE", lambda c: c["baseline_level"]),
    ("CREDENTIALS OF", lambda c: c["credentials_from"]),
    ("TOKEN", lambda c: "yes" if c["token"] else "no"),
    ("CLIENT CERT", lambda c: "yes" if c["client_cert"] else "no"),
    ("CA", lambda c: "yes" if c["ca"] else "no"),
]


@verbosity_app.command("components")
def verbosity_components(ctx: typer.Context, json_: JsonOpt = False) -> None:
    """The components clusterm reaches, where, and whether credentials are configured."""
    found = api(ctx).get("/verbosity/components")
    if json_:
        print_json(found)
    else:
        print_table(found, COMPONENT_COLUMNS)


@verbosity_app.command("rbac")
def verbosity_rbac(
    ctx: typer.Context,
    user: Annotated[
        str, typer.Option(help="the Kubernetes user clusterm authenticates as (token or cert CN)")
    ] = "clusterm",
) -> None:
    """Print the ClusterRole and ClusterRoleBinding (YAML) that USER needs for the configured
    components: pipe it to `kubectl apply -f -`."""
    # Printable only: the name also goes into a YAML comment, where a newline would end it.
    if not user.strip() or not user.isprintable():
        raise typer.BadParameter(
            "give the name clusterm authenticates as (printable characters)", param_hint="--user"
        )
    typer.echo(rbac.manifests(api(ctx).get("/verbosity/components"), user), nl=False)
