"""A sweep as the HTML report shows it: its grid and chart, its table as an HTML table, and
for a sweep of two axes two heatmaps (distance to the reference, time per cell), each cell
marked with its verdict. Built from the sweep's entry in ``run.json``."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["VERDICT_MARKS", "sweep_view"]

#: The mark each verdict gets in a heatmap cell (its colour comes from the badge classes).
VERDICT_MARKS = {"passed": "✓", "changed": "≈", "failed": "✗", "error": "!", "skipped": "-"}


def sweep_view(
    sweep: Mapping[str, Any], results: Path, inline: Callable[[str | None, Path], Any]
) -> dict[str, Any]:
    """What the template needs of one sweep; ``inline`` turns a results path into an image."""
    folder = Path(str(sweep["folder"]))
    view: dict[str, Any] = {
        "case": sweep["case"],
        "grid": inline((folder / "grid.png").as_posix(), results),
        "chart": inline((folder / "chart.png").as_posix(), results),
    }
    cells = sweep.get("cells")
    if not isinstance(cells, list):  # a run.json from before the table was kept in it
        table = results / folder / "table.md"
        return {**view, "markdown": table.read_text("utf-8") if table.is_file() else ""}
    axes = [str(a) for a in sweep.get("axes") or []]
    reference = sweep.get("reference")
    return {
        **view,
        "axes": axes,
        "reference": _label(reference) if reference else "none",
        "rule": sweep.get("rule") or "",
        "rows": [_row(cell, axes) for cell in cells],
        "heatmaps": _heatmaps(cells, axes) if len(axes) == 2 else [],
    }


def _label(values: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in values.items())


def _row(cell: Mapping[str, Any], axes: Sequence[str]) -> dict[str, Any]:
    values = cell.get("values") or {}
    seconds = cell.get("seconds")
    psnr = cell.get("psnr")
    measured = "phash" in cell
    return {
        "shown": [values.get(axis, "") for axis in axes],
        "seconds": "—" if seconds is None else f"{seconds:.3f}",
        "cold": bool(cell.get("cold")),
        "phash": cell.get("phash", "—"),
        "mean": cell.get("mean_pixel_diff", "—"),
        "psnr": ("∞" if psnr is None else psnr) if measured else "—",
        "verdict": cell.get("verdict") or "",
        "reference": bool(cell.get("reference")),
        "case": cell.get("case") or "",
    }


def _heatmaps(cells: Sequence[Mapping[str, Any]], axes: Sequence[str]) -> list[dict[str, Any]]:
    """Rows by the first axis, columns by the second, as the grid image lays them out."""
    down, across = axes

    def value(cell: Mapping[str, Any], axis: str) -> Any:
        return (cell.get("values") or {}).get(axis)

    row_values = list(dict.fromkeys(repr(value(c, down)) for c in cells))
    column_values = list(dict.fromkeys(repr(value(c, across)) for c in cells))
    shown = {repr(value(c, a)): value(c, a) for c in cells for a in axes}
    at = {(repr(value(c, down)), repr(value(c, across))): c for c in cells}
    maps = []
    for title, field, unit in (
        ("distance to the reference (mean pixel difference, 0-255)", "mean_pixel_diff", ""),
        ("server execution time per cell", "seconds", " s"),
    ):
        numbers = [c[field] for c in cells if isinstance(c.get(field), (int, float))]
        peak = max(numbers, default=0) or 1
        rows = []
        for r in row_values:
            row = []
            for col in column_values:
                cell = at.get((r, col))
                row.append(None if cell is None else _heat_cell(cell, field, unit, peak))
            rows.append({"label": f"{down}={shown[r]}", "cells": row})
        maps.append(
            {
                "title": title,
                "field": field,
                "columns": [f"{across}={shown[c]}" for c in column_values],
                "rows": rows,
            }
        )
    return maps


def _heat_cell(cell: Mapping[str, Any], field: str, unit: str, peak: float) -> dict[str, Any]:
    value = cell.get(field)
    verdict = str(cell.get("verdict") or "")
    if not isinstance(value, (int, float)):
        text, style = "—", "background:#f3f3f3"
    else:
        share = max(0.0, min(1.0, value / peak))
        lightness = 96 - 56 * share  # light for 0, dark for the largest
        ink = "#fff" if lightness < 62 else "#111"
        text = f"{value:.3f}{unit}" if field == "seconds" else f"{value:g}"
        text += " (cold)" if field == "seconds" and cell.get("cold") else ""
        style = f"background:hsl(210,65%,{lightness:.0f}%);color:{ink}"
    return {
        "text": text,
        "style": style,
        "verdict": verdict,
        "mark": VERDICT_MARKS.get(verdict, "?") if verdict else "",
        "reference": bool(cell.get("reference")),
        "title": f"{_label(cell.get('values') or {})}: {verdict or 'no verdict'}",
    }
