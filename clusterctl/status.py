"""`clusterctl status`: the replicas serving this cluster, which one leads, and which cannot.

Every replica answers `GET /cluster/replicas` from the shared database, so any URL gives the same
table; the line above it says which one answered (see docs/replicas.md#clients).
"""

from __future__ import annotations

from typing import Any

import typer

from clusterctl.common import JsonOpt, api
from clusterctl.output import Column, print_json, print_table


def _time(value: str | None) -> str:
    return (value or "")[:19].replace("T", " ")


def _note(replica: dict[str, Any]) -> str | None:
    note: str | None = replica.get("note")
    if replica.get("can_lead", True):
        return note
    # A replica older than the database's schema must never lead: say so in the same words
    # whatever the daemon's note adds.
    if note and note.startswith("cannot lead"):
        return note
    return f"cannot lead: {note}" if note else "cannot lead"


REPLICA_COLUMNS: list[Column] = [
    ("ID", lambda r: r["id"]),
    ("ADDRESS", lambda r: r["advertise_url"]),
    ("ROLE", lambda r: r["role"]),
    ("SINCE", lambda r: _time(r["since"])),
    ("VERSION", lambda r: r["version"]),
    ("SEEN", lambda r: _time(r["seen_at"])),
    ("NOTE", _note),
]


def status(ctx: typer.Context, json_: JsonOpt = False) -> None:
    """The replicas: which one leads, since when, and which cannot lead (and why)."""
    client = api(ctx)
    data = client.get("/cluster/replicas")
    leader = data.get("leader")
    replica = f" (replica {data['answered_by']})" if data.get("answered_by") else ""
    heading = f"answered by {client.url}{replica}; " + (
        f"leader: {leader}" if leader else "no leader now (a new one takes over within seconds)"
    )
    if json_:
        typer.echo(heading, err=True)  # stdout stays the JSON alone, for jq
        print_json(data)
        return
    typer.echo(heading)
    print_table(data["replicas"], REPLICA_COLUMNS)
