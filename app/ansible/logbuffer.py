"""The log of one job: numbered lines in memory, bounded, mirrored to a spool file on disk.

Lines are numbered from 1 and a number never changes, so a client's cursor (`since=N`: the lines
after N) stays valid however much the job prints.

Truncation rule. The log keeps at most `cap_bytes` of text: the *head* (the first half of the
cap: how the job started) is kept for good, the *tail* (the other half: the most recent lines)
slides. When the tail drops lines, one gap opens between head and tail; readers get one marker
line there saying how many lines and bytes were dropped. A single line longer than a sixteenth
of the cap is cut, so one runaway line cannot push out everything else.

Cost. Appending is O(1) amortised (the tail is a list with a moving start, compacted when half of
it is dead) and so is locating `since`: a read costs what it returns, never the whole log.

Spool. Every line also goes to files in the job's directory, flushed after each batch, so a
restarted daemon (even after `kill -9`) can serve the log again: `head.log`, then `tail.log`
whose first line names the number of its first line. The tail file is rewritten from memory
whenever it grows past twice the tail's size, which keeps the disk bounded like the memory.
`done` marks a log that was closed: nothing more will come.
"""

from __future__ import annotations

import io
import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path

HEAD_FILE, TAIL_FILE, DONE_FILE = "head.log", "tail.log", "done"
_TAIL_HEADER = b"#clusterm-tail "


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


class LogBuffer:
    """Written by one thread (the job's), read by any number."""

    def __init__(self, *, cap_bytes: int, spool_dir: Path | None = None) -> None:
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
        self._spool_dir = spool_dir
        self._spool: io.FileIO | None = None
        self._spool_tail_bytes = 0
        if spool_dir is not None:
            spool_dir.mkdir(parents=True, exist_ok=True)
            self._spool = _append(spool_dir / HEAD_FILE)

    # --- writing (the job's thread) --------------------------------------------------------------

    def append_text(self, text: str) -> None:
        """Append the lines of `text` (an event's stdout: lines joined by CRLF or LF)."""
        self.append_lines(text.replace("\r\n", "\n").split("\n"))

    def append_lines(self, lines: list[str]) -> None:
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
            taken, sealed_now = 0, False
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
                    self._sealed, sealed_now = True, True
                    self._tail_first = self._next + taken
            if taken < len(kept):
                rest = sizes[taken:]
                self._tail.extend(kept[taken:])
                self._tail_sizes.extend(rest)
                self._tail_bytes += sum(rest)
                self._evict()
            self._next += len(kept)
        if self._spool is None:
            return
        if sealed_now:
            # The batch's head lines end head.log; the rest start tail.log.
            self._spool_write(kept[:taken])
            self._spool.close()
            self._spool = self._open_tail_spool([], self._next - len(kept) + taken, dropped=0)
            kept = kept[taken:]
        self._spool_write(kept)

    def close(self, final_lines: list[str] | None = None) -> None:
        """Append the last lines, mark the log complete (on disk too): nothing more will come."""
        if final_lines:
            self.append_lines(final_lines)
        with self._lock:
            self._complete = True
        if self._spool is not None:
            self._spool.close()
            self._spool = None
        if self._spool_dir is not None:
            done = {"next_line": self._next, "dropped_bytes": self._dropped_bytes}
            (self._spool_dir / DONE_FILE).write_text(json.dumps(done))

    def _evict(self) -> None:
        sizes, start, last = self._tail_sizes, self._tail_start, len(self._tail) - 1
        tail_bytes, dropped = self._tail_bytes, 0
        while tail_bytes > self._tail_cap and start < last:  # the newest line always stays
            tail_bytes -= sizes[start]
            dropped += sizes[start]
            start += 1
        self._tail_first += start - self._tail_start
        self._tail_start, self._tail_bytes = start, tail_bytes
        self._dropped_bytes += dropped
        if start > 1024 and start * 2 > len(self._tail):
            self._tail = self._tail[start:]
            self._tail_sizes = self._tail_sizes[start:]
            self._tail_start = 0

    def _spool_write(self, lines: list[str]) -> None:
        if self._spool is None or not lines:
            return
        data = ("\n".join(lines) + "\n").encode("utf-8")
        # Unbuffered: one write(2) per batch, so a `kill -9` loses nothing already served.
        self._spool.write(data)
        if self._sealed:
            self._spool_tail_bytes += len(data)
            if self._spool_tail_bytes > 2 * self._tail_cap + 65536:
                with self._lock:
                    live, first = self._tail[self._tail_start :], self._tail_first
                    dropped = self._dropped_bytes
                self._spool.close()
                self._spool = self._open_tail_spool(live, first, dropped=dropped)

    def _open_tail_spool(self, lines: list[str], first: int, *, dropped: int) -> io.FileIO:
        """(Re)write tail.log: a header naming its first line's number, then `lines`."""
        assert self._spool_dir is not None
        path = self._spool_dir / TAIL_FILE
        tmp = path.with_suffix(".tmp")
        header = _TAIL_HEADER + json.dumps({"first": first, "dropped_bytes": dropped}).encode()
        body = "".join(f"{line}\n" for line in lines).encode("utf-8")
        tmp.write_bytes(header + b"\n" + body)
        os.replace(tmp, path)
        self._spool_tail_bytes = len(body)
        return _append(path)

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

    # --- restart ---------------------------------------------------------------------------------

    @classmethod
    def load(cls, spool_dir: Path, *, cap_bytes: int) -> LogBuffer:
        """Rebuild a log from its spool; it stays open for appends unless it was closed."""
        buf = cls(cap_bytes=cap_bytes)
        buf._spool_dir = spool_dir
        head_path, tail_path = spool_dir / HEAD_FILE, spool_dir / TAIL_FILE
        head = _read_lines(head_path)
        buf._head = head
        buf._head_bytes = sum(_size(line) for line in head)
        buf._next = len(head) + 1
        buf._tail_first = buf._next
        if tail_path.exists():
            raw = tail_path.read_bytes()
            header, _, body = raw.partition(b"\n")
            meta = (
                json.loads(header[len(_TAIL_HEADER) :]) if header.startswith(_TAIL_HEADER) else {}
            )
            buf._sealed = True
            buf._tail_first = buf._next = int(meta.get("first", buf._next))
            buf._dropped_bytes = int(meta.get("dropped_bytes", 0))
            buf._spool_tail_bytes = len(body)
            lines = _split(body)
            buf._tail = lines
            buf._tail_sizes = [_size(line) for line in lines]
            buf._tail_bytes = sum(buf._tail_sizes)
            buf._next += len(lines)
            buf._evict()
        if (spool_dir / DONE_FILE).exists():
            buf._complete = True
        else:
            path = tail_path if buf._sealed else head_path
            buf._spool = _append(path)
        return buf


def _append(path: Path) -> io.FileIO:
    # Held open for the job's life; closed by close().
    return io.FileIO(path, "ab")


def _split(data: bytes) -> list[str]:
    if not data:
        return []
    text = data.decode("utf-8", "replace")
    return text[:-1].split("\n") if text.endswith("\n") else text.split("\n")


def _read_lines(path: Path) -> list[str]:
    try:
        return _split(path.read_bytes())
    except FileNotFoundError:
        return []
