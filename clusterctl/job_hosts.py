"""`clusterctl job hosts ID [HOST]`: what a job did on each host, or every task of one host.

The tables are the daemon's own text answer (`GET /jobs/{id}/hosts?format=text`), so what a
support engineer pastes from the CLI reads as what curl shows.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

import typer

from clusterctl.common import JsonOpt, api
from clusterctl.output import print_json


def job_hosts(
    ctx: typer.Context,
    job_id: Annotated[int, typer.Argument(metavar="ID", help="the job's id", min=1)],
    host: Annotated[str | None, typer.Argument(help="one host: every task it ran")] = None,
    json_: JsonOpt = False,
) -> None:
    """A job's hosts (counts, failed tasks and why), or every task one host ran."""
    path = f"/jobs/{job_id}/hosts" + (f"/{quote(host, safe='')}" if host is not None else "")
    client = api(ctx)
    if json_:
        print_json(client.get(path))
        return
    typer.echo(client.request("GET", path, params={"format": "text"}).text, nl=False)
