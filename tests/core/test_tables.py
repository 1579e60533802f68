"""The text tables every `format=text` answer is made of."""

from __future__ import annotations

import datetime as dt

import pytest

from app.tables import render_table, wants_text


def test_columns_line_up_under_their_headers() -> None:
    text = render_table(["NAME", "STATE"], [["w1", "commissioned"], ["worker-long-name", None]])
    assert text == (
        "NAME              STATE\nw1                commissioned\nworker-long-name  -\n"
    )


def test_every_cell_is_one_line_and_a_string() -> None:
    when = dt.datetime(2026, 11, 30, 7, 5, 9, 123456, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    text = render_table(
        ["A", "B", "C", "D", "E"],
        [["line one\nline two\r\nthree", 3, {"zone": "b", "rack": 1}, when, ""]],
    )
    lines = text.splitlines()
    assert len(lines) == 2
    assert lines[1].split("  ") == [
        "line one line two three",
        "3",
        "rack=1,zone=b",
        "2026-11-30 05:05:09",  # UTC, to the second
        "-",
    ]


def test_control_characters_cannot_skew_a_column_or_drive_a_terminal() -> None:
    text = render_table(["A", "B"], [["a\tb\x1b]0;owned\x07", frozenset({"y", "x"})]])
    assert text.splitlines()[1] == "a b ]0;owned  x,y"
    assert "\x1b" not in text


def test_only_headers_when_there_are_no_rows() -> None:
    assert render_table(["NODE", "LEVEL"], []) == "NODE  LEVEL\n"


def test_a_row_of_the_wrong_width_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="2 cells for 3 columns"):
        render_table(["A", "B", "C"], [["1", "2"]])


@pytest.mark.parametrize(
    ("fmt", "accept", "text"),
    [
        (None, None, False),
        ("text", None, True),
        ("json", "text/plain", False),  # the query wins
        ("text", "application/json", True),
        (None, "text/plain", True),
        (None, "Text/Plain; charset=utf-8, application/json", True),
        (None, "application/json, text/plain", False),  # the first choice decides
        (None, "*/*", False),
    ],
)
def test_wants_text(fmt: str | None, accept: str | None, text: bool) -> None:
    assert wants_text(fmt, accept) is text
