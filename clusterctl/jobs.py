"""`clusterctl nodes commission|decommission|update`, `discover`, `job ...`, `global ...`.

`--wait` and `job get JOB --follow` read the job's log stream (`GET /jobs/{id}/log/stream`, whose
event ids are line numbers, so a broken stream resumes on any replica with no line printed twice
or missed) and then exit with the job's result: 0 when it succeeded, 4 when not.
"""

from __future__ import annotations

import json
import re
import sys
import time
from typing import Annotated, Any

import typer

from clusterctl.api import Api, Refused, Unreachable
from clusterctl.common import JsonOpt, api
from clusterctl.job_hosts import job_hosts
from clusterctl.nodes import nodes_app
from clusterctl.output import Column, error, print_json, print_table

JOB_FAILED = 4  # the job ran, and did not succeed
RECONNECT_TRIES = 10  # about a minute of backoff: a restart or a failover, not a dead daemon

job_app = typer.Typer(help="Provisioning jobs: the active one, the last one, the history.")
global_app = typer.Typer(help="Global Ansible extra vars of every job.", no_args_is_help=True)
job_app.command("hosts")(job_hosts)

_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b[@-Z\\-_]")

ExtraVarsOpt = Annotated[
    str | None, typer.Option("--extra-vars", "-e", help="Ansible extra vars as a JSON object")
]
GroupOpt = Annotated[str | None, typer.Option("--group", "-g", help="host group: master or worker")]
WaitOpt = Annotated[bool, typer.Option("--wait", help="follow the job; exit with its result")]
CheckOpt = Annotated[
    bool,
    typer.Option(
        "--check",
        help="check mode: run the playbook with --check --diff; nothing changes on the nodes and "
        "no node changes state, the job says what each host would change",
    ),
]
TagsOpt = Annotated[
    str | None,
    typer.Option(
        "--tags", help="run only the steps with these tags, comma-separated (e.g. packages)"
    ),
]
SkipTagsOpt = Annotated[
    str | None,
    typer.Option("--skip-tags", help="skip the steps with these tags, comma-separated"),
]
ColorOpt = Annotated[
    bool | None,
    typer.Option("--color/--no-color", help="ANSI colours [default: when stdout is a terminal]"),
]

JOB_COLUMNS: list[Column] = [
    ("ID", lambda j: j["id"]),
    ("KIND", lambda j: _kind(j)),
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


def _kind(job: dict[str, Any]) -> str:
    """`update (check, tags packages)`: the kind, and how the job ran when not plainly."""
    how = []
    if job.get("check"):
        how.append("check")
    if job.get("tags"):
        how.append("tags " + ",".join(job["tags"]))
    if job.get("skip_tags"):
        how.append("skip " + ",".join(job["skip_tags"]))
    return f"{job['kind']} ({', '.join(how)})" if how else str(job["kind"])


def _tag_list(text: str | None) -> list[str]:
    # The daemon checks each name against the playbook's tags; here only the list is split.
    return [] if text is None else [t.strip() for t in text.split(",") if t.strip()]


def _run_options(
    body: dict[str, Any], check: bool, tags: str | None, skip_tags: str | None
) -> dict[str, Any]:
    if check:
        body["check"] = True
    if _tag_list(tags):
        body["tags"] = _tag_list(tags)
    if _tag_list(skip_tags):
        body["skip_tags"] = _tag_list(skip_tags)
    return body


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


def start_job(
    ctx: typer.Context,
    path: str,
    body: dict[str, Any],
    wait: bool,
    as_json: bool,
    method: str = "POST",
) -> int:
    """Send the request that starts a job, say so (or print it, --json), follow it (--wait)."""
    client = api(ctx)
    job = client.send(method, path, body)
    if as_json and not wait:
        print_json(job)
        return 0
    typer.echo(f"job {job['id']} accepted: {job['desc']}", err=True)
    if job.get("check"):
        typer.echo(
            "check mode: nothing will be changed and no node changes state; see what each host "
            f"would change with: clusterctl job hosts {job['id']}",
            err=True,
        )
    if job.get("tags") or job.get("skip_tags"):
        typer.echo(f"runs as: {_kind(job)}", err=True)
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
    cleanup: Annotated[
        bool,
        typer.Option(
            help="run the cleanup playbook on the nodes left failed (failed, cancelled, timed "
            "out); --no-cleanup leaves them as they are, to look at"
        ),
    ] = True,
    check: CheckOpt = False,
    tags: TagsOpt = None,
    skip_tags: SkipTagsOpt = None,
    json_: JsonOpt = False,
) -> int:
    """Commission nodes into the cluster (a job; see `clusterctl job get active`)."""
    body: dict[str, Any] = {"nodes": names, "extra_vars": _extra_vars(extra_vars)}
    _run_options(body, check, tags, skip_tags)
    if not cleanup:
        body["cleanup"] = False
    if group is not None:
        body["host_group"] = group
    return start_job(ctx, "/commission/nodes", body, wait, json_)


@nodes_app.command("decommission")
def nodes_decommission(
    ctx: typer.Context,
    names: Annotated[list[str], typer.Argument(help="node names")],
    extra_vars: ExtraVarsOpt = None,
    wait: WaitOpt = False,
    check: CheckOpt = False,
    tags: TagsOpt = None,
    skip_tags: SkipTagsOpt = None,
    json_: JsonOpt = False,
) -> int:
    """Drain and remove nodes from the cluster."""
    body = {"nodes": names, "extra_vars": _extra_vars(extra_vars)}
    _run_options(body, check, tags, skip_tags)
    return start_job(ctx, "/decommission/nodes", body, wait, json_)


@nodes_app.command("update")
def nodes_update(
    ctx: typer.Context,
    names: Annotated[list[str], typer.Argument(help="node names")],
    group: GroupOpt = None,
    extra_vars: ExtraVarsOpt = None,
    wait: WaitOpt = False,
    check: CheckOpt = False,
    tags: TagsOpt = None,
    skip_tags: SkipTagsOpt = None,
    json_: JsonOpt = False,
) -> int:
    """Re-apply the configuration to commissioned nodes."""
    body: dict[str, Any] = {"nodes": names, "extra_vars": _extra_vars(extra_vars)}
    _run_options(body, check, tags, skip_tags)
    if group is not None:
        body["host_group"] = group
    return start_job(ctx, "/update/nodes", body, wait, json_)


@nodes_app.command("cleanup")
def nodes_cleanup(
    ctx: typer.Context,
    names: Annotated[list[str], typer.Argument(help="names of failed nodes")],
    extra_vars: ExtraVarsOpt = None,
    wait: WaitOpt = False,
    json_: JsonOpt = False,
) -> int:
    """Run the cleanup playbook on failed nodes: they are registered again when it succeeds."""
    body = {"nodes": names, "extra_vars": _extra_vars(extra_vars)}
    return start_job(ctx, "/cleanup/nodes", body, wait, json_)


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
    return start_job(ctx, "/discover/nodes", body, wait, json_)


@job_app.command("get")
def job_get(
    ctx: typer.Context,
    which: Annotated[str, typer.Argument(help="active, last, or a job's id", metavar="JOB")],
    json_: JsonOpt = False,
    since: Annotated[int, typer.Option(help="only the log lines after this number")] = 0,
    tail: Annotated[int | None, typer.Option(help="only the last N log lines")] = None,
    follow_: Annotated[
        bool,
        typer.Option("--follow", "-f", help="print new lines as they come, until the job ends"),
    ] = False,
    color: ColorOpt = None,
) -> int:
    """Show a job with its log: the active one, the last one, or any by its id."""
    if which not in ("active", "last") and not (which.isascii() and which.isdigit()):
        raise typer.BadParameter(f"{which!r}: give active, last or a job's id", param_hint="JOB")
    client = api(ctx)
    path = f"/info/job/{which}" if which in ("active", "last") else f"/jobs/{int(which)}/log"
    if follow_:
        job_id = None  # the active job, whichever it is when the follow starts
        if which == "last":
            job_id = int(client.get(path, tail=1)["id"])
        elif which != "active":
            job_id = int(which)
        return follow(client, job_id=job_id, since=since, color=_color(color))
    job = client.get(path, since=since, tail=tail, color=str(_color(color)).lower())
    if json_:
        print_json(job)
        return 0
    _summary(job)
    for line in job["logs"]:
        typer.echo(line)
    return 0


def _summary(job: dict[str, Any]) -> None:
    rc = f" rc={job['rc']}" if job["rc"] is not None else ""
    check = " (check mode: nothing was changed)" if job.get("check") else ""
    typer.echo(f"job {job['id']}: {job['desc']} (by {job['actor']}): {job['status']}{rc}{check}")
    if job["error"]:
        typer.echo(f"error: {job['error']}")
    if job["hosts"]:
        print_table([{"host": h, **c} for h, c in sorted(job["hosts"].items())], HOST_COLUMNS)
    if job.get("dropped_lines"):
        typer.echo(f"({job['dropped_lines']} lines dropped from the middle of this log)")
    typer.echo("---")


def follow(client: Api, *, job_id: int | None, since: int, color: bool) -> int:
    """Print the job's lines after `since` until it has ended; return 0 if it succeeded, else 4.
    `job_id` None: the active job. A broken stream resumes (on the next URL) after the last line
    printed: line numbers are the same on every replica, so nothing is printed twice or missed."""
    cursor = since
    failures = 0
    while True:
        try:
            if job_id is None:
                job_id = int(client.get("/info/job/active", tail=1)["id"])
            path = f"/jobs/{job_id}/log/stream"
            with client.stream(path, last_event_id=str(cursor), color=str(color).lower()) as source:
                failures = 0
                for sse in source.iter_sse():
                    if sse.event in ("line", "gap"):
                        typer.echo(sse.data if color else _ANSI.sub("", sse.data))
                    elif sse.event == "status":
                        return _ended(json.loads(sse.data))
                    elif sse.event == "error":
                        # The daemon ended the stream (a token revoked, a log no longer kept):
                        # reconnecting would only be refused, so stop and say why.
                        body = json.loads(sse.data)
                        status = {"Unauthorized": 401, "Gone": 410}.get(body.get("error"), 503)
                        raise Refused(status, str(body.get("error")), str(body.get("message")))
                    if sse.id:
                        cursor = int(sse.id)
            # Ended without the job's status: the replica stopped; resume like a broken stream.
            raise Unreachable("the stream ended before the job did")
        except Unreachable:
            # Every URL failed at once: a daemon restarting, or replicas handing over the lead.
            failures += 1
            if failures > RECONNECT_TRIES:
                raise
            error(f"job: cannot reach clusterm; trying again after line {cursor}")
            time.sleep(min(2.0**failures / 4, 10.0))


def _ended(job: dict[str, Any]) -> int:
    rc = f" (rc {job['rc']})" if job["rc"] is not None else ""
    error_ = f": {job['error']}" if job["error"] else ""
    check = " in check mode" if job.get("check") else ""
    typer.echo(f"job {job['id']} {job['status']}{check}{rc}{error_}", err=True)
    return 0 if job["status"] == "successful" else JOB_FAILED


@job_app.command("cancel")
def job_cancel(ctx: typer.Context, json_: JsonOpt = False) -> None:
    """Cancel the active job: Ansible is stopped, its nodes are marked failed."""
    job = api(ctx).send("POST", "/info/job/active/cancel")
    if json_:
        print_json(job)
    elif job["status"] == "running" and job["kind"] == "commission":
        # The cancel answers once the cleanup starts, which may take minutes.
        typer.echo(
            f"job {job['id']} is still running: a cancelled commission cleans up its nodes "
            "first (cancel again to stop the cleanup)",
            err=True,
        )
    else:
        typer.echo(f"job {job['id']} {job['status']}", err=True)


@job_app.command("list")
def job_list(
    ctx: typer.Context,
    limit: Annotated[int, typer.Option(help="at most this many")] = 20,
    before_id: Annotated[int | None, typer.Option(help="only jobs older than this id")] = None,
    node: Annotated[str | None, typer.Option(help="only jobs on this node")] = None,
    kind: Annotated[list[str] | None, typer.Option(help="e.g. commission; repeatable")] = None,
    status: Annotated[list[str] | None, typer.Option(help="e.g. failed; repeatable")] = None,
    since: Annotated[str | None, typer.Option(help="e.g. 12h, 7d, or an ISO 8601 time")] = None,
    json_: JsonOpt = False,
) -> None:
    """List jobs, newest first."""
    jobs = api(ctx).get(
        "/jobs",
        limit=limit,
        before_id=before_id,
        node=node,
        kind=kind or None,
        status=status or None,
        since=since,
    )
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
