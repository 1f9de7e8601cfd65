"""The results JSON of a run: a header saying where and how it ran, then one entry per case.

Built on the process that is not an xdist worker, from test reports, so a parallel run
records the same cases as a serial one, labelled with its worker count.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["case_record", "run_record"]


def case_record(
    nodeid: str,
    outcome: str,
    duration: float,
    props: Mapping[str, object],
    message: str = "",
    span: tuple[float, float] | None = None,
) -> dict[str, Any]:
    """One case as run: outcome, per-output verdicts and numbers, timings, server.

    ``span`` is when its test ran, as Unix times (``start``, ``stop``)."""

    def loaded(name: str) -> Any:
        return json.loads(str(props[name])) if name in props else None

    return {
        "id": nodeid,
        "outcome": outcome,
        "duration_s": round(duration, 4),
        "start": round(span[0], 4) if span else None,
        "stop": round(span[1], 4) if span else None,
        "server": props.get("comfytest_server"),
        "prompt_id": props.get("comfytest_prompt_id"),
        "outputs": loaded("comfytest_outputs"),
        "comparisons": loaded("comfytest_comparisons"),
        "timings": loaded("comfytest_timings"),
        "cached_nodes": loaded("comfytest_cached"),
        "environment_changes": loaded("comfytest_environment"),
        "evidence": loaded("comfytest_evidence"),
        "description": props.get("comfytest_description", ""),
        # Set when the case's server was lost and it ran again on another one.
        "retried": loaded("comfytest_retried_on"),
        "message": message,
    }


def run_record(
    cases: list[dict[str, Any]],
    *,
    started: float,
    results: Path,
    rootdir: Path,
    workers: int,
    baselines: Path | None = None,
    sweeps: list[dict[str, str]] | None = None,
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
