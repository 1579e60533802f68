"""Scaling benchmark part: timeline pages at 10 k / 100 k / 1 M events (quick: 1 k / 10 k).

For each size, a SQLite file migrated to the daemon's schema is filled with bare `sqlite3`
(`timeline_bench.fill`: 200 nodes, events over 30 days; setup, not measured), then a real
`clusterm serve` starts on it (its own data dir, as shipped) and one keep-alive client asks, in
turn, so that every request sees the same machine load (`timeline_bench.http_pages`):

- `GET /healthz`: the baseline, the HTTP server and the middleware with no work behind them;
- `GET /info/timeline`: the newest page of 30;
- `GET /info/timeline?node=node-042`: a node-filtered page;
- `GET /info/timeline?before_id=<oldest + 1000>`: a page deep in history, by cursor.

Each page is answered from an index, so its cost should not grow with the timeline (flat). The
note gives the page's SQL through bare `sqlite3` on the same file: what the database alone costs.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from timeline_bench import fill, http_pages

from app.db import upgrade

from .common import Row

AREA = "timeline"
HEALTHZ = "GET /healthz p50"
TARGET_MS = 2.0  # each page's p50 at 1,000,000 events
TARGET_SIZE = 1_000_000


def measure(size: int, samples: int) -> list[Row]:
    with tempfile.TemporaryDirectory(prefix="scale-timeline-") as tmp:
        work = Path(tmp)
        (work / "data").mkdir(mode=0o700)
        path = work / "data" / "clusterm.db"  # where `clusterm serve --data-dir` keeps it
        upgrade(f"sqlite:///{path}")
        fill(path, size)
        healthz, pages = http_pages(work, samples)
    at_target = size == TARGET_SIZE
    return [
        Row(
            AREA,
            f"GET /info/timeline, {name}, p50",
            size,
            p50,
            "ms",
            baseline=HEALTHZ,
            baseline_figure=healthz,
            target=f"<= {TARGET_MS:g} ms" if at_target else "",
            met=p50 <= TARGET_MS if at_target else None,
            flat=True,
            note=f"bare sqlite3 query {sql:.2f} ms",
        )
        for name, (p50, sql) in pages.items()
    ]


def run(quick: bool) -> list[Row]:
    sizes, samples = ((1_000, 10_000), 100) if quick else ((10_000, 100_000, TARGET_SIZE), 500)
    by_size = [measure(size, samples) for size in sizes]
    # One measure's rows together, smallest size first, as the report reads them.
    return [row for index in range(len(by_size[0])) for row in (rows[index] for rows in by_size)]
