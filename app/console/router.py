"""Serving the browser console: one page and its assets, all shipped in the package.

The shell carries no data and so needs no token (a browser navigation cannot send an
Authorization header); the page fetches every datum from the JSON API with the token it holds
(see docs/console.md). Only files listed when the package is read are served, looked up by exact
name: a request for anything else, `..` and encoded slashes included, is a 404 that reads no file.
Every response under /ui carries the headers below, a 404 too.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from functools import cache
from importlib import resources

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse, RedirectResponse

from app.errors import NotFound

router = APIRouter(include_in_schema=False)

# No inline script or style and nothing from elsewhere: a value that slipped into the page as
# markup could not run, nor send anything anywhere but this daemon.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    # Revalidated on every load (the ETag makes that a 304): an upgraded daemon is never paired
    # with a tab's stale modules.
    "Cache-Control": "no-cache",
}
MEDIA_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".woff2": "font/woff2",
}
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


@dataclass(frozen=True)
class Asset:
    body: bytes
    media_type: str
    etag: str


@cache
def assets() -> dict[str, Asset]:
    """The files shipped in app/console/static, by name: read once, then served from memory."""
    found: dict[str, Asset] = {}
    for entry in resources.files("app.console").joinpath("static").iterdir():
        name = entry.name
        suffix = name[name.rfind(".") :] if "." in name else ""
        if not entry.is_file() or not _NAME_RE.match(name) or suffix not in MEDIA_TYPES:
            continue
        body = entry.read_bytes()
        etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
        found[name] = Asset(body=body, media_type=MEDIA_TYPES[suffix], etag=etag)
    return found


def _serve(request: Request, asset: Asset) -> Response:
    headers = {**HEADERS, "ETag": asset.etag}
    if asset.etag in _etags(request.headers.get("if-none-match", "")):
        return Response(status_code=304, headers=headers)
    return Response(asset.body, media_type=asset.media_type, headers=headers)


def _etags(header: str) -> set[str]:
    return {tag.strip().removeprefix("W/") for tag in header.split(",") if tag.strip()}


def _not_found(what: str) -> JSONResponse:
    error = NotFound(f"{what}; the console is at /ui/ and its files under /ui/assets/")
    return JSONResponse(error.body(), status_code=error.status_code, headers=HEADERS)


@router.api_route("/ui", methods=["GET", "HEAD"])
def console_root() -> Response:
    # The page loads its modules by relative URL, which resolve under /ui/ only.
    return RedirectResponse("/ui/", status_code=307, headers=HEADERS)


@router.api_route("/ui/", methods=["GET", "HEAD"])
def console_index(request: Request) -> Response:
    index = assets().get("index.html")
    if index is None:
        return _not_found("this installation lacks the console's index.html")
    return _serve(request, index)


@router.api_route("/ui/assets/{name:path}", methods=["GET", "HEAD"])
def console_asset(request: Request, name: str) -> Response:
    # `name:path` catches `a/b` and `../x` too, so that they get this 404 and its headers; the
    # lookup is by exact name in the listing, so no path is ever built from the request.
    asset = assets().get(name)
    if asset is None:
        return _not_found(f"no console file named {name[:80]!r}")
    return _serve(request, asset)


@router.api_route("/ui/{rest:path}", methods=["GET", "HEAD"])
def console_unknown(rest: str) -> Response:
    return _not_found(f"no console page at /ui/{rest[:80]}")
