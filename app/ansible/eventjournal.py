"""The events' data as clusterm's display callback journals it, read back in runner's read loop
(docs/contracts.md#runner-display-callback).

ansible-runner's own callback creates one file per event for its data; clusterm's
(app/ansible/callback/awx_display.py) appends each event's data as one JSON line to segment
files in a directory clusterm names, `00000000.jsonl`, `00000001.jsonl`... runner then finds no
partial file for the event (it goes on without, as it does for any event whose file is missing)
and hands the event, its lines and the uuid of its token, to clusterm's handler, in front of
which `EventJournal.merging` puts the data back as runner would have: the data wins over what
the token carried.

Why the order is safe: the callback writes an event's line before it prints the event's first
token, and runner calls the handler at the event's last token, so the line is in the file by
then. The lines come in the order the callback wrote them; tokens printed on stderr can reach
runner out of that order, so lines read ahead of their event wait in `pending`.

A segment is whole once the next one exists (the callback creates it only after closing the
last). The reader deletes each whole segment once read, so the journal's disk use stays about
one segment, and `close` removes the rest.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

# The environment variable that names the directory, for the callback (which spells the same
# name and file names: it runs in ansible-playbook and imports nothing of clusterm's).
JOURNAL_ENV = "CLUSTERM_EVENT_JOURNAL"

# Lines read and not claimed by any event: only a run cut short (cancel, timeout) leaves them,
# and a bound keeps a misbehaving callback from growing the read loop's memory.
MAX_PENDING = 1000


def segment_name(number: int) -> str:
    return f"{number:08d}.jsonl"


class EventJournal:
    """The reading end, in the process that runs ansible-runner. Not thread-safe: runner calls
    its handler from its one read loop."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.segment = 0
        self.file: IO[bytes] | None = None
        self.tail = b""  # the start of a line whose end is not written yet
        self.pending: dict[str, dict[str, Any]] = {}

    def create(self) -> Path:
        """Make the (empty, private) directory; returns it, for the callback's environment."""
        shutil.rmtree(self.directory, ignore_errors=True)
        self.directory.mkdir(mode=0o700, parents=True)
        return self.directory

    def take(self, uuid: object) -> dict[str, Any] | None:
        """The data journaled for the event `uuid`, once; None when the journal has none (runner's
        own callback ran, or the event was printed outside any callback)."""
        if not isinstance(uuid, str):
            return None
        while uuid not in self.pending:
            if not self._read_more():
                return None
        return self.pending.pop(uuid)

    def merging(
        self, handler: Callable[[dict[str, Any]], bool]
    ) -> Callable[[dict[str, Any]], bool]:
        """runner's event handler: each event completed with its journaled data, then `handler`."""

        def on_event(event: dict[str, Any]) -> bool:
            data = self.take(event.get("uuid"))
            if data is not None:
                event.update(data)  # as runner merges its partial file: the data wins
            return handler(event)

        return on_event

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
            self.file = None
        self.pending.clear()
        shutil.rmtree(self.directory, ignore_errors=True)

    def _read_more(self) -> bool:
        """Read what the callback has written since; False when nothing more is there."""
        if self.file is None:
            try:
                self.file = (self.directory / segment_name(self.segment)).open("rb")
            except FileNotFoundError:
                return False
        if self._take_lines(self.file.read()):
            return True
        if not (self.directory / segment_name(self.segment + 1)).exists():
            return False
        # This segment is whole: what it got since the read above, then the next one.
        self._take_lines(self.file.read())
        self.file.close()
        (self.directory / segment_name(self.segment)).unlink()
        self.segment += 1
        self.file = None
        self.tail = b""
        return True

    def _take_lines(self, chunk: bytes) -> bool:
        if not chunk:
            return False
        lines = (self.tail + chunk).split(b"\n")
        self.tail = lines.pop()
        for line in lines:
            data = json.loads(line)
            self.pending[str(data.get("uuid"))] = data
        while len(self.pending) > MAX_PENDING:
            del self.pending[next(iter(self.pending))]
        return True
