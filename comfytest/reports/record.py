"""The results JSON of a run: a header saying where and how it ran, then one entry per case.

Built on the process that is not an xdist worker, from test reports, so a parallel run
records the same cases as a serial one, labelled with its worker count.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

__all__ = ["CaseRecord", "case_record", "reduced_lines", "run_record"]


@dataclass
class CaseRecord:
    """What one case's run tells the rest of the run: written once by its pytest item, read
    once by the session (xdist carries it on the test report as a plain dict), and the
    source of the case's JUnit properties and its ``run.json`` entry."""

    #: Where the case's baselines live, under the baselines folder.
    folder: str = ""
    #: Its case file: owner (as manifests name it), baselines folder, number of cases, so
    #: the run's end can prove every case of the file ran (comfytest.judging.prune).
    case_file: dict[str, Any] | None = None
    description: str = ""
    #: Output key -> verdict status (passed, failed, missing, created, updated).
    outputs: dict[str, str] | None = None
    comparisons: dict[str, Any] | None = None
    #: Passing outputs whose pixels differ from their baselines (within the tolerance).
    changed_within_tolerance: list[str] | None = None
    evidence: dict[str, dict[str, Any]] | None = None
    timings: dict[str, Any] | None = None
    cached_nodes: list[str] | None = None
    environment_changes: list[str] | None = None
    server: str | None = None
    prompt_id: str | None = None
    #: When the case's server was lost and it ran again on another one: lost, on, error.
    retried: dict[str, str] | None = None
    #: Its timings against a saved run, in words (``--comfy-compare``).
    compare: str | None = None
    #: ``--comfy-noise-floor``: output key -> spread.
    noise: dict[str, Any] | None = None
    #: A sweep cell: what the sweep report needs of it.
    sweep: dict[str, Any] | None = None
    #: The error class when the case could not be tested (an InfrastructureError).
    infrastructure: str | None = None
    #: What kind of failure it had (comfytest.errors.FAILURE_KINDS); None when it passed.
    kind: str | None = None
    #: Model names replaced by stand-ins: node id -> input -> "user's name -> stand-in".
    stand_ins: dict[str, dict[str, str]] | None = None
    #: Sizes and steps the ``ci`` profile capped: node id -> input -> "before -> after".
    capped: dict[str, dict[str, str]] | None = None
    #: The summary's line(s) for the servers of the process that ran it (an xdist worker's
    #: reach the controller this way); not a JUnit property.
    server_line: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CaseRecord:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    def junit_properties(self) -> list[tuple[str, str]]:
        """``comfytest_<field>`` for each field that is set; JSON for structured values; then
        the flat numbers CI dashboards chart (``flat_properties``)."""
        found = []
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None or value == "" or f.name in NOT_JUNIT:
                continue
            name = JUNIT_NAMES.get(f.name, f.name)
            found.append(
                (f"comfytest_{name}", value if isinstance(value, str) else json.dumps(value))
            )
        return found + self.flat_properties()

    def flat_properties(self) -> list[tuple[str, str]]:
        """One number per property: ``comfytest_<timing>`` for each timing in seconds
        (``comfytest_execution_s``, ``comfytest_total_s``, ...) and, per output,
        ``comfytest_output_<key>_<measure>`` for its distances and pixel measures, and
        ``..._used``, the largest fraction of its limit a measure uses (above 1 fails)."""
        found: list[tuple[str, str]] = []
        for name, value in (self.timings or {}).items():
            if name.endswith("_s") and _number(value):
                found.append((f"comfytest_{name}", str(value)))
        for key, comparison in sorted((self.comparisons or {}).items()):
            numbers = {m["name"]: m["value"] for m in comparison.get("measures") or []}
            for name in ("max_pixel_diff", "mean_pixel_diff", "psnr"):
                numbers.setdefault(name, comparison.get(name))
            numbers |= {n: v for n, v in comparison.items() if n.endswith("_distance")}
            used = [m["used"] for m in comparison.get("measures") or [] if _number(m["used"])]
            if used:
                numbers["used"] = max(used)
            found += [
                (f"comfytest_output_{key}_{name}", str(value))
                for name, value in numbers.items()
                if _number(value)
            ]
        return found


def _number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


#: Fields that are no JUnit property.
NOT_JUNIT = ("server_line",)
#: JUnit property names that differ from the field's (kept as documented).
JUNIT_NAMES = {
    "cached_nodes": "cached",
    "environment_changes": "environment",
    "retried": "retried_on",
}


def case_record(
    nodeid: str,
    outcome: str,
    duration: float,
    record: CaseRecord,
    message: str = "",
    span: tuple[float, float] | None = None,
) -> dict[str, Any]:
    """One case as run, for ``run.json``: outcome, per-output verdicts and numbers, timings,
    server.

    ``span`` is when its test ran, as Unix times (``start``, ``stop``)."""
    return {
        "id": nodeid,
        "outcome": outcome,
        "kind": record.kind,
        "duration_s": round(duration, 4),
        "start": round(span[0], 4) if span else None,
        "stop": round(span[1], 4) if span else None,
        "server": record.server,
        "prompt_id": record.prompt_id,
        "outputs": record.outputs,
        "comparisons": record.comparisons,
        "changed_within_tolerance": record.changed_within_tolerance or [],
        "timings": record.timings,
        "cached_nodes": record.cached_nodes,
        "environment_changes": record.environment_changes,
        "evidence": record.evidence,
        "description": record.description,
        # A run with stand-in models or capped sizes/steps is not a full run of the workflow.
        "stand_ins": record.stand_ins,
        "capped": record.capped,
        # Set when the case's server was lost and it ran again on another one.
        "retried": record.retried,
        "message": message,
    }


def reduced_lines(cases: list[dict[str, Any]]) -> list[str]:
    """The terminal's section on cases that were not full runs of their workflows: each
    one's stand-in models and capped inputs, by node id and input."""
    lines = []
    for case in cases:
        parts = [
            f"{what} {node}.{name} {change}"
            for what, key in (("stand-in", "stand_ins"), ("capped", "capped"))
            for node, changes in sorted((case.get(key) or {}).items())
            for name, change in changes.items()
        ]
        if parts:
            lines.append(f"  {case['id']}: {'; '.join(parts)}")
    if not lines:
        return []
    head = (
        f"not full runs: {len(lines)} case(s) ran with stand-in models or capped sizes and "
        "steps (their baselines are of that reduced run):"
    )
    return [head, *lines]


def run_record(
    cases: list[dict[str, Any]],
    *,
    started: float,
    results: Path,
    rootdir: Path,
    workers: int,
    baselines: Path | None = None,
    sweeps: list[dict[str, Any]] | None = None,
    update: str = "none",
) -> dict[str, Any]:
    """The whole run: a header (environment, commit, workers, servers, version) and cases.

    File paths in it are relative to ``results`` (where the record is written), so the
    results folder can be moved with its baselines beside it, or re-rendered elsewhere."""
    from comfytest import __version__

    try:
        environment = json.loads((results / "environment.json").read_text())
    except (OSError, ValueError):
        environment = None
    return {
        "header": {
            "comfytest_version": __version__,
            # Which line of the timing history (reports/history.py) this run is.
            "run_id": uuid.uuid4().hex[:16],
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
            "wall_s": round(time.time() - started, 3),
            "git_commit": _git_commit(rootdir),
            "xdist_workers": workers,
            "servers": sorted({str(c["server"]) for c in cases if c.get("server")}),
            "environment": environment,
            "update_mode": update,
            "baselines": _relative(baselines, results) if baselines else None,
        },
        "cases": [_relative_evidence(c, results) for c in sorted(cases, key=lambda c: c["id"])],
        "sweeps": [
            {**sweep, "folder": _relative(Path(sweep["folder"]), results)} for sweep in sweeps or []
        ],
    }


def _relative(path: Path, base: Path) -> str:
    return Path(os.path.relpath(path.resolve(), base.resolve())).as_posix()


def _relative_evidence(case: dict[str, Any], results: Path) -> dict[str, Any]:
    evidence = {
        key: {
            name: _relative(Path(value), results)
            if name in PATH_FIELDS and value is not None
            else value
            for name, value in files.items()
        }
        for key, files in (case.get("evidence") or {}).items()
    }
    return {**case, "evidence": evidence}


#: The fields of a case's ``evidence`` entries that are file paths.
PATH_FIELDS = ("baseline", "actual", "baseline_copy", "diff")


def _git_commit(rootdir: Path) -> str | None:
    try:
        found = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=rootdir, capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return found.stdout.strip() or None if found.returncode == 0 else None
