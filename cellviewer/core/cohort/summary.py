"""A cohort run's totals: slides done and failed, cells, cells per class, rate and ETA.

Kept apart from the reporting (terminal or JSON lines, in ``cellviewer.cli``) so that a Dask
driver can total the outcomes it gathers the same way the command line does.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from .scoring import SlideOutcome


@dataclass
class CohortSummary:
    """Totals over the outcomes added so far (``slides``: how many the run has in all)."""

    slides: int
    started: float = field(default_factory=time.monotonic)
    done: list[SlideOutcome] = field(default_factory=list)
    failed: list[SlideOutcome] = field(default_factory=list)
    class_counts: dict[str, int] = field(default_factory=dict)
    cells: int = 0

    def add(self, outcome: SlideOutcome) -> None:
        if not outcome.ok:
            self.failed.append(outcome)
            return
        self.done.append(outcome)
        self.cells += outcome.cells
        for name, n in outcome.class_counts.items():
            self.class_counts[name] = self.class_counts.get(name, 0) + n

    @property
    def finished(self) -> int:
        return len(self.done) + len(self.failed)

    @property
    def elapsed_s(self) -> float:
        return time.monotonic() - self.started

    def cells_per_s(self, current_cells: int = 0) -> float:
        """Cells found or classified per second of this run (slides skipped as done count
        nothing: they took no time)."""
        worked = self.cells - sum(o.cells for o in self.done if o.skipped) + current_cells
        elapsed = self.elapsed_s
        return worked / elapsed if elapsed > 0 else 0.0

    def eta_s(self, current_fraction: float = 0.0) -> float | None:
        """Seconds left, from the time per slide so far (None before the first progress)."""
        progressed = self.finished + current_fraction
        if progressed <= 0:
            return None
        return max(0.0, self.elapsed_s / progressed * (self.slides - progressed))

    def lines(self) -> list[str]:
        """The summary a run ends with."""
        lines = [f"{self.slides} slide{'s' if self.slides != 1 else ''}: {len(self.done)} "
                 f"done, {len(self.failed)} failed; {self.cells:,} cells in "
                 f"{self.elapsed_s:.1f} s ({self.cells_per_s():,.0f} cells/s)"]
        if self.class_counts:
            lines.append("cells per class: " + ", ".join(
                f"{name} {n:,}" for name, n in sorted(self.class_counts.items())))
        return lines
