"""The reading end of the event journal (app.ansible.eventjournal): each event's data found
once, in any order, across segments, with no segment kept once read and nothing left after
the run. The writing end is clusterm's display callback, exercised through a real playbook at
the bottom and in test_display_callback.py."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from app.ansible import eventjournal, runner
from app.ansible.eventjournal import EventJournal, segment_name
from app.ansible.spec import RunSpec, RunStatus
from tests.ansible.local import local_inventory


def _line(uuid: str, **data: Any) -> bytes:
    return json.dumps({"uuid": uuid, "event": "runner_on_ok", **data}).encode() + b"\n"


def _append(directory: Path, segment: int, data: bytes) -> None:
    with (directory / segment_name(segment)).open("ab") as file:
        file.write(data)


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[EventJournal]:
    journal = EventJournal(tmp_path / "events")
    journal.create()
    yield journal
    journal.close()


def test_each_event_s_data_is_found_once_in_any_order(journal: EventJournal) -> None:
    _append(journal.directory, 0, _line("a", n=1) + _line("b", n=2) + _line("c", n=3))

    assert journal.take("b") == {"uuid": "b", "event": "runner_on_ok", "n": 2}
    assert journal.take("a") == {"uuid": "a", "event": "runner_on_ok", "n": 1}
    assert journal.take("b") is None  # once
    assert journal.take("nosuch") is None  # not there: no wait, no error
    assert journal.take("c") == {"uuid": "c", "event": "runner_on_ok", "n": 3}


def test_a_line_being_written_waits_for_its_end(journal: EventJournal) -> None:
    whole = _line("a", msg="x" * 100)
    _append(journal.directory, 0, whole[:40])

    assert journal.take("a") is None
    _append(journal.directory, 0, whole[40:])
    assert journal.take("a") == {"uuid": "a", "event": "runner_on_ok", "msg": "x" * 100}


def test_a_segment_is_read_to_its_end_and_deleted_once_the_next_exists(
    journal: EventJournal,
) -> None:
    _append(journal.directory, 0, _line("a"))
    assert journal.take("a") is not None
    # Written to the first segment after the reader reached its end, then the second begun.
    _append(journal.directory, 0, _line("b"))
    _append(journal.directory, 1, _line("c"))

    assert journal.take("c") is not None
    assert journal.take("b") is not None
    assert sorted(os.listdir(journal.directory)) == [segment_name(1)]
    journal.close()
    assert not journal.directory.exists()


def test_no_journal_at_all_hands_events_over_unchanged(tmp_path: Path) -> None:
    journal = EventJournal(tmp_path / "never-created")
    seen: list[dict[str, Any]] = []

    def handler(event: dict[str, Any]) -> bool:
        seen.append(dict(event))
        return False

    handle = journal.merging(handler)

    assert handle({"uuid": "a", "event": "verbose", "stdout": "hi"}) is False
    assert handle({"event": "verbose"}) is False  # no uuid at all
    assert seen == [{"uuid": "a", "event": "verbose", "stdout": "hi"}, {"event": "verbose"}]


def test_the_journal_s_data_wins_over_the_token_s_as_runner_merges(journal: EventJournal) -> None:
    _append(journal.directory, 0, _line("a", created="from-callback", event_data={"k": 1}))
    seen: list[dict[str, Any]] = []

    def handler(event: dict[str, Any]) -> bool:
        seen.append(event)
        return False

    handle = journal.merging(handler)

    handle({"uuid": "a", "created": "from-runner", "stdout": "ok", "counter": 3})
    assert seen == [
        {
            "uuid": "a",
            "event": "runner_on_ok",
            "created": "from-callback",
            "event_data": {"k": 1},
            "stdout": "ok",
            "counter": 3,
        }
    ]


def test_lines_no_event_claims_are_bounded(journal: EventJournal) -> None:
    lines = b"".join(_line(f"u{i}") for i in range(eventjournal.MAX_PENDING + 50))
    _append(journal.directory, 0, lines)

    assert journal.take("last-not-there") is None
    assert len(journal.pending) == eventjournal.MAX_PENDING
    assert journal.take("u0") is None  # the oldest were let go
    assert journal.take(f"u{eventjournal.MAX_PENDING + 49}") is not None


# Three tasks on two hosts, each result about 400 kB: about 2.4 MB of event data, so the
# callback fills more than one 1 MiB segment.
BIG_RESULTS = """\
- hosts: all
  gather_facts: false
  tasks:
    - name: "big {{ item }}"
      ansible.builtin.debug:
        msg: "{{ 'x' * 400000 }}"
      loop: [1]
    - ansible.builtin.debug:
        msg: "{{ 'y' * 400000 }}"
    - ansible.builtin.debug:
        msg: "{{ 'z' * 400000 }}"
"""


def test_a_run_whose_data_spans_segments_hands_every_result_over(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "pb.yml").write_text(BIG_RESULTS)
    inventory = local_inventory(tmp_path / "hosts.yml", ("h1", "h2"))
    results: list[dict[str, Any]] = []
    segments_seen: set[str] = set()
    events = tmp_path / "run" / "events"

    def recording(*args: Any, **kwargs: Any) -> Any:
        # In place of clusterm's handler, behind the journal's merge, as run_playbook puts it.
        def on_event(event: dict[str, Any]) -> bool:
            segments_seen.update(os.listdir(events))
            if event.get("event") in ("runner_on_ok", "runner_item_on_ok"):
                results.append(event)
            return False

        return on_event

    monkeypatch.setattr(runner, "event_handler", recording)
    result = runner.run_playbook(
        RunSpec(
            private_data_dir=tmp_path / "run",
            playbook=tmp_path / "pb.yml",
            inventory=inventory,
            extra_vars={},
            env={"PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"},
            timeout_s=120,
        ),
        on_output=lambda line: None,
        should_cancel=lambda: False,
    )

    assert result.status == RunStatus.SUCCESSFUL
    # Per host: the item, the loop's own result ("All items completed"), two tasks.
    messages = sorted(str(e["event_data"]["res"]["msg"]) for e in results)
    assert (
        messages
        == ["All items completed"] * 2
        + ["x" * 400000] * 2
        + ["y" * 400000] * 2
        + ["z" * 400000] * 2
    )
    assert len(segments_seen) >= 2, segments_seen  # the callback went on to a new segment
    assert not events.exists()  # nothing left after the run
    (artifacts,) = (tmp_path / "run" / "artifacts").iterdir()
    assert list((artifacts / "job_events").iterdir()) == []  # and no partial file was made
