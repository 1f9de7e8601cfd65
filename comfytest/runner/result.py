"""What running a case found: a verdict per output, the timings, and the failure's words."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from comfytest.cases.loader import Case
from comfytest.comfy.history import PromptRun
from comfytest.judging.baselines import Verdict

__all__ = ["CaseResult", "environment_block", "spread"]


@dataclass
class CaseResult:
    """Verdicts for every output of a case, plus where the time went."""

    case: Case
    case_name: str
    run: PromptRun
    #: The URL of the server the case ran on.
    server: str = ""
    verdicts: list[Verdict] = field(default_factory=list)
    timings: dict[str, Any] = field(default_factory=dict)
    #: A sweep cell's first image output, kept for the sweep report.
    cell_image: Path | None = None
    #: How this server differs from the one the baselines were made on.
    environment_changes: list[str] = field(default_factory=list)
    #: Model names the case's ``stand_in`` replaced, node id -> input -> "name -> stand-in".
    stand_ins: dict[str, dict[str, str]] = field(default_factory=dict)
    #: What the case's ``ci`` profile capped, node id -> input -> "before -> after".
    capped: dict[str, dict[str, str]] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return bool(self.verdicts) and all(v.ok for v in self.verdicts)

    def failure_lines(self) -> list[str]:
        if not self.verdicts:
            return [f"{self.case.name}: the prompt produced no image or text outputs to judge"]
        lines: list[str] = []
        for verdict in self.verdicts:
            if verdict.ok:
                continue
            if verdict.unreadable:
                lines.append(f"{self.case.name}: output {verdict.label} could not be judged")
            elif verdict.lost:
                lines.append(f"{self.case.name}: output {verdict.label} was not produced")
            elif verdict.baseline_corrupt:
                lines.append(f"{self.case.name}: output {verdict.label} has an unreadable baseline")
            elif verdict.status == "missing":
                lines.append(f"{self.case.name}: output {verdict.label} has no baseline")
            else:
                lines.append(f"{self.case.name}: output {verdict.label} differs from its baseline")
            if verdict.problem:
                lines.append(f"  {verdict.problem}")
            if verdict.comparison is not None:
                lines.append(f"  {verdict.comparison.describe()}")
            lines.append(f"  baseline {verdict.baseline}")
            if verdict.actual is not None:
                lines.append(f"  actual   {verdict.actual}")
            if verdict.diff is not None:
                lines.append(f"  diff     {verdict.diff}")
        if not self.passed:
            lines += environment_block(self.environment_changes)
        return lines


def environment_block(changes: list[str]) -> list[str]:
    """The lines every kind of failure ends with when the environment changed since the
    baselines: each change, then what stayed the same."""
    if not changes:
        return []
    return [
        "  the environment differs from the one the baselines were made in:",
        *(f"    {change}" for change in changes),
    ]


def spread(values: list[float]) -> dict[str, Any]:
    """n, median, min, max and interquartile range of repeated timings (seconds)."""
    if not values:
        return {"n": 0}
    quartiles = statistics.quantiles(values, n=4) if len(values) > 1 else [values[0]] * 3
    return {
        "n": len(values),
        "median_s": round(statistics.median(values), 4),
        "min_s": round(min(values), 4),
        "max_s": round(max(values), 4),
        "iqr_s": round(quartiles[2] - quartiles[0], 4),
        "runs_s": [round(v, 4) for v in values],
    }
