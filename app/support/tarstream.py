"""A .tar.gz written as it is sent: member after member, through one streaming gzip.

Nothing holds the whole archive. A member's header needs its size, so a member is first written
to a `Spool` (in memory up to `SPOOL_MEMORY_BYTES`, then a temporary file), then sent in chunks of
`CHUNK_BYTES`; the gzip compressor's output goes out as it comes.
"""

from __future__ import annotations

import tarfile
import tempfile
import time
import zlib
from collections.abc import Iterator
from typing import IO

CHUNK_BYTES = 64 * 1024
SPOOL_MEMORY_BYTES = 1024 * 1024
BLOCK = tarfile.BLOCKSIZE  # 512


class Spool:
    """Bytes written in blocks, read back as chunks, optionally the blocks in reverse order (a
    newest-first read written out oldest first)."""

    def __init__(self) -> None:
        self._file: IO[bytes] = tempfile.SpooledTemporaryFile(max_size=SPOOL_MEMORY_BYTES)  # noqa: SIM115
        self._blocks: list[tuple[int, int]] = []  # (offset, length)
        self.size = 0

    def write(self, data: bytes) -> None:
        if data:
            self._file.write(data)
            self._blocks.append((self.size, len(data)))
            self.size += len(data)

    def write_text(self, text: str) -> None:
        self.write(text.encode("utf-8", "replace"))

    def chunks(self, *, blocks_reversed: bool = False) -> Iterator[bytes]:
        if not blocks_reversed:
            self._file.seek(0)
            while chunk := self._file.read(CHUNK_BYTES):
                yield chunk
            return
        for offset, length in reversed(self._blocks):
            self._file.seek(offset)
            left = length
            while left:
                chunk = self._file.read(min(left, CHUNK_BYTES))
                if not chunk:
                    break
                left -= len(chunk)
                yield chunk

    def tail(self, max_bytes: int) -> Spool:
        """A new spool of the last whole lines that fit in `max_bytes` (this one is closed)."""
        out = Spool()
        start = max(0, self.size - max_bytes)
        self._file.seek(start)
        partial = start > 0  # the cut fell inside a line: skip to the next one
        while chunk := self._file.read(CHUNK_BYTES):
            if partial:
                newline = chunk.find(b"\n")
                if newline < 0:
                    continue
                chunk, partial = chunk[newline + 1 :], False
            out.write(chunk)
        self.close()
        return out

    def close(self) -> None:
        self._file.close()


def member_cost(size: int) -> int:
    """What a member of `size` bytes takes in the tar: its header and its padded data."""
    return BLOCK + -(-size // BLOCK) * BLOCK


class TarGzStream:
    """The writer: `member()` and `close()` return the compressed bytes to send now."""

    def __init__(self, *, prefix: str, mtime: float | None = None) -> None:
        self.prefix = prefix.strip("/")
        self.mtime = int(mtime if mtime is not None else time.time())
        self._gzip = zlib.compressobj(6, zlib.DEFLATED, 31)  # 31: the gzip wrapper

    def member(self, name: str, size: int, chunks: Iterator[bytes]) -> Iterator[bytes]:
        info = tarfile.TarInfo(f"{self.prefix}/{name}")
        info.size, info.mtime, info.mode = size, self.mtime, 0o644
        yield from self._out(info.tobuf(format=tarfile.PAX_FORMAT))
        sent = 0
        for chunk in chunks:
            if sent + len(chunk) > size:  # never more than the header announced
                chunk = chunk[: size - sent]
            sent += len(chunk)
            yield from self._out(chunk)
        if sent < size:  # a source that shrank: the header's size still holds
            yield from self._out(b"\0" * (size - sent))
        yield from self._out(b"\0" * (-size % BLOCK))

    def spooled(self, name: str, spool: Spool, *, blocks_reversed: bool = False) -> Iterator[bytes]:
        yield from self.member(name, spool.size, spool.chunks(blocks_reversed=blocks_reversed))

    def close(self) -> Iterator[bytes]:
        yield from self._out(b"\0" * (2 * BLOCK))
        tail = self._gzip.flush()
        if tail:
            yield tail

    def _out(self, data: bytes) -> Iterator[bytes]:
        if data:
            out = self._gzip.compress(data)
            if out:
                yield out
