"""Compare this run's timings with a saved run (``results/run.json``).

A case is compared by its timed execution: the median of its repeats, else its single
execution time (server timestamps). A case counts as slower only when it exceeds the
threshold by more than the measured spread (the larger interquartile range of the two runs),
so noise alone never fails it. Runs with different xdist worker counts are not compared.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from comfytest.errors import ComfytestError

__all__ = ["SavedRun", "TimingComparison", "compare_timing", "execution_seconds"]


@dataclass(frozen=True)
class TimingComparison:
    case: str
    saved_s: float
    current_s: float
    spread_s: float
    threshold: float | None

    @property
    def ratio(self) -> float:
        return self.current_s / self.saved_s if self.saved_s else float("inf")

    @property
    def slower(self) -> bool:
        """Slower than the threshold by more than the spread (only with a threshold)."""
        if self.threshold is None:
            return False
        return self.current_s > self.saved_s * self.threshold + self.spread_s

    def describe(self) -> str:
        limit = (
            ""
            if self.threshold is None
            else f", limit {self.threshold:g}x + {self.spread_s:.3f} s spread"
        )
        return f"{self.current_s:.3f} s vs {self.saved_s:.3f} s saved: {self.ratio:.2f}x{limit}"


def execution_seconds(timings: dict[str, Any] | None) -> tuple[float, float] | None:
    """(seconds, spread) of a case's timings: the repeats' median and IQR, else one run."""
    if not timings:
        return None
    repeats = timings.get("repeats") or {}
    if repeats.get("n"):
        return float(repeats["median_s"]), float(repeats.get("iqr_s") or 0.0)
    if timings.get("execution_s") is None:
        return None
    return float(timings["execution_s"]), 0.0


@dataclass(frozen=True)
class SavedRun:
    """A run.json read back: its worker count and each case's timings."""

    path: Path
    workers: int
    cases: dict[str, dict[str, Any]]

    @classmethod
    def load(cls, path: Path) -> SavedRun:
        try:
            data = json.loads(path.read_text())
            workers = int(data["header"]["xdist_workers"])
            cases = {str(c["id"]): c.get("timings") or {} for c in data["cases"]}
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ComfytestError(f"cannot read the saved run {path}: {exc}") from None
        return cls(path, workers, cases)


def compare_timing(
    saved: SavedRun, case: str, timings: dict[str, Any], threshold: float | None
) -> TimingComparison | None:
    """This case against the saved run, or None when either lacks a timing."""
    before = execution_seconds(saved.cases.get(case))
    now = execution_seconds(timings)
    if before is None or now is None:
        return None
    return TimingComparison(case, before[0], now[0], max(before[1], now[1]), threshold)
