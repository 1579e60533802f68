"""The streaming .tar.gz writer and its spools (the timeline's pages come newest first)."""

from __future__ import annotations

import io
import random
import tarfile

from app.support.tarstream import SPOOL_MEMORY_BYTES, Spool, TarGzStream


def test_pages_written_newest_first_are_sent_oldest_first() -> None:
    spool = Spool()
    pages = [[f"event {n}\n" for n in range(first, first + 1000)] for first in (2000, 1000, 0)]
    for page in pages:  # newest page first, each page oldest first (as the bundle writes them)
        spool.write_text("".join(page))
    assert spool.size > SPOOL_MEMORY_BYTES / 100
    tar = TarGzStream(prefix="b", mtime=0)
    sent = b"".join([*tar.spooled("t.txt", spool, blocks_reversed=True), *tar.close()])
    spool.close()
    with tarfile.open(fileobj=io.BytesIO(sent), mode="r:gz") as archive:
        member = archive.extractfile("b/t.txt")
        assert member is not None
        lines = member.read().decode().splitlines()
    assert lines == [f"event {n}" for n in range(3000)]


def test_a_spools_tail_keeps_whole_newest_lines() -> None:
    spool = Spool()
    for n in range(100_000):  # past the memory threshold: a temporary file
        spool.write_text(f"line {n}\n")
    cut = spool.tail(1000)
    spool_text = b"".join(cut.chunks()).decode()
    cut.close()  # the tail closed the spool it was cut from
    assert len(spool_text) <= 1000
    assert spool_text.endswith("line 99999\n")
    assert spool_text.startswith("line ")  # whole lines only
    numbers = [int(line.split()[1]) for line in spool_text.splitlines()]
    assert numbers == list(range(numbers[0], 100_000))


def test_many_members_make_one_valid_archive_in_many_pieces() -> None:
    tar = TarGzStream(prefix="b", mtime=0)
    pieces: list[bytes] = []
    expected = {}
    for n in range(20):
        data = random.Random(n).randbytes(50_000 + n)  # incompressible: output comes at once
        expected[f"b/m{n}"] = data
        spool = Spool()
        spool.write(data)
        pieces.extend(tar.spooled(f"m{n}", spool))
        spool.close()
    pieces.extend(tar.close())
    assert len(pieces) > 10
    with tarfile.open(fileobj=io.BytesIO(b"".join(pieces)), mode="r:gz") as archive:
        got = {}
        for m in archive.getmembers():
            extracted = archive.extractfile(m)
            assert extracted is not None
            got[m.name] = extracted.read()
    assert got == expected
