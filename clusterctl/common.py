"""Small pieces every command module shares."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from clusterctl.api import Api

JsonOpt = Annotated[bool, typer.Option("--json", "-j", help="print JSON instead of a table")]


def api(ctx: typer.Context) -> Api:
    client: Api | None = ctx.obj.api
    assert client is not None, "the root callback builds the client"
    return client


def parse_pairs(pairs: list[str], option: str, *, json_values: bool = False) -> dict[str, Any]:
    """`k=v` pairs; with json_values, a value that parses as JSON is taken as such (`n=1` -> 1)."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"{pair!r} is not KEY=VALUE", param_hint=option)
        if json_values:
            try:
                out[key] = json.loads(value)
            except ValueError:
                out[key] = value
        else:
            out[key] = value
    return out
