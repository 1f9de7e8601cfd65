"""The HTML report: one self-contained page rendered from a run record (``run.json``).

Every image is inlined as a ``data:`` URI and the page loads nothing else, so it opens
offline from disk or from a CI artefact. Failures come first; a filter hides the rest.
"""

from __future__ import annotations

import base64
import functools
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import jinja2
import markupsafe

from comfytest.atomic import atomic_write
from comfytest.errors import ComfytestError
from comfytest.reports.history import load_history, runs_until, sparkline, trends, versus_before
from comfytest.reports.html_sweep import VERDICT_MARKS, sweep_view
from comfytest.reports.table import percent

__all__ = ["evidence_extras", "load_record", "render_report", "write_html_report"]

#: Outcomes in the order a reviewer wants them: what needs action first.
OUTCOME_ORDER = ("failed", "error", "skipped", "passed")
TIMING_FIELDS = (
    ("execution_s", "server execution"),
    ("queue_wait_s", "queue wait"),
    ("download_s", "download"),
    ("compare_s", "compare"),
    ("total_s", "total"),
)
MEASURE_NAMES = {
    "max_diff_ratio": "share of values beyond the pixel threshold",
    "phash": "pHash distance",
    "dhash": "dHash distance",
    "whash": "wHash distance",
    "colorhash": "colorhash distance",
    "max_pixel_diff": "max pixel diff",
    "mean_pixel_diff": "mean pixel diff",
    "min_psnr": "PSNR (dB, at least)",
}


def load_record(path: Path) -> dict[str, Any]:
    """A run record written by comfytest, or a clear error naming the file."""
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ComfytestError(f"{path}: cannot read the results file: {exc.strerror}") from None
    except ValueError as exc:
        raise ComfytestError(f"{path}: not a comfytest results file: {exc}") from None
    if not isinstance(record, dict) or not isinstance(record.get("cases"), list):
        raise ComfytestError(f"{path}: not a comfytest results file (no 'cases' list)")
    return record


def write_html_report(
    record: Mapping[str, Any],
    results: Path,
    out: Path,
    history: Sequence[Mapping[str, Any]] | None = None,
) -> None:
    """Render ``record`` (whose paths are relative to ``results``) to ``out``, atomically;
    the timing trends from ``history`` (run summaries), else from ``results``' history."""
    atomic_write(out, render_report(record, results, history).encode("utf-8"))


@functools.cache
def _templates() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("comfytest.reports", "templates"),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def evidence_extras(
    evidence: Mapping[str, Any], comparisons: Mapping[str, Any], results: Path
) -> tuple[str, list[tuple[str, str]]]:
    """For other reports (pytest-html): an HTML table of each output's measures, and the
    images as (name, base64 PNG). Relative paths in ``evidence`` are under ``results``."""
    outputs = [
        _output(key, files, comparisons.get(key), results) for key, files in evidence.items()
    ]
    images = [
        (f"{output['key']} {title}", file["src"].split(",", 1)[1])
        for output in outputs
        for title in ("baseline", "actual", "diff")
        if (file := output[title]) and "src" in file
    ]
    html = _templates().get_template("measures.html.j2").render(outputs=outputs)
    return html, images


def render_report(
    record: Mapping[str, Any],
    results: Path,
    history: Sequence[Mapping[str, Any]] | None = None,
) -> str:
    environment = _templates()
    header = record.get("header") or {}
    runs = runs_until(load_history(results), record) if history is None else history
    per_case = trends(runs)
    cases = sorted(
        (_case(case, results, per_case.get(str(case["id"]))) for case in record["cases"]),
        key=lambda c: (_rank(c["outcome"]), c["id"]),
    )
    counts = {o: sum(c["outcome"] == o for c in cases) for o in OUTCOME_ORDER}
    changes: dict[str, int] = {}
    for case in cases:
        for change in case["environment_changes"]:
            changes[change] = changes.get(change, 0) + 1
    return environment.get_template("report.html.j2").render(
        header=header,
        cases=cases,
        counts={o: n for o, n in counts.items() if n},
        outputs=_output_counts(cases),
        environment=_flatten(header.get("environment") or {}),
        changes=sorted(changes.items()),
        sweeps=[sweep_view(s, results, _inline) for s in record.get("sweeps") or []],
        marks=VERDICT_MARKS,
        runs=len(runs),
    )


def _rank(outcome: str) -> int:
    return OUTCOME_ORDER.index(outcome) if outcome in OUTCOME_ORDER else 0


def _case(
    case: Mapping[str, Any], results: Path, trend: list[dict[str, Any]] | None
) -> dict[str, Any]:
    timings = case.get("timings") or {}
    comparisons = case.get("comparisons") or {}
    evidence = case.get("evidence") or {}
    statuses = case.get("outputs") or {}
    changed = set(case.get("changed_within_tolerance") or [])
    outputs = [
        {
            **_output(key, evidence.get(key) or {"status": status}, comparisons.get(key), results),
            "changed": key in changed,
        }
        for key, status in statuses.items()
    ]
    return {
        "id": str(case["id"]),
        "outcome": str(case.get("outcome", "")),
        "description": case.get("description") or "",
        "message": case.get("message") or "",
        "server": case.get("server") or "",
        "duration_s": case.get("duration_s"),
        "timings": [(label, timings[name]) for name, label in TIMING_FIELDS if timings.get(name)],
        "cold": timings.get("cold"),
        "iterations": timings.get("iterations_per_s") or {},
        "repeats": timings.get("repeats"),
        "environment_changes": case.get("environment_changes") or [],
        "outputs": outputs,
        "changed": [o["label"] for o in outputs if o["changed"]],
        "trend": _trend(trend),
    }


def _trend(points: list[dict[str, Any]] | None) -> dict[str, Any] | None:
    """The case's timing trend: an inline SVG chart and the last time against the median
    of the warm ones before it; None with fewer than two timed runs."""
    if not points or len(points) < 2:
        return None
    ratio = versus_before(points)
    return {
        "svg": markupsafe.Markup(sparkline(points)),  # numbers only: see sparkline
        "runs": len(points),
        "ratio": None if ratio is None else f"{ratio:.2f}x",
    }


def _output(
    key: str, files: Mapping[str, Any], comparison: Mapping[str, Any] | None, results: Path
) -> dict[str, Any]:
    status = str(files.get("status", ""))
    # Judged against the copy kept beside the actual output, else the baseline itself.
    baseline = files.get("baseline_copy") or files.get("baseline")
    measures = [
        {**m, "label": MEASURE_NAMES.get(m["name"], m["name"])}
        for m in (comparison or {}).get("measures", [])
    ]
    for m in measures:
        if m["name"] == "max_diff_ratio":  # a share of the values: in percent
            m.update(value=percent(m["value"]), limit=percent(m["limit"]))
    limited = {m["name"] for m in measures}
    if comparison and not comparison.get("size_mismatch"):
        # The pixel metrics are always measured: show them, with no limit when none is set.
        fields = (("max_pixel_diff",) * 2, ("mean_pixel_diff",) * 2, ("min_psnr", "psnr"))
        for name, field in fields:
            if name not in limited:
                value = comparison.get(field)
                shown = "∞" if value is None and field == "psnr" else value
                measures.append(
                    {"label": MEASURE_NAMES[name], "value": shown, "limit": "—", "passed": True}
                )
    return {
        "key": key,
        "label": files.get("label") or key,
        "status": status,
        "problem": files.get("problem") or "",
        "size_mismatch": (comparison or {}).get("size_mismatch"),
        "frames": (comparison or {}).get("frames") or 1,
        "measures": measures,
        "psnr": (comparison or {}).get("psnr"),
        "baseline": _inline(baseline, results),
        "actual": _inline(files.get("actual"), results),
        "diff": _inline(files.get("diff"), results),
    }


def _inline(path: str | None, results: Path) -> dict[str, str] | None:
    """A file as the page shows it: an image as a data: URI, a text as text; None if gone."""
    if not path:
        return None
    file = results / path
    try:
        data = file.read_bytes()
    except OSError:
        return {"missing": f"{path} (not found)"}
    if file.suffix == ".txt":
        return {"text": data.decode("utf-8", errors="replace"), "name": file.name}
    if file.suffix != ".png":
        return {"missing": f"{path}, kept as the server sent it: not a readable image"}
    return {"src": "data:image/png;base64," + base64.b64encode(data).decode(), "name": file.name}


def _output_counts(cases: list[dict[str, Any]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for case in cases:
        for output in case["outputs"]:
            counts[output["status"]] = counts.get(output["status"], 0) + 1
    return counts


def _flatten(data: Mapping[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    """Nested fingerprint fields as (dotted name, value) rows."""
    rows: list[tuple[str, str]] = []
    for name, value in sorted(data.items()):
        if isinstance(value, Mapping):
            rows += _flatten(value, f"{prefix}{name}.")
        else:
            shown = json.dumps(value) if isinstance(value, list) else str(value)
            rows.append((f"{prefix}{name}", shown if len(shown) <= 300 else shown[:300] + "…"))
    return rows
