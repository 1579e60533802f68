"""`clusterctl`: commands for operators, support engineers and scripts.

Exit codes: 0 ok, 1 refused by the server, 2 usage error, 3 cannot reach the server, 4 a job
followed to its end (`--wait`, `--follow`) did not succeed.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

import httpx
import typer

from clusterctl import drift, jobs, nodes, status, support, timeline, verbosity
from clusterctl.api import Api, ApiError, Refused
from clusterctl.locate import DEFAULT_URL, parse_urls, resolve_token
from clusterctl.output import error

app = typer.Typer(
    help="Command-line client of the clusterm daemon.",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
)
app.add_typer(nodes.nodes_app, name="nodes")
app.add_typer(nodes.node_app, name="node")
app.add_typer(jobs.job_app, name="job")
app.add_typer(jobs.global_app, name="global")
app.command("discover")(jobs.discover)
app.add_typer(drift.drift_app, name="drift")
app.add_typer(verbosity.verbosity_app, name="verbosity")
app.command("timeline")(timeline.timeline)
app.command("status")(status.status)
app.command("support-bundle")(support.support_bundle)
nodes.node_app.command("history")(timeline.node_history)


@dataclass
class Obj:
    """What commands reach through `ctx.obj`; tests inject `http` (FastAPI's TestClient): one
    client for every URL, or one for some URLs by URL (the others are reached over the network)."""

    http: httpx.Client | Mapping[str, httpx.Client] | None = None
    api: Api | None = field(default=None)


@app.callback()
def _root(
    ctx: typer.Context,
    url: Annotated[
        list[str] | None,
        typer.Option(
            envvar="CLUSTERM_URL",
            metavar="URL",
            help=f"the daemon's URL, default {DEFAULT_URL}; repeat it for replicas, tried in "
            "turn (CLUSTERM_URL: separated by commas)",
            show_envvar=True,
        ),
    ] = None,
    token: Annotated[
        str | None,
        typer.Option(
            envvar="CLUSTERM_TOKEN",
            help="API token; default: the local daemon's admin token file",
            show_envvar=True,
        ),
    ] = None,
    ca_file: Annotated[
        Path | None,
        typer.Option(
            envvar="CLUSTERM_CA_FILE",
            help="PEM file of the CA that signed the daemon's certificate (https URLs); "
            "default: the system's CAs",
            show_envvar=True,
            dir_okay=False,
        ),
    ] = None,
) -> None:
    obj = ctx.ensure_object(Obj)
    urls = parse_urls(url or [DEFAULT_URL])
    tokens = {u: resolve_token(u, token) for u in urls}
    obj.api = Api(urls, tokens, obj.http, ca_file=ca_file)


def run(argv: list[str], *, http: httpx.Client | Mapping[str, httpx.Client] | None = None) -> int:
    """Run one command and return its exit code; what `main` and the tests call."""
    command = typer.main.get_command(app)
    obj = Obj(http=http)
    try:
        result = command.main(args=argv, prog_name="clusterctl", standalone_mode=False, obj=obj)
    except Refused as exc:
        error(f"{exc.message} [{exc.status} {exc.error}]")
        return exc.exit_code
    except ApiError as exc:
        error(str(exc))
        return exc.exit_code
    except typer.Exit as exc:
        return exc.exit_code
    except typer.Abort:
        error("aborted")
        return 1
    except typer.TyperException as exc:  # usage errors: typer's (vendored click) exceptions
        show = getattr(exc, "show", None)
        if show is not None:
            show()
        else:
            error(exc.format_message())
        return exc.exit_code
    finally:
        if obj.api is not None:
            obj.api.close()
    return result if isinstance(result, int) else 0


def main() -> None:
    sys.exit(run(sys.argv[1:]))
