"""`clusterctl nodes commission|decommission|update`, `discover`, `job ...`, `global ...`.

`--wait` and `job get active --follow` poll `GET /info/job/active?since=N` (a cursor, so no line is
printed twice or missed) and then exit with the job's result: 0 when it succeeded, 4 when not.
"""

from __future__ import annotations

import json
import re
import sys
import time
from typing import Annotated, Any, Literal

import typer

from clusterctl.api import Api, Refused, Unreachable
from clusterctl.common import JsonOpt, api
from clusterctl.nodes import nodes_app
from clusterctl.output import Column, error, print_json, print_table

JOB_FAILED = 4  # the job ran, and did not succeed
FINISHED = {"successful", "failed", "canceled", "timeout", "interrupted"}
POLL_S = 0.25
RECONNECT_TRIES = 10  # about a minute of backoff: a restart or a failover, not a dead daemon

job_app = typer.Typer(help="Provisioning jobs: the active one, the last one, the history.")
global_app = typer.Typer(help="Global Ansible extra vars of every job.", no_args_is_help=True)

_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b[@-Z\\-_]")

ExtraVarsOpt = Annotated[
    str | None, typer.Option("--extra-vars", "-e", help="Ansible extra vars as a JSON object")
]
GroupOpt = Annotated[str | None, typer.Option("--group", "-g", help="host group: master or worker")]
WaitOpt = Annotated[bool, typer.Option("--wait", help="follow the job; exit with its result")]
ColorOpt = Annotated[
    bool | None,
    typer.Option("--color/--no-color", help="ANSI colours [default: when stdout is a terminal]"),
]

JOB_COLUMNS: list[Column] = [
    ("ID", lambda j: j["id"]),
    ("KIND", lambda j: j["kind"]),
    ("STATUS", lambda j: j["status"]),
    ("NODES", lambda j: ",".join(j["nodes"])),
    ("ACTOR", lambda j: j["actor"]),
    ("CREATED", lambda j: j["created_at"][:19]),
    ("ERROR", lambda j: j["error"]),
]
HOST_COLUMNS: list[Column] = [
    ("HOST", lambda h: h["host"]),
    ("OK", lambda h: h["ok"]),
    ("CHANGED", lambda h: h["changed"]),
    ("FAILED", lambda h: h["failed"]),
    ("UNREACHABLE", lambda h: h["unreachable"]),
    ("SKIPPED", lambda h: h["skipped"]),
    ("RESCUED", lambda h: h["rescued"]),
]


def _extra_vars(text: str | None) -> dict[str, Any]:
    if text is None:
        return {}
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise typer.BadParameter(f"not JSON: {exc}", param_hint="--extra-vars") from None
    if not isinstance(value, dict):
        raise typer.BadParameter("must be a JSON object", param_hint="--extra-vars")
    return value


def _start(ctx: typer.Context, path: str, body: dict[str, Any], wait: bool, as_json: bool) -> int:
    client = api(ctx)
    job = client.send("POST", path, body)
    if as_json and not wait:
        print_json(job)
        return 0
    typer.echo(f"job {job['id']} accepted: {job['desc']}", err=True)
    if not wait:
        typer.echo("follow it with: clusterctl job get active --follow", err=True)
        return 0
    return follow(client, job_id=job["id"], since=0, color=_color(None))


def _color(flag: bool | None) -> bool:
    return sys.stdout.isatty() if flag is None else flag


@nodes_app.command("commission")
def nodes_commission(
    ctx: typer.Context,
    names: Annotated[list[str], typer.Argument(help="node names")],
    group: GroupOpt = None,
    extra_vars: ExtraVarsOpt = None,
    wait: WaitOpt = False,
    json_: JsonOpt = False,
) -> int:
    """Commission nodes into the cluster (a job; see `clusterctl job get active`)."""
    body: dict[str, Any] = {"nodes": names, "extra_vars": _extra_vars(extra_vars)}
    if group is not None:
        body["host_group"] = group
    return _start(ctx, "/commission/nodes", body, wait, json_)


@nodes_app.command("decommission")
def nodes_decommission(
    ctx: typer.Context,
    names: Annotated[list[str], typer.Argument(help="node names")],
    extra_vars: ExtraVarsOpt = None,
    wait: WaitOpt = False,
    json_: JsonOpt = False,
) -> int:
    """Drain and remove nodes from the cluster."""
    body = {"nodes": names, "extra_vars": _extra_vars(extra_vars)}
    return _start(ctx, "/decommission/nodes", body, wait, json_)


@nodes_app.command("update")
def nodes_update(
    ctx: typer.Context,
    names: Annotated[list[str], typer.Argument(help="node names")],
    group: GroupOpt = None,
    extra_vars: ExtraVarsOpt = None,
    wait: WaitOpt = False,
    json_: JsonOpt = False,
) -> int:
    """Re-apply the configuration to commissioned nodes."""
    body: dict[str, Any] = {"nodes": names, "extra_vars": _extra_vars(extra_vars)}
    if group is not None:
        body["host_group"] = group
    return _start(ctx, "/update/nodes", body, wait, json_)


def discover(
    ctx: typer.Context,
    addrs: Annotated[list[str], typer.Argument(help="ADDRESS or ADDRESS:PORT")],
    user: Annotated[str, typer.Option(help="SSH user")] = "root",
    extra_vars: ExtraVarsOpt = None,
    wait: WaitOpt = False,
    json_: JsonOpt = False,
) -> int:
    """Check that hosts are reachable and gather their facts (a job)."""
    body = {"addrs": addrs, "ssh_user": user, "extra_vars": _extra_vars(extra_vars)}
    return _start(ctx, "/discover/nodes", body, wait, json_)


@job_app.command("get")
def job_get(
    ctx: typer.Context,
    which: Annotated[Literal["active", "last"], typer.Argument(help="active or last")],
    json_: JsonOpt = False,
    since: Annotated[int, typer.Option(help="only the log lines after this number")] = 0,
    tail: Annotated[int | None, typer.Option(help="only the last N log lines")] = None,
    follow_: Annotated[
        bool, typer.Option("--follow", "-f", help="print new lines as they come (active job)")
    ] = False,
    color: ColorOpt = None,
) -> int:
    """Show the active or the last job with its log."""
    client = api(ctx)
    if follow_:
        if which != "active":
            raise typer.BadParameter("--follow follows the active job", param_hint="--follow")
        return follow(client, job_id=None, since=since, color=_color(color))
    job = client.get(f"/info/job/{which}", since=since, tail=tail, color=str(_color(color)).lower())
    if json_:
        print_json(job)
        return 0
    _summary(job)
    for line in job["logs"]:
        typer.echo(line)
    return 0


def _summary(job: dict[str, Any]) -> None:
    rc = f" rc={job['rc']}" if job["rc"] is not None else ""
    typer.echo(f"job {job['id']}: {job['desc']} (by {job['actor']}): {job['status']}{rc}")
    if job["error"]:
        typer.echo(f"error: {job['error']}")
    if job["hosts"]:
        print_table([{"host": h, **c} for h, c in sorted(job["hosts"].items())], HOST_COLUMNS)
    if job.get("dropped_lines"):
        typer.echo(f"({job['dropped_lines']} lines dropped from the middle of this log)")
    typer.echo("---")


def follow(client: Api, *, job_id: int | None, since: int, color: bool) -> int:
    """Print the job's new lines until it has ended; return 0 if it succeeded, else 4."""
    cursor = since
    params = {"color": str(color).lower()}
    failures = 0
    while True:
        try:
            page = _poll(client, job_id=job_id, cursor=cursor, params=params)
        except Unreachable:
            # Every URL failed at once: a daemon restarting, or replicas handing over the lead.
            # The cursor is the line number, the same on every replica: nothing is lost.
            failures += 1
            if failures > RECONNECT_TRIES:
                raise
            error(f"job: cannot reach clusterm; trying again after line {cursor}")
            time.sleep(min(2.0**failures / 4, 10.0))
            continue
        failures = 0
        job_id = page["id"]
        for line in page["logs"]:
            typer.echo(line if color else _ANSI.sub("", line))
        cursor = page.get("next_line", cursor + 1) - 1
        if page["status"] in FINISHED and page["complete"]:
            rc = f" (rc {page['rc']})" if page["rc"] is not None else ""
            error_ = f": {page['error']}" if page["error"] else ""
            typer.echo(f"job {job_id} {page['status']}{rc}{error_}", err=True)
            return 0 if page["status"] == "successful" else JOB_FAILED
        time.sleep(POLL_S)


def _poll(
    client: Api, *, job_id: int | None, cursor: int, params: dict[str, str]
) -> dict[str, Any]:
    """The job's lines after `cursor`, wherever the job is now: active, last, or older."""
    try:
        page: dict[str, Any] | None = client.get("/info/job/active", since=cursor, **params)
    except Refused as exc:
        if exc.status != 404 or job_id is None:
            raise
        page = None
    if page is not None and (job_id is None or page["id"] == job_id):
        return page
    # Our job has ended between two polls: its last lines are in /info/job/last.
    last: dict[str, Any] = client.get("/info/job/last", since=cursor, **params)
    if last["id"] == job_id:
        return last
    older: dict[str, Any] = client.get(f"/jobs/{job_id}")
    return older | {"logs": [], "complete": True}


@job_app.command("cancel")
def job_cancel(ctx: typer.Context, json_: JsonOpt = False) -> None:
    """Cancel the active job: Ansible is stopped, its nodes are marked failed."""
    job = api(ctx).send("POST", "/info/job/active/cancel")
    if json_:
        print_json(job)
    else:
        typer.echo(f"job {job['id']} {job['status']}", err=True)


@job_app.command("list")
def job_list(
    ctx: typer.Context,
    limit: Annotated[int, typer.Option(help="at most this many")] = 20,
    before_id: Annotated[int | None, typer.Option(help="only jobs older than this id")] = None,
    json_: JsonOpt = False,
) -> None:
    """List jobs, newest first."""
    jobs = api(ctx).get("/jobs", limit=limit, before_id=before_id)
    if json_:
        print_json(jobs)
    else:
        print_table(jobs, JOB_COLUMNS)


@global_app.command("get")
def global_get(ctx: typer.Context, json_: JsonOpt = False) -> None:
    """Show the global extra vars."""
    data = api(ctx).get("/globals")
    print_json(data if json_ else data["extra_vars"])


@global_app.command("set")
def global_set(
    ctx: typer.Context,
    value: Annotated[str | None, typer.Argument(help="a JSON object")] = None,
    extra_vars: ExtraVarsOpt = None,
) -> None:
    """Replace the global extra vars (a JSON object, as the argument or -e)."""
    if (value is None) == (extra_vars is None):
        raise typer.BadParameter("give the vars once: as the argument or with -e")
    data = api(ctx).send("PUT", "/globals", {"extra_vars": _extra_vars(value or extra_vars)})
    print_json(data["extra_vars"])
