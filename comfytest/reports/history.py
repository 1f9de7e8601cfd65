"""Timing history: one line per run in ``<results>/history.jsonl``, and the trend per case.

Each run appends the summary of its ``run.json`` (its id, start, commit, xdist workers, and
per case the outcome and timed execution: the repeats' median and IQR, else the single
execution time, and whether it loaded models). Only the last ``KEEP_RUNS`` runs are kept:
the file is rewritten atomically at each run. A line that is not a run summary is dropped.

A trend compares like with like: only runs with the xdist worker count of the newest one.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from comfytest.atomic import atomic_write
from comfytest.reports.timecompare import execution_seconds

__all__ = [
    "HISTORY_FILE",
    "KEEP_RUNS",
    "append_history",
    "load_history",
    "run_summary",
    "runs_until",
    "sparkline",
    "trend_lines",
    "trends",
]

HISTORY_FILE = "history.jsonl"
#: How many runs the history keeps (the oldest go first).
KEEP_RUNS = 50
#: How many points a trend shows.
SHOWN = 20


def run_summary(record: Mapping[str, Any]) -> dict[str, Any]:
    """What the history keeps of one run record."""
    header = record.get("header") or {}
    cases = {}
    for case in record.get("cases") or []:
        timed = execution_seconds(case.get("timings"))
        cases[str(case["id"])] = {
            "outcome": case.get("outcome"),
            "seconds": None if timed is None else round(timed[0], 4),
            "spread": None if timed is None else round(timed[1], 4),
            "cold": bool((case.get("timings") or {}).get("cold")),
        }
    return {
        "run_id": header.get("run_id"),
        "started": header.get("started"),
        "wall_s": header.get("wall_s"),
        "git_commit": header.get("git_commit"),
        "xdist_workers": header.get("xdist_workers", 0),
        "cases": cases,
    }


def load_history(results: Path) -> list[dict[str, Any]]:
    """The runs ``results/history.jsonl`` keeps, oldest first; [] when there is none."""
    try:
        text = (results / HISTORY_FILE).read_text(encoding="utf-8")
    except OSError:
        return []
    runs = []
    for line in text.splitlines():
        try:
            run = json.loads(line)
        except ValueError:
            continue
        if isinstance(run, dict) and isinstance(run.get("cases"), dict):
            runs.append(run)
    return runs


def append_history(
    results: Path, record: Mapping[str, Any], keep: int = KEEP_RUNS
) -> list[dict[str, Any]]:
    """Add this run to the history, keep the last ``keep`` runs; the runs kept."""
    runs = [*load_history(results), run_summary(record)][-keep:]
    body = "".join(json.dumps(run, sort_keys=True) + "\n" for run in runs)
    atomic_write(results / HISTORY_FILE, body.encode("utf-8"))
    return runs


def runs_until(history: Sequence[Mapping[str, Any]], record: Mapping[str, Any]) -> list[Any]:
    """The history as it stood when ``record`` ran: the runs up to and including it (a
    report rendered again later does not show runs made after it)."""
    run_id = (record.get("header") or {}).get("run_id")
    ids = [run.get("run_id") for run in history]
    if run_id and run_id in ids:
        return list(history[: ids.index(run_id) + 1])
    return [*history, run_summary(record)]


def trends(runs: Sequence[Mapping[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Per case, its timed runs (seconds, cold, outcome, started), oldest first: of the runs
    with the newest run's worker count, the last ``SHOWN``."""
    if not runs:
        return {}
    workers = runs[-1].get("xdist_workers", 0)
    found: dict[str, list[dict[str, Any]]] = {}
    for run in runs:
        if run.get("xdist_workers", 0) != workers:
            continue
        for case, data in (run.get("cases") or {}).items():
            if isinstance(data, dict) and isinstance(data.get("seconds"), (int, float)):
                point = {**data, "started": run.get("started")}
                found.setdefault(str(case), []).append(point)
    return {case: points[-SHOWN:] for case, points in found.items()}


def versus_before(points: Sequence[Mapping[str, Any]]) -> float | None:
    """The last time over the median of the warm times before it (None with none)."""
    before = [float(p["seconds"]) for p in points[:-1] if not p.get("cold")]
    median = statistics.median(before) if before else 0.0
    return float(points[-1]["seconds"]) / median if median else None


def sparkline(points: Sequence[Mapping[str, Any]], width: int = 120, height: int = 24) -> str:
    """A small inline SVG of the times, the last point larger; a cold run is a hollow dot.
    Plain markup of numbers only (safe to put in the page as is)."""
    values = [float(p["seconds"]) for p in points]
    low, high = min(values), max(values)
    span = (high - low) or 1.0
    step = (width - 8) / max(len(values) - 1, 1)
    xy = [
        (4 + i * step, height - 4 - (height - 8) * (v - low) / span) for i, v in enumerate(values)
    ]
    path = " ".join(f"{x:.1f},{y:.1f}" for x, y in xy)
    dots = "".join(
        f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{3 if i == len(xy) - 1 else 2}" '
        f'fill="{"#fff" if points[i].get("cold") else "#1565c0"}" stroke="#1565c0"/>'
        for i, (x, y) in enumerate(xy)
    )
    title = f"{len(values)} runs: {low:.3f} s to {high:.3f} s, last {values[-1]:.3f} s"
    return (
        f'<svg class="trend" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        f'role="img" aria-label="{title}"><title>{title}</title>'
        f'<polyline points="{path}" fill="none" stroke="#90caf9" stroke-width="1.5"/>'
        f"{dots}</svg>"
    )


def trend_lines(runs: Sequence[Mapping[str, Any]], source: str, shown: int = 8) -> list[str]:
    """What ``comfytest report`` prints: per case its last times and the last against the
    median of the warm ones before."""
    if len(runs) < 2:
        return [f"timing trend: {len(runs)} run recorded in {source} (each run adds one)"]
    per_case = trends(runs)
    workers = runs[-1].get("xdist_workers", 0)
    left_out = sum(run.get("xdist_workers", 0) != workers for run in runs)
    note = f"; {left_out} run(s) with another xdist worker count left out" if left_out else ""
    lines = [f"timing trend over {len(runs)} runs in {source} (server execution, s; * cold{note}):"]
    width = max((len(case) for case, points in per_case.items() if len(points) > 1), default=0)
    for case, points in sorted(per_case.items()):
        if len(points) < 2:
            continue  # one timed run is no trend yet
        times = "  ".join(
            f"{p['seconds']:.3f}{'*' if p.get('cold') else ''}" for p in points[-shown:]
        )
        ratio = versus_before(points)
        against = f"   last {ratio:.2f}x the median before" if ratio is not None else ""
        lines.append(f"  {case:<{width}}  {times}{against}")
    return lines
