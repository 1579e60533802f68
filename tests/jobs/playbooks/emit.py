"""Write bytes straight into the job's output stream, as a noisy tool on a terminal would.

A module's own stdout is captured by Ansible; this writes to ansible-playbook's terminal (the
pty ansible-runner reads), found as the topmost ansible-playbook among this process's ancestors.
Used by the tests (big output, invalid UTF-8, ANSI codes) and by benchmarks/jobs_bench.py.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path


def playbook_terminal() -> str:
    pid, found = os.getppid(), None
    while pid > 1:
        stat = Path(f"/proc/{pid}/stat").read_text()
        if b"ansible-playbook" in Path(f"/proc/{pid}/cmdline").read_bytes():
            found = pid
        pid = int(stat.rsplit(")", 1)[1].split()[1])
    if found is None:
        sys.exit("emit.py: not run under ansible-playbook")
    return f"/proc/{found}/fd/1"


def main() -> None:
    total = int(sys.argv[1])  # bytes to write
    line = (sys.argv[2] if len(sys.argv) > 2 else "x" * 99).encode("utf-8", "surrogateescape")
    rate = float(sys.argv[3]) if len(sys.argv) > 3 else 0.0  # lines per second; 0: flat out
    if rate:
        paced(total, line, rate)
        return
    odd = b"odd bytes: caf\xe9 \xff\xfe, \x1b[31mred\x1b[0m and \x1b[1mbold\x1b[0m\n"
    with open(playbook_terminal(), "wb", buffering=1 << 20) as out:
        out.write(b"EMIT BEGIN\n" + odd)
        block = b"".join(b"%08d " % n + line + b"\n" for n in range(1000))
        written = 0
        while written < total:
            out.write(block)
            written += len(block)
        out.write(odd + b"EMIT END\n")


def paced(total: int, line: bytes, rate: float) -> None:
    """`rate` lines a second, in batches of a tenth of a second, until `total` bytes."""
    with open(playbook_terminal(), "wb", buffering=0) as out:
        out.write(b"EMIT BEGIN\n")
        written, number, start = 0, 0, time.monotonic()
        while written < total:
            batch = b"".join(b"%08d " % (number + i) + line + b"\n" for i in range(int(rate / 10)))
            out.write(batch)
            written += len(batch)
            number += int(rate / 10)
            time.sleep(max(0.0, start + number / rate - time.monotonic()))
        out.write(b"EMIT END\n")


if __name__ == "__main__":
    main()
