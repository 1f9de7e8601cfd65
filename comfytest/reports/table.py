"""The terminal's summary table: one row per case, from the case records of a run."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["percent", "summary_table"]

#: With more cases than this, only the ones that did not pass get a row (``-v``: all do).
MAX_ROWS = 30
HEADINGS = ("case", "verdict", "distance / allowed", "time")


def summary_table(cases: Sequence[Mapping[str, Any]], *, everything: bool = False) -> list[str]:
    """Aligned lines: case, verdict, the measure closest to (or furthest past) its limit,
    and server execution time. Cases that did not pass come first."""
    ordered = sorted(cases, key=lambda c: (c.get("outcome") == "passed", str(c["id"])))
    shown = [c for c in ordered if everything or len(cases) <= MAX_ROWS or c["outcome"] != "passed"]
    rows = [HEADINGS, *(_row(case) for case in shown)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(HEADINGS))]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]
    hidden = len(cases) - len(shown)
    if hidden:
        lines.append(f"... and {hidden} passed (-v lists every case)")
    return lines


def _row(case: Mapping[str, Any]) -> tuple[str, str, str, str]:
    statuses = list((case.get("outputs") or {}).values())
    verdict = str(case["outcome"])
    notable = [s for s in ("failed", "missing", "created", "updated") if s in statuses]
    if notable:
        # A failed output of a baseline problem is one whose baseline cannot be read.
        words = {"failed": "unreadable baseline" if case.get("kind") == "baseline" else "differ"}
        verdict += ": " + ", ".join(f"{statuses.count(s)} {words.get(s, s)}" for s in notable)
    changed = case.get("changed_within_tolerance") or []
    if changed:
        verdict += f"{',' if notable else ':'} {len(changed)} changed within tolerance"
    timings = case.get("timings") or {}
    seconds = timings.get("execution_s") or case.get("duration_s")
    time = f"{seconds:.2f} s" if seconds and isinstance(seconds, (int, float)) else ""
    return str(case["id"]), verdict, _closest(case), time


def _closest(case: Mapping[str, Any]) -> str:
    """The measure that used most of its allowance, e.g. "phash 4/2"."""
    worst: tuple[float, str] | None = None
    for comparison in (case.get("comparisons") or {}).values():
        if comparison.get("size_mismatch"):
            return "size/mode differ"
        for measure in comparison.get("measures") or []:
            text = _measure(measure)
            if worst is None or measure["used"] > worst[0]:
                worst = (measure["used"], text)
    if worst is not None:
        return worst[1]
    if "missing" in (case.get("outputs") or {}).values():
        return "no baseline"
    message = str(case.get("message") or "").strip().splitlines()
    return _clip(message[0]) if message and case.get("outcome") != "passed" else ""


def _measure(measure: Mapping[str, Any]) -> str:
    """E.g. "phash 4/2"; the share of values beyond the pixel threshold in percent, as
    "diff 1.2%/0.1%"."""
    if measure["name"] == "max_diff_ratio":
        return f"diff {percent(measure['value'])}/{percent(measure['limit'])}"
    return f"{measure['name']} {measure['value']}/{measure['limit']}"


def percent(fraction: float) -> str:
    """A fraction in percent, to 3 significant digits: 0.001 is "0.1%"."""
    return f"{fraction * 100:.3g}%"


def _clip(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."
