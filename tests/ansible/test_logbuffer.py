"""The log buffer: numbering, cursors, the cap's head/marker/tail rule, and a copy rebuilt from
what a writer stored (the database side of it: tests/jobs/test_logstore.py)."""

from __future__ import annotations

import os
from pathlib import Path

from app.ansible.logbuffer import LogBuffer, LogSlice, Pending, clean_line


def test_lines_are_numbered_from_one_and_read_after_a_cursor() -> None:
    buf = LogBuffer(cap_bytes=1 << 20)
    buf.append_text("\r\nPLAY [x]\r\nok: [a]")
    buf.append_text("done")
    assert buf.read().lines == ["", "PLAY [x]", "ok: [a]", "done"]
    piece = buf.read(since=2)
    assert (piece.lines, piece.first_line, piece.next_line) == (["ok: [a]", "done"], 3, 5)
    assert buf.read(since=4).lines == []
    assert buf.read(since=4).next_line == 5
    assert buf.read(tail=1).lines == ["done"]
    assert buf.read(since=1, limit=2).lines == ["PLAY [x]", "ok: [a]"]
    assert buf.read(since=1, limit=2).next_line == 4
    assert not buf.read().complete
    buf.close(["end"])
    assert buf.read().complete
    assert buf.read().lines[-1] == "end"


def test_past_the_cap_head_marker_and_tail_keep_absolute_numbers() -> None:
    cap = 64 * 1024
    buf = LogBuffer(cap_bytes=cap)
    total = 20_000
    for start in range(0, total, 100):
        buf.append_lines([f"line {n:06d}" for n in range(start + 1, start + 101)])
    piece = buf.read()
    head = [line for line in piece.lines if line.startswith("line")]
    assert piece.gap is not None
    assert piece.dropped_lines == piece.gap.lines > 0
    kept_bytes = sum(len(line) + 1 for line in head)
    assert kept_bytes <= cap
    # Head: lines 1..k in order; then the one marker; then the most recent lines up to 20000.
    marker_at = piece.lines.index(piece.gap.marker(cap))
    assert piece.lines[0] == "line 000001"
    assert piece.lines[marker_at - 1] == f"line {piece.gap.after_line:06d}"
    first_tail = piece.gap.after_line + piece.gap.lines + 1
    assert piece.lines[marker_at + 1] == f"line {first_tail:06d}"
    assert piece.lines[-1] == f"line {total:06d}"
    assert f"{piece.gap.lines} lines" in piece.lines[marker_at]
    assert piece.dropped_bytes == piece.gap.bytes == 12 * piece.gap.lines
    # Every line carries its absolute number; `since` works across the gap.
    numbered = dict(n for n in piece.numbered() if n[0] is not None)
    assert all(line == f"line {n:06d}" for n, line in numbered.items())
    assert buf.read(since=total - 3).lines == [f"line {n:06d}" for n in range(total - 2, total + 1)]
    inside_gap = buf.read(since=piece.gap.after_line + 5)
    assert inside_gap.lines[0].startswith("[clusterm:")
    assert inside_gap.first_line == first_tail
    assert buf.read(since=first_tail).gap is None


def test_fifty_megabytes_keep_memory_bounded() -> None:
    cap = 1024 * 1024
    buf = LogBuffer(cap_bytes=cap)
    before = rss_bytes()
    for batch in range(500):  # 50 MB, as fresh strings (as runner's events are)
        buf.append_lines([f"{batch:04d}{n:04d}" + "x" * 91 for n in range(1000)])
    # Holding it all would take more than 50 MB more; the cap (plus Python's per-string
    # overhead, and allocator slack) keeps the growth to a few MB.
    assert rss_bytes() - before < 12 * cap
    piece = buf.read()
    assert piece.dropped_lines > 480_000
    assert piece.next_line == 500_001
    # What a writer that stored nothing yet would store now: the head and the tail, no more.
    pending = buf.pending(1)
    assert sum(len(line) + 1 for _, run in pending.runs for line in run) <= cap
    buf.close()
    assert piece.lines[-1] == "04990999" + "x" * 91


def rss_bytes() -> int:
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE")


def same(a: LogSlice, b: LogSlice) -> None:
    assert (a.lines, a.first_line, a.next_line, a.gap) == (
        b.lines,
        b.first_line,
        b.next_line,
        b.gap,
    )
    assert (a.dropped_lines, a.dropped_bytes, a.complete) == (
        b.dropped_lines,
        b.dropped_bytes,
        b.complete,
    )


class Store:
    """A writer's side in memory: the runs stored so far and the shape last written, as the
    database keeps them (a run wholly evicted from the tail is deleted)."""

    def __init__(self) -> None:
        self.runs: list[tuple[int, list[str]]] = []
        self.shape = Pending([], 1, None, 1, 0, False)
        self.stored = 1

    def flush(self, buf: LogBuffer) -> None:
        pending = buf.pending(self.stored)
        self.runs.extend(pending.runs)
        head = pending.head_lines
        if head is not None:
            self.runs = [
                (f, r) for f, r in self.runs if f <= head or f + len(r) - 1 >= pending.tail_first
            ]
        self.shape, self.stored = pending, pending.next_line

    def after(self, line: int) -> list[tuple[int, list[str]]]:
        return [(f, r) for f, r in self.runs if f + len(r) - 1 >= line]


def test_a_copy_rebuilt_from_stored_runs_reads_like_the_buffer() -> None:
    cap = 16 * 1024
    buf, store = LogBuffer(cap_bytes=cap), Store()
    copy = LogBuffer(cap_bytes=cap)
    n = 0
    for batch in range(300):
        size = 3 if batch % 7 else 40  # now and then a burst the tail drops before a flush
        buf.append_lines([f"line {k}" + ("\u00e9" * (k % 3)) for k in range(n + 1, n + size + 1)])
        n += size
        if batch % 5 == 0:
            buf.append_lines(["y" * 5000])  # cut at a sixteenth of the cap
            n += 1
        if batch % 4 == 0:
            store.flush(buf)
            # Brought up to date with what lies past it, as a replica's cached copy is.
            assert copy.extend_stored(store.after(copy.next_line), store.shape)
            same(copy.read(), buf.read())
    buf.close(["[end]"])
    store.flush(buf)
    assert store.shape.complete
    assert copy.extend_stored(store.after(copy.next_line), store.shape)
    fresh = LogBuffer(cap_bytes=cap)
    assert fresh.extend_stored(store.after(1), store.shape)
    for rebuilt in (copy, fresh):
        same(rebuilt.read(), buf.read())
        for since in (0, 5, buf.next_line - 10, buf.next_line - 1):
            same(rebuilt.read(since=since, limit=50), buf.read(since=since, limit=50))
        same(rebuilt.read(tail=7), buf.read(tail=7))
    full = buf.read()
    assert full.gap is not None
    assert any(line.endswith(f"[clusterm: line cut at {cap // 16} chars]") for line in full.lines)


def test_a_stale_copy_catches_up_across_the_lines_the_tail_dropped_meanwhile() -> None:
    cap = 8 * 1024
    buf, store = LogBuffer(cap_bytes=cap), Store()
    buf.append_lines([f"line {k}" for k in range(1, 2000)])
    store.flush(buf)
    stale = LogBuffer(cap_bytes=cap)
    assert stale.extend_stored(store.after(1), store.shape)
    for start in range(2000, 6000, 500):  # flushes the stale copy never saw
        buf.append_lines([f"line {k}" for k in range(start, start + 500)])
        store.flush(buf)
    assert store.after(stale.next_line)[0][0] > stale.next_line  # its next lines are gone
    assert stale.extend_stored(store.after(stale.next_line), store.shape)
    same(stale.read(), buf.read())
    # Lines missing from the head, though, cannot be made up for: the caller rebuilds.
    assert not LogBuffer(cap_bytes=cap).extend_stored(store.runs[1:], store.shape)


def test_invalid_utf8_and_runaway_lines() -> None:
    undecodable = b"caf\xe9 \xff!".decode("utf-8", "surrogateescape")
    assert clean_line(undecodable) == "caf\ufffd \ufffd!"
    assert clean_line("caf\u00e9") == "caf\u00e9"
    buf = LogBuffer(cap_bytes=64 * 1024)
    buf.append_lines([undecodable, "y" * 100_000])
    lines = buf.read().lines
    assert lines[0] == "caf\ufffd \ufffd!"
    lines[0].encode("utf-8")  # never raises: every line can be sent as UTF-8
    assert len(lines[1]) < 5000
    assert lines[1].endswith("chars]")
