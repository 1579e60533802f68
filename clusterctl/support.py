"""`clusterctl support-bundle`: save the daemon's support bundle (a .tar.gz) to a file."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import re
from pathlib import Path
from typing import Annotated

import typer

from clusterctl.api import Api

# The daemon's name for the file (Content-Disposition), used as the default when it is sane.
_NAME_RE = re.compile(r'filename="(clusterm-support-[0-9TZ]+\.tar\.gz)"')


def support_bundle(
    ctx: typer.Context,
    output: Annotated[
        Path | None,
        typer.Option(
            "-o",
            "--output",
            help="where to save it; default: clusterm-support-<time>.tar.gz here",
            dir_okay=False,
        ),
    ] = None,
    since: Annotated[
        str, typer.Option(help="the timeline's window: 7d, 24h, or an ISO 8601 time")
    ] = "7d",
) -> None:
    """Save a support bundle: versions, redacted settings, nodes, the timeline, the newest jobs
    with their logs, every replica's recent log (README.txt inside lists the files). Needs the
    operator role. Attach the file to a ticket: it holds no secret."""
    api: Api = ctx.obj.api
    with api.download("/support/bundle", since=since) as response:
        found = _NAME_RE.search(response.headers.get("content-disposition", ""))
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
        target = output or Path(found.group(1) if found else f"clusterm-support-{stamp}.tar.gz")
        # Written beside the target, then renamed: an interrupted download leaves no file that
        # looks complete.
        partial = target.with_name(f".{target.name}.part")
        try:
            with partial.open("wb") as out:
                for chunk in response.iter_bytes():
                    out.write(chunk)
            os.replace(partial, target)
        except BaseException:
            with contextlib.suppress(OSError):
                partial.unlink()
            raise
    size = target.stat().st_size
    typer.echo(f"saved the support bundle to {target} ({size} bytes)", err=True)
