"""A job's log lines in the browser: ANSI colours as spans with classes, everything else text.

The console's own modules (ansi.js, joblog.js) run in headless Chromium, on the shell page the
app serves under its strict CSP. The browser reaches the app through Playwright's request
routing into a TestClient: the app's real responses and headers, without starting the daemon's
background work, which lines of a log do not need.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from playwright.sync_api import Browser, Dialog, Page, Route, sync_playwright

from app.config import load_settings
from app.main import create_app
from tests.console.browser import CHROMIUM, CHROMIUM_ARGS

ORIGIN = "http://clusterm.test"

# Each line rendered into a <pre> of the page, as the job page does: what the reader gets back.
RENDER = """async (lines) => {
  const { ansiNodes } = await import("/ui/assets/ansi.js");
  return lines.map((line) => {
    const pre = document.createElement("pre");
    pre.className = "job-log";
    pre.append(...ansiNodes(line));
    document.body.append(pre);
    const out = {
      text: pre.textContent,
      elements: [...pre.querySelectorAll("*")].map((el) => el.tagName.toLowerCase()),
      styled: pre.querySelectorAll("[style]").length,
      pieces: [...pre.childNodes].map((node) =>
        node.nodeType === Node.TEXT_NODE
          ? { text: node.data, classes: null }
          : {
              text: node.textContent,
              classes: node.className,
              color: getComputedStyle(node).color,
            }),
      plain: getComputedStyle(pre).color,
    };
    pre.remove();
    return out;
  });
}"""


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> TestClient:
    directory = tmp_path_factory.mktemp("console")
    settings = load_settings(data_dir=directory, database_url=f"sqlite:///{directory / 'c.db'}")
    return TestClient(create_app(settings))


@pytest.fixture
def shell(browser: Browser, client: TestClient) -> Iterator[tuple[Page, list[str]]]:
    """The console's shell page, served by the app; and the dialogs any script opened."""

    def forward(route: Route) -> None:
        answer = client.get(route.request.url.removeprefix(ORIGIN))
        route.fulfill(status=answer.status_code, headers=dict(answer.headers), body=answer.content)

    page = browser.new_page()
    dialogs: list[str] = []

    def opened(dialog: Dialog) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", opened)
    page.route(f"{ORIGIN}/**", forward)
    page.goto(f"{ORIGIN}/ui/")
    page.wait_for_selector("main[data-state=ready]")
    yield page, dialogs
    page.close()


def render(page: Page, *lines: str) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = page.evaluate(RENDER, list(lines))
    return result


def test_sgr_colours_bold_and_reset_become_spans_with_classes(
    shell: tuple[Page, list[str]],
) -> None:
    page, _ = shell
    ok, fatal, recap, bright = render(
        page,
        "\x1b[0;32mok: [demo-master]\x1b[0m",
        "\x1b[1;31mfatal: [bad-1]\x1b[0m: UNREACHABLE",
        "\x1b[0;33mw1\x1b[0m : \x1b[0;32mok=3\x1b[0m failed=0",
        "\x1b[1mbold\x1b[22m \x1b[93;44mbright on blue\x1b[39;49m plain \x1b[38;5;9mbright red",
    )
    assert ok["pieces"][0]["text"] == "ok: [demo-master]"
    assert ok["pieces"][0]["classes"] == "ansi-fg-2"
    assert len(ok["pieces"]) == 1
    # The colour comes from pages.css, allowed by the CSP: green is not the pane's own colour.
    assert ok["pieces"][0]["color"] != ok["plain"]
    assert fatal["pieces"][0] == {
        "text": "fatal: [bad-1]",
        "classes": "ansi-bold ansi-fg-1",
        "color": fatal["pieces"][0]["color"],
    }
    assert fatal["pieces"][1] == {"text": ": UNREACHABLE", "classes": None}
    assert [(p["text"], p["classes"]) for p in recap["pieces"]] == [
        ("w1", "ansi-fg-3"),
        (" : ", None),
        ("ok=3", "ansi-fg-2"),
        (" failed=0", None),
    ]
    assert [(p["text"], p["classes"]) for p in bright["pieces"]] == [
        ("bold", "ansi-bold"),
        (" ", None),
        ("bright on blue", "ansi-fg-11 ansi-bg-4"),
        (" plain ", None),
        ("bright red", "ansi-fg-9"),
    ]
    for line in (ok, fatal, recap, bright):
        assert line["styled"] == 0
        assert set(line["elements"]) <= {"span"}


def test_markup_in_a_log_line_stays_text(shell: tuple[Page, list[str]]) -> None:
    page, dialogs = shell
    hostile = [
        '<script>alert("line")</script>',
        "\x1b[31m<img src=x onerror=alert('img')>\x1b[0m done",
        "&lt;b&gt; <b>not bold</b> &amp;",
    ]
    out = render(page, *hostile)
    assert out[0]["text"] == hostile[0]
    assert out[0]["elements"] == []
    assert out[1]["text"] == "<img src=x onerror=alert('img')> done"
    assert out[1]["elements"] == ["span"]
    assert out[2]["text"] == hostile[2]
    assert out[2]["elements"] == []
    page.wait_for_timeout(100)  # an injected handler would have fired by now: none may
    assert dialogs == []


def test_other_escapes_and_control_characters_are_dropped(shell: tuple[Page, list[str]]) -> None:
    page, _ = shell
    cursor, title, charset, controls, extended, cut = render(
        page,
        "a\x1b[2Kb\x1b[1;1Hc\x1b[?25ld",
        "x\x1b]0;window title\x07y\x1b]8;;http://example.test\x1b\\link\x1b]8;;\x1b\\z",
        "\x1b(Bq\x1b=r\x1bcs",
        "bell\x07 back\x08 cr\r tab\tend",
        "\x1b[38;5;200mpink\x1b[0m \x1b[38;2;1;2;3mrgb\x1b[0m \x1b[5;7mblink",
        "half \x1b[31",
    )
    assert cursor["text"] == "abcd"
    assert title["text"] == "xylinkz"
    assert charset["text"] == "qrs"
    assert controls["text"] == "bell back cr tab\tend"
    # Colours with no class (256-colour, true colour) and modes clusterm does not render
    # (blink, inverse) leave the text plain.
    assert extended["text"] == "pink rgb blink"
    assert extended["elements"] == []
    assert cut["text"] == "half 31"
    for line in (cursor, title, charset, controls, extended, cut):
        assert "\x1b" not in line["text"]


GAP_PIECE = {
    "id": 7,
    "logs": [
        "first",
        "second",
        "[clusterm: 90 lines (9000 bytes), lines 3-92, were dropped here]",
        "\x1b[32mtail\x1b[0m",
    ],
    "first_line": 1,
    "next_line": 94,
    "gap": {"after_line": 2, "lines": 90, "bytes": 9000},
    "dropped_lines": 90,
    "dropped_bytes": 9000,
    "complete": True,
}


def test_a_log_with_its_middle_dropped_shows_the_gap_in_place(
    shell: tuple[Page, list[str]],
) -> None:
    page, _ = shell
    shown: dict[str, Any] = page.evaluate(
        """async (piece) => {
          const { JobLog } = await import("/ui/assets/joblog.js");
          const log = new JobLog(piece.id);
          document.body.append(log.element);
          log.show(piece);
          const items = [...log.pre.children].map((el) => ({
            line: el.dataset.line ?? null,
            gap: el.dataset.testid === "log-gap",
            text: el.textContent,
          }));
          return { items, earlier: !log.earlierButton.hidden, text: log.pre.textContent };
        }""",
        GAP_PIECE,
    )
    assert shown["items"] == [
        {"line": "1", "gap": False, "text": "first"},
        {"line": "2", "gap": False, "text": "second"},
        {
            "line": None,
            "gap": True,
            "text": "… 90 lines dropped here (lines 3-92, 9000 bytes): the job printed more "
            "than its log keeps …",
        },
        {"line": "93", "gap": False, "text": "tail"},
    ]
    assert shown["earlier"] is False  # line 1 is shown: nothing earlier to load
    assert shown["text"].splitlines()[-1] == "tail"
