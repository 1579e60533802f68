"""The log buffer: numbering, cursors, the cap's head/marker/tail rule, and its spool."""

from __future__ import annotations

import os
from pathlib import Path

from app.ansible.logbuffer import LogBuffer, clean_line


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


def test_fifty_megabytes_keep_memory_bounded(tmp_path: Path) -> None:
    cap = 1024 * 1024
    buf = LogBuffer(cap_bytes=cap, spool_dir=tmp_path / "log")
    before = rss_bytes()
    for batch in range(500):  # 50 MB, as fresh strings (as runner's events are)
        buf.append_lines([f"{batch:04d}{n:04d}" + "x" * 91 for n in range(1000)])
    # Holding it all would take more than 50 MB more; the cap (plus Python's per-string
    # overhead, and allocator slack) keeps the growth to a few MB.
    assert rss_bytes() - before < 12 * cap
    piece = buf.read()
    assert piece.dropped_lines > 480_000
    assert piece.next_line == 500_001
    # The spool on disk is bounded too: the head, and at most ~2x the tail.
    spooled = sum(p.stat().st_size for p in (tmp_path / "log").iterdir())
    assert spooled < 3 * cap
    buf.close()
    assert piece.lines[-1] == "04990999" + "x" * 91


def rss_bytes() -> int:
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE")


def test_the_spool_restores_the_log_after_a_crash(tmp_path: Path) -> None:
    cap = 16 * 1024
    buf = LogBuffer(cap_bytes=cap, spool_dir=tmp_path / "log")
    for n in range(1, 3001, 6):  # batches that straddle the head's end, as events do
        buf.append_lines([f"line {k}" for k in range(n, n + 6)])
    before = buf.read()
    # No close(): as after kill -9.
    again = LogBuffer.load(tmp_path / "log", cap_bytes=cap)
    after = again.read()
    assert not after.complete
    assert after.next_line == before.next_line == 3001
    assert after.lines[-1] == "line 3000"
    assert after.lines[0] == "line 1"
    assert after.gap is not None
    assert before.gap is not None
    assert after.gap.after_line == before.gap.after_line
    assert after.dropped_lines == before.dropped_lines
    assert all(line == f"line {n}" for n, line in after.numbered() if n is not None)
    buf.close()  # (the file handle of the "dead" writer)
    again.close(["[interrupted]"])
    final = LogBuffer.load(tmp_path / "log", cap_bytes=cap).read()
    assert final.complete
    assert final.lines[-1] == "[interrupted]"
    assert final.next_line == 3002


def test_small_log_spool_round_trip(tmp_path: Path) -> None:
    buf = LogBuffer(cap_bytes=1 << 20, spool_dir=tmp_path / "log")
    buf.append_text("a\r\n\x1b[0;32mok\x1b[0m\r\nline with \r carriage return")
    buf.close()
    loaded = LogBuffer.load(tmp_path / "log", cap_bytes=1 << 20).read()
    assert loaded.lines == ["a", "\x1b[0;32mok\x1b[0m", "line with \r carriage return"]
    assert loaded.complete


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
