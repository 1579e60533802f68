"""The log of one job: numbered lines in memory, bounded.

Lines are numbered from 1 and a number never changes, so a client's cursor (`since=N`: the lines
after N) stays valid however much the job prints.

Truncation rule. The log keeps at most `cap_bytes` of text: the *head* (the first half of the
cap: how the job started) is kept for good, the *tail* (the other half: the most recent lines)
slides. When the tail drops lines, one gap opens between head and tail; readers get one marker
line there saying how many lines and bytes were dropped. A single line longer than a sixteenth
of the cap is cut, so one runaway line cannot push out everything else.

Cost. Appending is O(1) amortised (the tail is a list with a moving start, compacted when half of
it is dead) and so is locating `since`: a read costs what it returns, never the whole log.

Two ways in. The job's own buffer takes output (`append_text`, `append_lines`): it cuts lines and
applies the rule. A copy rebuilt from a stored log (`stored`, then `extend_stored`) takes lines
already cut and a shape already decided (how many head lines, where the tail starts), so it is
the same log, line for line, wherever it is rebuilt. `pending` hands the writer of the stored
log what it has not written yet.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from app import instruments


def _size(line: str) -> int:
    # Bytes as UTF-8, plus the newline; the ASCII test keeps the common case cheap.
    return len(line) + 1 if line.isascii() else len(line.encode("utf-8")) + 1


def clean_line(line: str) -> str:
    """A line that encodes as UTF-8: lone surrogates (from undecodable output) become U+FFFD."""
    if line.isascii():
        return line
    try:
        line.encode("utf-8")
        return line
    except UnicodeEncodeError:
        pass
    try:
        # Undecodable bytes arrive as U+DC80..U+DCFF (surrogateescape): turn them back into
        # bytes, then decode those as U+FFFD, as a terminal would show them.
        return line.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    except UnicodeEncodeError:
        return line.encode("utf-8", "replace").decode("utf-8")


@dataclass(frozen=True)
class Gap:
    after_line: int  # the last line kept before the gap
    lines: int
    bytes: int

    def marker(self, cap_bytes: int) -> str:
        first, last = self.after_line + 1, self.after_line + self.lines
        return (
            f"[clusterm: {self.lines} lines ({self.bytes} bytes), lines {first}-{last}, were "
            f"dropped here: the job printed more than its log keeps ({cap_bytes} bytes)]"
        )


@dataclass(frozen=True)
class LogSlice:
    lines: list[str]  # with the marker line in place of the gap when the slice spans it
    first_line: int | None  # the number of the first real line in `lines`
    next_line: int  # one past the last line covered: continue with since=next_line - 1
    gap: Gap | None  # set when `lines` holds the marker
    dropped_lines: int
    dropped_bytes: int
    complete: bool  # the log is closed and this slice reaches its end

    def numbered(self) -> list[tuple[int | None, str]]:
        """Each line with its number; the marker line gets None."""
        out: list[tuple[int | None, str]] = []
        number = self.first_line or 0
        head_count = 0
        if self.gap is not None and self.first_line is not None:
            head_count = max(self.gap.after_line - self.first_line + 1, 0)
        for index, line in enumerate(self.lines):
            if self.gap is not None and index == head_count:
                out.append((None, line))
                number = self.gap.after_line + self.gap.lines + 1
                continue
            out.append((number, line))
            number += 1
        return out


@dataclass(frozen=True)
class Pending:
    """What a stored copy of the log lacks: runs of consecutive lines, each (first number,
    lines), and where the log stands. A run ends where the tail dropped lines nobody stored."""

    runs: list[tuple[int, list[str]]]
    next_line: int
    head_lines: int | None  # the head's length once sealed (a line went to the tail)
    tail_first: int
    dropped_bytes: int
    complete: bool


class LogBuffer:
    """Written by one thread (the job's, or whoever rebuilds a stored log), read by any number."""

    def __init__(self, *, cap_bytes: int) -> None:
        self.cap_bytes = cap_bytes
        self._head_cap = cap_bytes // 2
        self._tail_cap = cap_bytes - self._head_cap
        self._max_line = max(256, cap_bytes // 16)
        self._lock = threading.Lock()
        self._head: list[str] = []
        self._head_bytes = 0
        self._sealed = False  # once a line has gone to the tail, the head takes no more
        self._tail: list[str] = []
        self._tail_sizes: list[int] = []  # the UTF-8 size of each line of _tail, newline included
        self._tail_start = 0
        self._tail_first = 1  # the number of self._tail[self._tail_start]
        self._tail_bytes = 0
        self._next = 1
        self._dropped_bytes = 0
        self._complete = False

    # --- writing (the job's thread) --------------------------------------------------------------

    def append_text(self, text: str) -> None:
        """Append the lines of `text` (an event's stdout: lines joined by CRLF or LF)."""
        self.append_lines(text.replace("\r\n", "\n").split("\n"))

    def append_lines(self, lines: list[str], *, counted: bool = True) -> None:
        # Sizes and clean-ups outside the lock; inside it, only list appends and counters.
        cut = self._max_line
        kept: list[str] = []
        sizes: list[int] = []
        for line in lines:
            if line.isascii():
                size = len(line) + 1
            else:
                line = clean_line(line)
                size = len(line.encode("utf-8")) + 1
            if size > cut + 1:
                line = f"{line[:cut]} [clusterm: line cut at {cut} chars]"
                size = _size(line)
            kept.append(line)
            sizes.append(size)
        with self._lock:
            if self._complete:
                raise RuntimeError("this log is closed")
            taken = 0
            if not self._sealed:
                room = self._head_cap - self._head_bytes
                for size in sizes:
                    if size > room:
                        break
                    room -= size
                    taken += 1
                self._head.extend(kept if taken == len(kept) else kept[:taken])
                self._head_bytes = self._head_cap - room
                if taken < len(kept):
                    self._sealed = True
                    self._tail_first = self._next + taken
            if taken < len(kept):
                rest = sizes[taken:]
                self._tail.extend(kept[taken:])
                self._tail_sizes.extend(rest)
                self._tail_bytes += sum(rest)
                self._evict()
            self._next += len(kept)
        if counted:
            # Per batch, outside the lock: what this replica's job runner took (app.instruments).
            instruments.LOG_LINES.inc(len(kept))
            instruments.LOG_BYTES.inc(sum(sizes))

    def close(self, final_lines: list[str] | None = None, *, counted: bool = True) -> None:
        """Append the last lines and mark the log complete: nothing more will come.

        `counted=False`: lines no playbook printed (a replica's placeholder for a log no longer
        kept), left out of the job log metrics."""
        if final_lines:
            self.append_lines(final_lines, counted=counted)
        with self._lock:
            self._complete = True

    def _evict(self) -> None:
        sizes, start, last = self._tail_sizes, self._tail_start, len(self._tail) - 1
        tail_bytes, dropped = self._tail_bytes, 0
        while tail_bytes > self._tail_cap and start < last:  # the newest line always stays
            tail_bytes -= sizes[start]
            dropped += sizes[start]
            start += 1
        if start > self._tail_start:
            instruments.LOG_DROPPED_LINES.inc(start - self._tail_start)
        self._tail_first += start - self._tail_start
        self._tail_start, self._tail_bytes = start, tail_bytes
        self._dropped_bytes += dropped
        self._compact()

    def _compact(self) -> None:
        start = self._tail_start
        if start > 1024 and start * 2 > len(self._tail):
            self._tail = self._tail[start:]
            self._tail_sizes = self._tail_sizes[start:]
            self._tail_start = 0

    def pending(self, after: int) -> Pending:
        """The lines numbered `after` and up that are still kept, and the log's shape now."""
        with self._lock:
            runs: list[tuple[int, list[str]]] = []
            head_len = len(self._head)
            if after <= head_len:
                runs.append((after, self._head[after - 1 :]))
            if self._sealed:
                begin = max(after, self._tail_first)
                if begin < self._next:
                    index = self._tail_start + begin - self._tail_first
                    runs.append((begin, self._tail[index:]))
            return Pending(
                runs=runs,
                next_line=self._next,
                head_lines=head_len if self._sealed else None,
                tail_first=self._tail_first if self._sealed else self._next,
                dropped_bytes=self._dropped_bytes,
                complete=self._complete,
            )

    # --- a stored log, rebuilt -------------------------------------------------------------------

    def extend_stored(self, runs: list[tuple[int, list[str]]], shape: Pending) -> bool:
        """Bring a copy of a stored log up to `shape` with the stored `runs` (in order; lines
        this copy already holds are skipped). The lines are taken as they are: they were cut
        when they were first written. False when a line this copy needs is not in `runs` (it
        was evicted since the copy was last brought up to date): rebuild it from the start."""
        with self._lock:
            head_lines = shape.head_lines
            if head_lines is not None and len(self._head) > head_lines:
                return False
            for first, lines in runs:
                begin = max(first, self._next)
                if begin >= first + len(lines):
                    continue
                if begin > self._next:
                    # Lines nobody stored in between: only the tail's dropped lines may be.
                    if head_lines is None or self._next <= head_lines or begin > shape.tail_first:
                        return False
                    self._tail, self._tail_sizes, self._tail_start = [], [], 0
                    self._tail_bytes, self._tail_first, self._next = 0, begin, begin
                fresh = lines[begin - first :]
                to_head = 0
                if not self._sealed:
                    to_head = len(fresh) if head_lines is None else head_lines - begin + 1
                    to_head = min(max(to_head, 0), len(fresh))
                    self._head.extend(fresh[:to_head])
                    self._head_bytes += sum(_size(line) for line in fresh[:to_head])
                if to_head < len(fresh):
                    if not self._sealed:
                        self._sealed, self._tail_first = True, begin + to_head
                    rest = fresh[to_head:]
                    sizes = [_size(line) for line in rest]
                    self._tail.extend(rest)
                    self._tail_sizes.extend(sizes)
                    self._tail_bytes += sum(sizes)
                self._next = begin + len(fresh)
            if head_lines is not None and not self._sealed:
                self._sealed, self._tail_first = True, self._next
            if self._sealed and shape.tail_first > self._tail_first:
                live = len(self._tail) - self._tail_start
                gone = min(shape.tail_first - self._tail_first, live)
                self._tail_bytes -= sum(
                    self._tail_sizes[self._tail_start : self._tail_start + gone]
                )
                self._tail_start += gone
                self._tail_first += gone
                if gone == live:  # the whole tail went: it starts where the stored one does
                    self._tail_first = max(self._tail_first, min(shape.tail_first, self._next))
                self._compact()
            self._dropped_bytes = shape.dropped_bytes
            self._complete = shape.complete
            return self._next == shape.next_line

    # --- reading (any thread) --------------------------------------------------------------------

    @property
    def next_line(self) -> int:
        return self._next

    @property
    def complete(self) -> bool:
        return self._complete

    def read(
        self, *, since: int = 0, tail: int | None = None, limit: int | None = None
    ) -> LogSlice:
        """The lines after `since`; with `tail`, only the last `tail` of those kept; with
        `limit`, at most that many lines from the start (the marker line not counted)."""
        with self._lock:
            head_len = len(self._head)
            tail_len = len(self._tail) - self._tail_start
            last = self._next - 1
            start = max(since, 0) + 1
            if tail is not None:
                if tail <= tail_len:
                    start = max(start, last - tail + 1)
                else:
                    start = max(start, head_len - (tail - tail_len) + 1)
            room = limit if limit is not None else last + 1
            lines: list[str] = []
            first_line = None
            end_no = min(last, start - 1)  # the number of the last line covered
            if start <= head_len:
                end = min(head_len, start - 1 + room)
                lines = self._head[start - 1 : end]
                first_line, end_no, room = start, end, room - (end - start + 1)
            gap = self._gap_locked()
            shown_gap = None
            if gap is not None and start <= gap.after_line + gap.lines and room > 0:
                shown_gap = gap
                lines.append(gap.marker(self.cap_bytes))
                end_no = gap.after_line + gap.lines
            if self._sealed and tail_len and room > 0:
                begin = self._tail_start + max(start - self._tail_first, 0)
                rest = self._tail[begin : begin + room]
                if rest:
                    if first_line is None:
                        first_line = self._tail_first + begin - self._tail_start
                    end_no = self._tail_first + begin - self._tail_start + len(rest) - 1
                    lines.extend(rest)
            return LogSlice(
                lines=lines,
                first_line=first_line,
                next_line=end_no + 1,
                gap=shown_gap,
                dropped_lines=gap.lines if gap else 0,
                dropped_bytes=self._dropped_bytes,
                complete=self._complete and end_no >= last,
            )

    def _gap_locked(self) -> Gap | None:
        dropped = self._tail_first - len(self._head) - 1 if self._sealed else 0
        if dropped <= 0:
            return None
        return Gap(after_line=len(self._head), lines=dropped, bytes=self._dropped_bytes)
