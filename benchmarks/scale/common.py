"""What every part of the scaling benchmark shares: the row it reports and how a row is shown."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Row:
    """One figure at one size, beside the baseline it is compared with in the same run.

    `flat` marks a cost that should not grow with the size: the report shows its growth from the
    smallest size, so a reader sees at once whether it held.
    """

    area: str  # "inventory", "job", "timeline", "cancel"
    measure: str  # what was timed, e.g. "GET /info/nodes (JSON), p50"
    size: int  # nodes, hosts or events, by area
    figure: float
    unit: str  # "ms", "s", "MB", "events/s"
    baseline: str = ""  # what the figure is compared with, e.g. "GET /healthz p50"
    baseline_figure: float | None = None
    target: str = ""  # e.g. "<= 50 ms"; empty for a figure shown without one
    met: bool | None = None  # None when there is no target
    flat: bool = False
    note: str = ""

    @property
    def ratio(self) -> float | None:
        if not self.baseline_figure:
            return None
        return self.figure / self.baseline_figure


def fmt(value: float, unit: str) -> str:
    if unit == "events/s":
        return f"{value:,.0f} /s"
    if unit in ("ms", "s") and value < 10:
        return f"{value:.2f} {unit}"
    return f"{value:,.1f} {unit}"
