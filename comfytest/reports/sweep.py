"""The sweep report: what each cell of a matrix cost and how far it is from the reference.

For one swept case, ``write_report`` writes into a folder:

    grid.png    output thumbnails in rows and columns labelled with their values, the
                execution time and the verdict under each (a frame in the verdict's colour)
    chart.png   time per cell (bars) and distance to the reference cell (bars), side by side
    table.md    the same numbers as a Markdown table

and returns the same numbers for ``run.json``, which the HTML report renders as a table and,
for two axes, as heatmaps. The reference cell is chosen from the values only
(``comfytest.cases.reference``): the one ``reference:`` names, else the most steps, then the
highest values. Reading down the distance column shows where more steps stop changing the
image.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFont

from comfytest.atomic import atomic_write
from comfytest.cases.reference import DEFAULT_RULE, matches, preference
from comfytest.judging.compare import Tolerance, compare
from comfytest.judging.images import png_bytes, read_frames

__all__ = ["Cell", "group_cells", "write_report", "write_sweeps"]

THUMB = 128
LABEL = 14
#: Each verdict's colour on the grid (the HTML report's badges use the same ones).
VERDICT_COLOURS = {
    "passed": (46, 125, 50),
    "changed": (183, 121, 31),
    "failed": (198, 40, 40),
    "error": (198, 40, 40),
}
_FONT = ImageFont.load_default()


@dataclass(frozen=True)
class Cell:
    """One sweep cell as run."""

    values: Mapping[str, Any]
    seconds: float | None
    image: Path | None
    #: The run loaded models, so its time is not comparable with the others.
    cold: bool = False
    #: passed, changed (passed, its pixels changed within the tolerance), failed, error;
    #: "" when not known.
    verdict: str = ""
    #: Its pytest node id.
    case: str = ""

    def label(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.values.items())


def write_report(
    folder: Path, title: str, cells: Sequence[Cell], reference: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Write grid.png, chart.png and table.md for one sweep; return its axes, reference cell
    (and why it is the one) and the table's rows, for ``run.json``."""
    chosen, rule = _reference(cells, reference or {})
    ref_image = _first_frame(chosen.image) if chosen else None
    rows = []
    for cell in cells:
        image = _first_frame(cell.image)
        distance: dict[str, Any] = {}
        if image is not None and ref_image is not None:
            result = compare(image.convert("RGB"), ref_image.convert("RGB"), Tolerance(phash=0))
            distance = {
                "phash": result.phash_distance,
                "mean_pixel_diff": round(result.mean_pixel_diff, 3),
                "psnr": None if result.identical else round(result.psnr, 1),
            }
        rows.append(
            {
                "values": dict(cell.values),
                "seconds": cell.seconds,
                "cold": cell.cold,
                "verdict": cell.verdict,
                "case": cell.case,
                "reference": cell is chosen,
                **distance,
            }
        )
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write(folder / "grid.png", png_bytes(_grid(title, cells, chosen)))
    atomic_write(folder / "chart.png", png_bytes(_chart(title, cells, rows)))
    atomic_write(folder / "table.md", _table(title, cells, rows, chosen, rule).encode())
    return {
        "axes": list(cells[0].values) if cells else [],
        "reference": dict(chosen.values) if chosen else None,
        "rule": rule,
        "cells": rows,
    }


def _reference(cells: Sequence[Cell], wanted: Mapping[str, Any]) -> tuple[Cell | None, str]:
    """The reference cell and why it is the one: the first, by ``preference``, that has an
    image; never chosen by time."""
    order = [cells[i] for i in preference([c.values for c in cells], wanted)]
    usable = [c for c in order if _first_frame(c.image) is not None]
    if not usable:
        return None, "no cell has an image"
    chosen = usable[0]
    rule = "named by the case" if wanted and matches(chosen.values, wanted) else DEFAULT_RULE
    if wanted and len(wanted) < len(chosen.values) and matches(chosen.values, wanted):
        rule += f", then {DEFAULT_RULE}"
    if chosen is not order[0]:
        rule += f"; {order[0].label()} has no image"
    return chosen, rule


def _first_frame(path: Path | None) -> Image.Image | None:
    if path is None or not path.is_file():
        return None
    try:
        return read_frames(path)[0]
    except OSError:
        return None


def _grid(title: str, cells: Sequence[Cell], chosen: Cell | None) -> Image.Image:
    axes = list(cells[0].values) if cells else []
    rows_axis = axes[0] if axes else ""
    row_values = list(dict.fromkeys(c.values.get(rows_axis) for c in cells))
    columns = [tuple((a, c.values.get(a)) for a in axes[1:]) for c in cells]
    column_values = list(dict.fromkeys(columns))
    left, top = 120, 2 * LABEL + 6
    width = left + len(column_values) * THUMB
    height = top + len(row_values) * (THUMB + 2 * LABEL)
    grid = Image.new("RGB", (max(width, 200), height), "white")
    draw = ImageDraw.Draw(grid)
    draw.text((4, 2), title, fill="black", font=_FONT)
    for j, column in enumerate(column_values):
        text = ", ".join(f"{a}={v}" for a, v in column) or ""
        draw.text((left + j * THUMB + 4, LABEL + 2), text[:22], fill="black", font=_FONT)
    for i, row in enumerate(row_values):
        y = top + i * (THUMB + 2 * LABEL)
        draw.text((4, y + THUMB // 2), f"{rows_axis}={row}"[:18], fill="black", font=_FONT)
        for cell, column in zip(cells, columns, strict=True):
            if cell.values.get(rows_axis) != row:
                continue
            x = left + column_values.index(column) * THUMB
            image = _first_frame(cell.image)
            if image is not None:
                grid.paste(_thumbnail(image), (x, y))
            else:
                draw.rectangle((x, y, x + THUMB - 1, y + THUMB - 1), outline="red")
            colour = VERDICT_COLOURS.get(cell.verdict)
            if colour:  # the verdict as a frame inside the thumbnail
                draw.rectangle((x, y, x + THUMB - 1, y + THUMB - 1), outline=colour, width=3)
            seconds = "-" if cell.seconds is None else f"{cell.seconds:.3f} s"
            seconds += " (cold)" if cell.cold else ""
            draw.text((x + 4, y + THUMB + 1), seconds, fill="black", font=_FONT)
            words = [cell.verdict] if cell.verdict else []
            words += ["reference"] if cell is chosen else []
            draw.text(
                (x + 4, y + THUMB + LABEL), ", ".join(words), fill=colour or "black", font=_FONT
            )
    return grid


def _thumbnail(image: Image.Image) -> Image.Image:
    """THUMB pixels square; a small output is enlarged by whole pixels, not smoothed."""
    rgb = image.convert("RGB")
    small = rgb.width <= THUMB and rgb.height <= THUMB
    return rgb.resize(
        (THUMB, THUMB), Image.Resampling.NEAREST if small else Image.Resampling.BICUBIC
    )


def _chart(title: str, cells: Sequence[Cell], rows: Sequence[Mapping[str, Any]]) -> Image.Image:
    bar, gap, plot_h, margin = 28, 10, 160, 40
    panel_w = margin + len(cells) * (bar + gap) + gap
    chart = Image.new("RGB", (2 * panel_w + margin, plot_h + 5 * LABEL + margin), "white")
    draw = ImageDraw.Draw(chart)
    draw.text((4, 2), title, fill="black", font=_FONT)
    series = [
        ("execution time (s)", [r.get("seconds") for r in rows], (70, 110, 200)),
        ("pHash distance to reference", [r.get("phash") for r in rows], (200, 100, 60)),
    ]
    for panel, (name, values, colour) in enumerate(series):
        x0, y0 = margin + panel * panel_w, 3 * LABEL + 6
        draw.text((x0, LABEL + 2), name, fill="black", font=_FONT)
        numbers = [v for v in values if isinstance(v, (int, float))]
        peak = max(numbers, default=0) or 1
        draw.line((x0, y0 + plot_h, x0 + len(cells) * (bar + gap) + gap, y0 + plot_h), fill="black")
        for k, value in enumerate(values):
            x = x0 + gap + k * (bar + gap)
            if isinstance(value, (int, float)):
                h = int(plot_h * value / peak)
                draw.rectangle((x, y0 + plot_h - h, x + bar, y0 + plot_h), fill=colour)
                shown = f"{value:.2f}" if isinstance(value, float) else str(value)
                draw.text((x, y0 + plot_h - h - LABEL), shown, fill="black", font=_FONT)
            draw.text((x + 2, y0 + plot_h + 2), str(k + 1), fill="black", font=_FONT)
    legend = "  ".join(f"{k + 1}: {c.label()}" for k, c in enumerate(cells))
    draw.text((4, plot_h + 4 * LABEL + 10), legend[:200], fill="black", font=_FONT)
    return chart


def _table(
    title: str,
    cells: Sequence[Cell],
    rows: Sequence[Mapping[str, Any]],
    chosen: Cell | None,
    rule: str,
) -> str:
    axes = list(cells[0].values) if cells else []
    head = [*axes, "time (s)", "pHash to ref", "mean diff to ref", "PSNR to ref (dB)", "verdict"]
    shown = f"{chosen.label()} ({rule})" if chosen else rule
    lines = [f"# {title}", "", f"reference: {shown}", ""]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for cell, row in zip(cells, rows, strict=True):
        seconds = "-" if cell.seconds is None else f"{cell.seconds:.3f}"
        seconds += " (cold: loaded models)" if cell.cold else ""
        psnr = "inf" if row.get("psnr") is None and "phash" in row else row.get("psnr", "-")
        numbers = [seconds, row.get("phash", "-"), row.get("mean_pixel_diff", "-"), psnr]
        verdict = (cell.verdict or "-") + (" (reference)" if cell is chosen else "")
        cells_text = [*cell.values.values(), *numbers, verdict]
        lines.append("| " + " | ".join(str(v) for v in cells_text) + " |")
    return "\n".join(lines) + "\n"


def group_cells(records: Sequence[Mapping[str, Any]]) -> dict[str, list[Mapping[str, Any]]]:
    """Sweep records grouped by case, each group in collection order."""
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for record in sorted(records, key=lambda r: int(r.get("order", 0))):
        groups.setdefault(str(record["case"]), []).append(record)
    return groups


def write_sweeps(records: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Each swept case's report (``write_report``), from its cells' sweep records; per case
    its id, report folder, axes, reference and rows, for ``run.json``."""
    sweeps = []
    for case, group in group_cells(records).items():
        cells = [
            Cell(
                r["values"],
                r["seconds"],
                Path(r["image"]) if r["image"] else None,
                bool(r.get("cold")),
                str(r.get("verdict") or ""),
                str(r.get("id") or ""),
            )
            for r in group
        ]
        folder = Path(group[0]["results"]) / "sweep"
        summary = write_report(folder, case, cells, group[0]["reference"] or None)
        sweeps.append({"case": case, "folder": str(folder), **summary})
    return sweeps
