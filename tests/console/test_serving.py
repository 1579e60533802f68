"""Serving the console: the page and its assets with their security headers, no token needed,
nothing but the shipped files reachable, and nothing in the shipped code that writes HTML."""

from __future__ import annotations

import re
import socket
import tomllib
from collections.abc import Mapping
from fnmatch import fnmatch
from html.parser import HTMLParser
from importlib import resources
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from fastapi.testclient import TestClient

from app.config import Settings
from app.console.router import CSP
from tests.timeline.conftest import serve

STATIC = Path(__file__).resolve().parents[2] / "app" / "console" / "static"
PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"
SHIPPED = sorted(p for p in STATIC.iterdir() if p.is_file())
SCRIPTS = [p for p in SHIPPED if p.suffix == ".js"]
MEDIA = {
    ".js": "text/javascript",
    ".css": "text/css",
    ".html": "text/html",
    ".svg": "image/svg+xml",
}
EXPECTED_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)


def assert_secured(headers: Mapping[str, str]) -> None:
    assert headers.get("content-security-policy") == EXPECTED_CSP
    assert headers.get("x-content-type-options") == "nosniff"
    assert headers.get("referrer-policy") == "no-referrer"
    assert headers.get("cache-control") == "no-cache"


def test_the_policy_is_the_documented_one() -> None:
    assert CSP == EXPECTED_CSP


def test_ui_redirects_to_the_page(client: TestClient) -> None:
    r = client.get("/ui", follow_redirects=False)
    assert r.status_code == 307
    assert r.headers["location"] == "/ui/"
    assert_secured(r.headers)


def test_the_page_is_served_without_a_token(client: TestClient) -> None:
    assert "authorization" not in {k.lower() for k in client.headers}
    r = client.get("/ui/")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/html")
    assert '<script type="module" src="assets/app.js">' in r.text
    assert_secured(r.headers)


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_every_asset_is_served_with_its_media_type(client: TestClient, path: Path) -> None:
    r = client.get(f"/ui/assets/{path.name}")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].split(";")[0] == MEDIA[path.suffix]
    assert r.content == path.read_bytes()
    assert_secured(r.headers)
    # Revalidation: the same file again is a 304 with no body.
    again = client.get(f"/ui/assets/{path.name}", headers={"If-None-Match": r.headers["etag"]})
    assert again.status_code == 304
    assert again.content == b""
    assert_secured(again.headers)


def test_head_is_answered(client: TestClient) -> None:
    r = client.head("/ui/assets/app.js")
    assert r.status_code == 200
    assert r.content == b""
    assert_secured(r.headers)


@pytest.mark.parametrize("path", ["/ui/assets/nope.js", "/ui/assets/", "/ui/elsewhere"])
def test_unknown_paths_are_404_in_the_error_shape_with_the_headers(
    client: TestClient, path: str
) -> None:
    r = client.get(path)
    assert r.status_code == 404
    body = r.json()
    assert body["error"] == "NotFound"
    assert "/ui/" in body["message"]
    assert_secured(r.headers)


TRAVERSALS = [
    "/ui/assets/../router.py",
    "/ui/assets/../__init__.py",
    "/ui/assets/..%2frouter.py",
    "/ui/assets/..%2Frouter.py",
    "/ui/assets/%2e%2e/router.py",
    "/ui/assets/%2e%2e%2frouter.py",
    "/ui/assets/%2E%2E%2Frouter.py",
    "/ui/assets/..%5crouter.py",
    "/ui/assets/..\\router.py",
    "/ui/assets/%252e%252e%252frouter.py",
    "/ui/assets/....//router.py",
    "/ui/assets/./../router.py",
    "/ui/assets/static/app.js",
    "/ui/assets/../static/app.js",
    "/ui/assets/..%2f..%2f..%2fpyproject.toml",
    "/ui/assets/%2fetc%2fpasswd",
    "/ui/assets//etc/passwd",
    "/ui/assets/app.js%00.py",
    "/ui/assets/app.js/",
    "/ui/../app/console/router.py",
]


def raw_get(base_url: str, target: str) -> tuple[int, bytes, str]:
    """GET `target` sent byte for byte (an HTTP client would normalise the dots)."""
    parts = urlsplit(base_url)
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
        request = f"GET {target} HTTP/1.1\r\nHost: {parts.netloc}\r\nConnection: close\r\n\r\n"
        sock.sendall(request.encode("latin-1"))
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, body, head.decode("latin-1")


def test_traversal_attempts_are_404_and_read_no_file(settings: Settings) -> None:
    secrets = [b"APIRouter", b"import ", b"root:", b"[project]", b"console_asset"]
    with serve(settings) as url:
        for target in TRAVERSALS:
            status, body, head = raw_get(url, target)
            assert status in (400, 404), (target, status, body[:200])
            assert not any(s in body for s in secrets), (target, body[:200])
            if status == 404:
                assert EXPECTED_CSP.lower() in head.lower(), (target, head)
        # The same server still serves the real files.
        status, body, _ = raw_get(url, "/ui/assets/app.js")
        assert status == 200
        assert body.startswith(b"//") or b"import" in body


def test_the_console_is_not_in_the_api_description(admin: TestClient) -> None:
    paths = admin.get("/openapi.json").json()["paths"]
    assert not [p for p in paths if p.startswith("/ui")]
    assert "/info/timeline" in paths  # the description itself was read


class _Refs(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.refs: list[str] = []
        self.inline_scripts = 0
        self.bad_attrs: list[str] = []
        self._in_script_without_src = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = dict(attrs)
        for name, value in attrs:
            if name in ("src", "href") and value:
                self.refs.append(value)
            if name.startswith("on") or name == "style":
                self.bad_attrs.append(f"<{tag} {name}>")
            if value and value.strip().lower().startswith("javascript:"):
                self.bad_attrs.append(f"<{tag} {name}={value}>")
        if tag == "style":
            self.bad_attrs.append("<style>")
        self._in_script_without_src = tag == "script" and not names.get("src")

    def handle_data(self, data: str) -> None:
        if self._in_script_without_src and data.strip():
            self.inline_scripts += 1

    def handle_endtag(self, tag: str) -> None:
        self._in_script_without_src = False


def test_every_file_the_page_references_is_shipped_and_local() -> None:
    parser = _Refs()
    parser.feed((STATIC / "index.html").read_text())
    assert parser.refs, "index.html references no asset"
    for ref in parser.refs:
        if ref.startswith("#") or ref.startswith("data:"):
            continue
        assert ref.startswith("assets/"), f"{ref}: not one of the console's own files"
        assert (STATIC / ref.removeprefix("assets/")).is_file(), ref
    assert parser.inline_scripts == 0
    assert parser.bad_attrs == []


IMPORT_RE = re.compile(r"""(?:\bfrom\s*|\bimport\s*\(?\s*)["']([^"']+)["']""")


@pytest.mark.parametrize("path", SCRIPTS, ids=lambda p: p.name)
def test_every_module_imported_is_shipped_and_local(path: Path) -> None:
    for target in IMPORT_RE.findall(path.read_text()):
        assert target.startswith("./"), f"{path.name} imports {target}: not a shipped module"
        assert (STATIC / target.removeprefix("./")).is_file(), f"{path.name} imports {target}"


def test_every_page_module_the_router_names_is_shipped() -> None:
    app_js = (STATIC / "app.js").read_text()
    modules = re.findall(r'module:\s*"\./([a-z]+\.js)"', app_js)
    assert {"nodes.js", "timeline.js", "jobs.js", "verbosity.js", "drift.js"} <= set(modules)
    missing = [m for m in modules if not (STATIC / m).is_file()]
    assert missing == []


# Ways to turn a string into markup or code; the console builds every node with the DOM instead
# (see docs/console.md#security).
FORBIDDEN = {
    "innerHTML": re.compile(r"\binnerHTML\b"),
    "outerHTML": re.compile(r"\bouterHTML\b"),
    "insertAdjacentHTML": re.compile(r"\binsertAdjacentHTML\b"),
    "document.write": re.compile(r"\bdocument\s*\.\s*write(ln)?\b"),
    "eval": re.compile(r"\beval\s*\("),
    "new Function": re.compile(r"\bnew\s+Function\b"),
    "createContextualFragment": re.compile(r"\bcreateContextualFragment\b"),
    "DOMParser": re.compile(r"\bDOMParser\b"),
    "string timer": re.compile(r"\bset(Timeout|Interval)\s*\(\s*[\"'`]"),
    "on* attribute": re.compile(r"setAttribute\(\s*[\"']on", re.IGNORECASE),
    "javascript: URL": re.compile(r"javascript:", re.IGNORECASE),
    "inline handler": re.compile(r"<[^>]+\son[a-z]+\s*=", re.IGNORECASE),
    "style attribute": re.compile(r"<[^>]+\sstyle\s*=", re.IGNORECASE),
    "remote URL": re.compile(r"""["'(]\s*(https?:)?//[a-z0-9]""", re.IGNORECASE),
}


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_nothing_shipped_writes_html_or_runs_strings(path: Path) -> None:
    if path.suffix not in (".js", ".html"):
        return
    text = path.read_text()
    found = [name for name, pattern in FORBIDDEN.items() if pattern.search(text)]
    assert found == [], f"{path.name}: {found}"


def test_the_forbidden_patterns_catch_what_they_name() -> None:
    samples = {
        "innerHTML": "el.innerHTML = data;",
        "insertAdjacentHTML": "el.insertAdjacentHTML('beforeend', x)",
        "document.write": "document.write(x)",
        "eval": "eval (x)",
        "new Function": "new Function('return 1')",
        "on* attribute": 'el.setAttribute("onclick", x)',
        "inline handler": '<button onclick="go()">',
        "style attribute": '<p style="color: red">',
        "remote URL": '<script src="https://cdn.example.com/x.js">',
    }
    for name, sample in samples.items():
        assert FORBIDDEN[name].search(sample), name


def test_the_assets_are_package_data() -> None:
    installed = resources.files("app.console").joinpath("static")
    names = {entry.name for entry in installed.iterdir() if entry.is_file()}
    assert {p.name for p in SHIPPED} <= names
    assert {"index.html", "app.js", "api.js", "dom.js", "console.css"} <= names
    # And the build ships them: every file matches the package-data globs a wheel is built from.
    setuptools = tomllib.loads(PYPROJECT.read_text())["tool"]["setuptools"]
    globs = setuptools["package-data"]["app.console"]
    for path in STATIC.rglob("*"):
        if path.is_file():
            relative = path.relative_to(STATIC.parent).as_posix()
            assert any(fnmatch(relative, g) for g in globs), f"{relative} is not package data"
