"""`clusterctl timeline` and `clusterctl node history NAME`: what happened, oldest at the top.

Pages come newest first from the API; they are printed oldest first so that `--follow` can go on
printing below them, like `tail -f`. Failures are red and warnings yellow on a terminal (not when
piped, nor with NO_COLOR set).
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Annotated, Any

import click
import typer

from clusterctl.api import Api, Refused, Unreachable
from clusterctl.common import JsonOpt, api
from clusterctl.output import error, print_json

FAILED = {"failed", "interrupted"}
WARNED = {"retrying", "canceled"}
RECONNECT_TRIES = 10  # about a minute of backoff: a daemon restart, not a dead daemon

NodeOpt = Annotated[
    list[str] | None, typer.Option("--node", "-n", help="only this node; repeat for several")
]
LimitOpt = Annotated[int, typer.Option("--limit", "-l", min=1, max=1000, help="events to show")]
SinceOpt = Annotated[
    str | None, typer.Option("--since", "-s", help="e.g. 1h, 30m, 7d, or an ISO 8601 time")
]
FollowOpt = Annotated[bool, typer.Option("--follow", "-f", help="then print new events live")]
ResultOpt = Annotated[
    list[str] | None, typer.Option("--result", "-r", help="e.g. failed; repeatable")
]
ActionOpt = Annotated[list[str] | None, typer.Option("--action", "-a", help="e.g. commission")]
ActorOpt = Annotated[
    list[str] | None, typer.Option("--actor", help="only what this token did; repeatable")
]
SeverityOpt = Annotated[
    str | None,
    typer.Option("--min-severity", help="debug < info < audit < warning < error"),
]
JobOpt = Annotated[int | None, typer.Option("--job", help="only this job's events")]


def _stamp(event: dict[str, Any]) -> str:
    # "2026-11-21T10:11:12.345678Z" -> "2026-11-21T10:11:12.345Z": the API's text format.
    text = str(event["occurred_at"])
    head, dot, frac = text.partition(".")
    return f"{head}.{frac[:3]}Z" if dot else text


def _extra(event: dict[str, Any]) -> str:
    parts = []
    if event.get("from_state") and event.get("to_state"):
        parts.append(f"{event['from_state']}->{event['to_state']}")
    elif event.get("to_state"):
        parts.append(f"->{event['to_state']}")
    for key, label in (("job_id", "job"), ("attempt", "attempt"), ("actor", "actor")):
        if event.get(key) is not None:
            parts.append(f"{label}={event[key]}")
    details = event.get("details")
    details = details if isinstance(details, dict) else {}
    if event.get("note"):
        # A HostFailed note says why in one line (reason, task, message): keep it one line.
        parts.append(" ".join(str(event["note"]).split()))
    elif details.get("reason"):
        parts.append(str(details["reason"]))
    return " ".join(parts)


class Printer:
    def __init__(self, *, as_json: bool) -> None:
        self.as_json = as_json
        self.color = sys.stdout.isatty() and "NO_COLOR" not in os.environ
        self.node_width = 12

    def header(self) -> None:
        if not self.as_json:
            self._write(
                f"{'TIME':<24} {'NODE':<{self.node_width}} {'ACTION':<12} {'RESULT':<11} "
                f"{'REASON':<22} DETAILS"
            )

    def event(self, event: dict[str, Any]) -> None:
        if self.as_json:
            self._write(json.dumps(event, sort_keys=True))  # one object per line: jq-friendly
            return
        line = (
            f"{_stamp(event):<24} {event.get('node') or '-':<{self.node_width}} "
            f"{event['action']:<12} {event['result']:<11} {event['reason']:<22} {_extra(event)}"
        ).rstrip()
        if self.color:
            if event["result"] in FAILED or event["severity"] == "error":
                line = click.style(line, fg="red", bold=True)
            elif event["result"] in WARNED or event["severity"] == "warning":
                line = click.style(line, fg="yellow")
        self._write(line)

    def page(self, page: dict[str, Any]) -> None:
        items = list(reversed(page["items"]))
        names = [len(e["node"]) for e in items if e.get("node")]
        self.node_width = max([12, *names])
        self.header()
        for event in items:
            self.event(event)

    @staticmethod
    def _write(line: str) -> None:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


def _follow(client: Api, printer: Printer, after_id: int, params: dict[str, Any]) -> None:
    """Print events as they come; reconnect with Last-Event-ID, so nothing is lost or repeated."""
    last = str(after_id)
    failures = 0
    while True:
        try:
            with client.stream("/info/timeline/stream", last_event_id=last, **params) as source:
                failures = 0
                for sse in source.iter_sse():
                    if sse.event == "reset":
                        error(f"timeline: {json.loads(sse.data).get('message', sse.data)}")
                    elif sse.event == "error":
                        # The daemon ended the stream (the token was revoked or expired):
                        # reconnecting would only be refused, so stop and say why.
                        body = json.loads(sse.data)
                        status = 401 if body.get("error") == "Unauthorized" else 503
                        raise Refused(status, str(body.get("error")), str(body.get("message")))
                    elif sse.event == "message" and sse.data:
                        printer.event(json.loads(sse.data))
                    if sse.id:
                        last = sse.id
        except Unreachable:
            failures += 1
            if failures > RECONNECT_TRIES:
                raise
            error(f"timeline: connection lost; reconnecting after event {last}")
            time.sleep(min(2.0**failures / 4, 10.0))


def show(
    ctx: typer.Context,
    path: str,
    *,
    as_json: bool,
    follow: bool,
    limit: int,
    filters: dict[str, Any],
    since: str | None,
    stream_filters: dict[str, Any] | None = None,
) -> None:
    client = api(ctx)
    page = client.get(path, limit=limit, since=since, **filters)
    printer = Printer(as_json=as_json)
    if as_json and not follow:
        print_json(page)
        return
    if as_json:
        for event in reversed(page["items"]):
            printer.event(event)
    else:
        printer.page(page)
    if follow:
        try:
            live = filters if stream_filters is None else stream_filters
            _follow(client, printer, page["latest_id"] or 0, live)
        except KeyboardInterrupt:
            return


def timeline(
    ctx: typer.Context,
    node: NodeOpt = None,
    limit: LimitOpt = 30,
    since: SinceOpt = None,
    follow: FollowOpt = False,
    result: ResultOpt = None,
    action: ActionOpt = None,
    actor: ActorOpt = None,
    min_severity: SeverityOpt = None,
    job: JobOpt = None,
    json_: JsonOpt = False,
) -> None:
    """The cluster's recent events, oldest first; --follow keeps printing new ones."""
    filters = {
        "node": node or None,
        "result": result or None,
        "action": action or None,
        "actor": actor or None,
        "min_severity": min_severity,
        "job": job,
    }
    show(
        ctx,
        "/info/timeline",
        as_json=json_,
        follow=follow,
        limit=limit,
        filters={k: v for k, v in filters.items() if v is not None},
        since=since,
    )


def node_history(
    ctx: typer.Context,
    name: str,
    limit: LimitOpt = 30,
    since: SinceOpt = None,
    follow: FollowOpt = False,
    json_: JsonOpt = False,
) -> None:
    """One node's events, oldest first; still there after the node is deleted."""
    show(
        ctx,
        f"/info/node/{name}/history",
        as_json=json_,
        follow=follow,
        limit=limit,
        filters={},
        since=since,
        stream_filters={"node": [name]},
    )
