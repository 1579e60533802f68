"""`clusterctl drift ...`: is every commissioned node still in the cluster?"""

from __future__ import annotations

from typing import Any

import typer

from clusterctl.common import JsonOpt, api
from clusterctl.output import print_json

drift_app = typer.Typer(help="Nodes gone from the cluster (the drift watch).", no_args_is_help=True)


def _show(check: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print_json(check)
        return
    typer.echo(f"{check['at']}  {check['outcome']}: {check['message']}")
    if check["master"]:
        typer.echo(f"asked master: {check['master']}")
    if check["remediation_jobs"]:
        typer.echo("re-join jobs queued: " + ", ".join(map(str, check["remediation_jobs"])))


@drift_app.command("get")
def drift_get(ctx: typer.Context, json_: JsonOpt = False) -> None:
    """Show the last drift check."""
    _show(api(ctx).get("/info/drift"), json_)


@drift_app.command("check")
def drift_check(ctx: typer.Context, json_: JsonOpt = False) -> None:
    """Check now; exit 1 when a commissioned node is missing from the cluster."""
    check = api(ctx).send("POST", "/drift/check")
    _show(check, json_)
    if check["missing"] or check["outcome"] == "failed":
        raise typer.Exit(1)
