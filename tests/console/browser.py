"""Headless Chromium driving the console, and what a test watches the page do.

The browser is Debian's `chromium` (tests/run.sh installs it), driven by Playwright for Python
through `executable_path`: no browser is ever downloaded.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from playwright.sync_api import (
    BrowserContext,
    ConsoleMessage,
    Dialog,
    Locator,
    Page,
    Request,
    ViewportSize,
    expect,
)

CHROMIUM = Path("/usr/bin/chromium")
# No sandbox: the tests may run as root in a container, where Chromium's sandbox cannot start.
# The rest keeps a test run from reaching out (updates, sync) or waiting on a GPU.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
VIEWPORT: ViewportSize = {"width": 1366, "height": 768}  # a laptop's screen
REPO = Path(__file__).resolve().parents[2]
TOKEN_KEY = "clusterm.token"  # the console's sessionStorage key

# Every Content-Security-Policy violation the page meets, kept where the test can read it. Run
# by the browser before the page's own scripts; the page's CSP does not apply to it.
_CSP_WATCH = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__cspViolations.push(`${e.violatedDirective} ${e.blockedURI}`);
});
"""
_FAILED_LOAD = "Failed to load resource"


def screenshot_dir() -> Path:
    """Where the tests write each page's picture: $CLUSTERM_SCREENSHOT_DIR, else build/."""
    configured = os.environ.get("CLUSTERM_SCREENSHOT_DIR")
    directory = Path(configured) if configured else REPO / "build" / "screenshots"
    directory.mkdir(parents=True, exist_ok=True)
    return directory


@dataclass
class Watch:
    """What the page did besides what the test asked: errors, dialogs, requests."""

    page: Page
    base_url: str
    page_errors: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)

    def attach(self) -> None:
        self.page.on("pageerror", lambda error: self.page_errors.append(str(error)))
        self.page.on("console", self._console)
        self.page.on("dialog", self._dialog)
        self.page.on("request", self._request)

    def _console(self, message: ConsoleMessage) -> None:
        if message.type != "error":
            return
        where = message.location.get("url", "")
        # Chromium logs every 4xx answer as an error. An API answer is the page's to handle (a
        # 404 from /info/job/active means "no job", a 401 a revoked token; mishandled, the page
        # shows it); a console file that fails to load is a broken console.
        if message.text.startswith(_FAILED_LOAD) and not where.startswith(f"{self.base_url}/ui"):
            return
        self.console_errors.append(f"{message.text} ({where})" if where else message.text)

    def _dialog(self, dialog: Dialog) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def _request(self, request: Request) -> None:
        self.requests.append(request.url)

    def csp_violations(self) -> list[str]:
        if self.page.is_closed():
            return []
        found: list[str] = self.page.evaluate("window.__cspViolations || []")
        return found

    def problems(self) -> dict[str, list[str]]:
        """Anything a user would call broken: a script error, a console error (a CSP refusal
        is one), a dialog (an injected script ran), a request that left the daemon."""
        found = {
            "page errors": self.page_errors,
            "console errors": self.console_errors,
            "CSP violations": self.csp_violations(),
            "dialogs": self.dialogs,
            "requests elsewhere": [u for u in self.requests if not self._ours(u)],
        }
        return {kind: items for kind, items in found.items() if items}

    def _ours(self, url: str) -> bool:
        return url.startswith((self.base_url + "/", "data:"))


def new_page(context: BrowserContext, base_url: str) -> tuple[Page, Watch]:
    context.add_init_script(_CSP_WATCH)
    page = context.new_page()
    watch = Watch(page, base_url)
    watch.attach()
    return page, watch


def main(page: Page, name: str) -> Locator:
    """The page's <main> once the console says page `name` has rendered."""
    locator = page.locator(f'main[data-testid="page-{name}"]')
    expect(locator).to_have_attribute("data-state", "ready")
    return locator


def sign_in(page: Page, base_url: str, token: str, *, start: str = "") -> None:
    """Open the console (at `start`, a hash route), land on sign-in, paste the token."""
    page.goto(f"{base_url}/ui/{start}")
    main(page, "signin")
    page.get_by_test_id("token-input").fill(token)
    page.get_by_test_id("signin-submit").click()


def go(page: Page, route: str, name: str) -> Locator:
    """Follow a hash route inside the signed-in console, as a link would."""
    # Resolves after the console's own hashchange handler has run (it marks <main> "loading"),
    # so the wait below cannot see the previous page's "ready".
    page.evaluate(
        """(route) => new Promise((resolve) => {
            window.addEventListener("hashchange", () => setTimeout(resolve, 0), {once: true});
            window.location.hash = route;
        })""",
        route,
    )
    return main(page, name)


def shoot(page: Page, name: str) -> Path:
    """A full-page screenshot of what the user sees now, for the README and for review."""
    path = screenshot_dir() / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def stored_token(page: Page) -> str | None:
    value: str | None = page.evaluate("(key) => sessionStorage.getItem(key)", TOKEN_KEY)
    return value
