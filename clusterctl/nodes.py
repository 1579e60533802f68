"""`clusterctl nodes ...` and `clusterctl node ...`: the inventory."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import typer

from clusterctl.common import JsonOpt, api, parse_pairs
from clusterctl.output import Column, print_json, print_table

nodes_app = typer.Typer(help="All nodes.", no_args_is_help=True)
node_app = typer.Typer(help="One node.", no_args_is_help=True)

NODE_COLUMNS: list[Column] = [
    ("NAME", lambda n: n["name"]),
    ("ADDRESS", lambda n: f"{n['address']}:{n['ssh_port']}"),
    ("USER", lambda n: n["ssh_user"]),
    ("GROUP", lambda n: n["host_group"]),
    ("STATE", lambda n: n["state"]),
    ("IN CLUSTER", lambda n: _in_cluster(n)),
    ("LAST SEEN", lambda n: (n.get("last_seen_at") or "")[:19].replace("T", " ")),
    ("LABELS", lambda n: n["labels"]),
]


# The daemon's rule (EXPECTED_IN_CLUSTER in app/nodes/service.py): absence from the cluster is
# news only for a node that should be there, as the daemon's own table and console say it.
_EXPECTED_IN_CLUSTER = frozenset({"commissioned", "maintenance"})


def _in_cluster(node: dict[str, Any]) -> str:
    # From the drift watch; "-" until a master has been asked.
    flag = node.get("in_cluster")
    if flag is None:
        return "-"
    if flag:
        return "yes"
    return "MISSING" if node.get("state") in _EXPECTED_IN_CLUSTER else "no"


def _show(nodes: list[dict[str, Any]], as_json: bool) -> None:
    if as_json:
        print_json(nodes)
    else:
        print_table(nodes, NODE_COLUMNS)


@nodes_app.command("get")
def nodes_get(
    ctx: typer.Context,
    json_: JsonOpt = False,
    state: Annotated[str | None, typer.Option(help="only nodes in this state")] = None,
    group: Annotated[str | None, typer.Option("--group", "-g", help="master or worker")] = None,
) -> None:
    """List the nodes."""
    _show(api(ctx).get("/info/nodes", state=state, group=group), json_)


@node_app.command("get")
def node_get(ctx: typer.Context, name: str, json_: JsonOpt = False) -> None:
    """Show one node."""
    node = api(ctx).get(f"/info/node/{name}")
    if json_:
        print_json(node)
        return
    _show([node], False)
    if node["vars"]:
        typer.echo("vars: " + ", ".join(f"{k}={v}" for k, v in sorted(node["vars"].items())))


@node_app.command("add")
def node_add(
    ctx: typer.Context,
    name: str,
    addr: Annotated[str, typer.Option("--addr", help="IP address or DNS name")],
    group: Annotated[str, typer.Option("--group", "-g", help="master or worker")] = "worker",
    ssh_user: Annotated[str, typer.Option(help="user Ansible logs in as")] = "root",
    ssh_port: Annotated[int, typer.Option(help="SSH port")] = 22,
    label: Annotated[list[str] | None, typer.Option(help="k=v, repeatable")] = None,
    var: Annotated[
        list[str] | None, typer.Option(help="Ansible variable k=v (JSON values parsed), repeatable")
    ] = None,
    json_: JsonOpt = False,
) -> None:
    """Register a node."""
    body = {
        "name": name,
        "address": addr,
        "host_group": group,
        "ssh_user": ssh_user,
        "ssh_port": ssh_port,
        "labels": parse_pairs(label or [], "--label"),
        "vars": parse_pairs(var or [], "--var", json_values=True),
    }
    node = api(ctx).send("POST", "/nodes", body)
    _show([node], json_)


@node_app.command("import")
def node_import(
    ctx: typer.Context,
    file: Annotated[
        Path,
        typer.Argument(
            exists=True, dir_okay=False, help="INI, YAML or TOML inventory (read, never run)"
        ),
    ],
    dry_run: Annotated[bool, typer.Option(help="show what would be registered")] = False,
    literal: Annotated[
        bool,
        typer.Option(
            help="accept vars holding '{{' or '{%': they are stored as literal text, never "
            "templated"
        ),
    ] = False,
    json_: JsonOpt = False,
) -> None:
    """Register every host of an Ansible inventory file (all or nothing).

    The file is parsed as data, even when it is executable: an inventory script is not run.
    """
    from clusterctl.inventory import InventoryError, read_inventory

    try:
        nodes = read_inventory(file, literal=literal)
    except InventoryError as exc:
        raise typer.BadParameter(str(exc), param_hint="FILE") from None
    if not dry_run:
        nodes = api(ctx).send("POST", "/nodes", nodes)
    else:
        # The daemon's defaults, shown for the fields the inventory leaves out.
        defaults = {"ssh_port": 22, "ssh_user": "root", "labels": {}}
        nodes = [{**defaults, **n, "state": "(dry run)"} for n in nodes]
    _show(nodes, json_)


@node_app.command("rm")
def node_rm(ctx: typer.Context, name: str) -> None:
    """Delete a node from the inventory (refused while it is in the cluster or in a job)."""
    api(ctx).send("DELETE", f"/nodes/{name}")
    typer.echo(f"deleted node {name}", err=True)


@node_app.command("maintenance")
def node_maintenance(
    ctx: typer.Context,
    name: str,
    mode: Literal["on", "off"],
    drain: Annotated[
        bool, typer.Option("--drain", help="with on: also drain the node (evict its pods)")
    ] = False,
    wait: Annotated[
        bool, typer.Option("--wait", help="follow the job; exit with its result")
    ] = False,
    json_: JsonOpt = False,
) -> int:
    """Cordon (on; --drain: and drain) a commissioned node in the cluster and put it in
    maintenance, or uncordon it (off): a job, as `nodes update` starts one."""
    if drain and mode == "off":
        raise typer.BadParameter("goes with on (cordon and drain), not off", param_hint="--drain")
    from clusterctl.jobs import start_job  # here: clusterctl.jobs imports this module

    body = {"enabled": mode == "on", "drain": drain}
    return start_job(ctx, f"/nodes/{name}/maintenance", body, wait, json_, method="PUT")
