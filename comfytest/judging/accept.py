"""Promote the kept outputs of the last run to baselines: ``comfytest accept``.

The plan comes from the run record (``run.json``) alone: each output that kept its actual
file (every failing one; every one under ``--comfy-keep=all``) can replace its baseline.
Nothing is written until the plan has been shown; each file is written atomically, and
each touched case gets its manifest rewritten from the one the run left beside the evidence.
"""

from __future__ import annotations

import fnmatch
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from comfytest.atomic import atomic_write
from comfytest.errors import ComfytestError
from comfytest.judging.manifest import PENDING_MANIFEST, read_manifest, write_manifest

__all__ = ["Change", "apply", "plan"]

#: Which outputs ``accept`` takes: the failing ones (missing or beyond tolerance), or all.
FAILING = ("failed", "missing")


@dataclass(frozen=True)
class Change:
    """One baseline to write: ``source`` (the kept actual output) over ``target``."""

    case: str
    key: str
    status: str
    source: Path
    target: Path
    #: The case's baseline folder, relative to the baselines root.
    folder: str
    reason: str

    @property
    def action(self) -> str:
        return "update" if self.target.exists() else "create"


def plan(
    record: dict[str, Any], results: Path, *, everything: bool = False, pattern: str | None = None
) -> tuple[Path, list[Change]]:
    """The baselines root and what accepting would change, in case order.

    ``pattern`` selects cases by id: a glob when it has ``*``, ``?`` or ``[``, else a
    case-insensitive substring. Outputs whose kept file equals the baseline are left out."""
    header = record.get("header") or {}
    if not header.get("baselines"):
        raise ComfytestError("the results file does not say where the baselines are")
    root = (results / header["baselines"]).resolve()
    changes = []
    for case in record["cases"]:
        case_id = str(case["id"])
        if pattern is not None and not _matches(case_id, pattern):
            continue
        comparisons = case.get("comparisons") or {}
        for key, files in sorted((case.get("evidence") or {}).items()):
            status = str(files.get("status"))
            if not files.get("actual") or (not everything and status not in FAILING):
                continue
            if files.get("unreadable") or files.get("baseline_corrupt"):
                # What the server sent is not an image, or the baseline is corrupt or a Git
                # LFS pointer (restored, never written over): nothing to promote.
                continue
            source = (results / files["actual"]).resolve()
            target = (results / files["baseline"]).resolve()
            if not target.is_relative_to(root):
                raise ComfytestError(f"{case_id}: baseline {target} lies outside {root}")
            if not source.is_file():
                raise ComfytestError(
                    f"{case_id}: the kept output {source} is gone; run the case again"
                )
            if target.is_file() and target.read_bytes() == source.read_bytes():
                continue
            changes.append(
                Change(
                    case_id,
                    key,
                    status,
                    source,
                    target,
                    target.parent.relative_to(root).as_posix(),
                    _reason(files, comparisons.get(key)),
                )
            )
    return root, changes


def apply(root: Path, changes: list[Change]) -> None:
    """Write each baseline atomically, then each touched case's manifest."""
    for change in changes:
        atomic_write(change.target, change.source.read_bytes())
    for folder, source in sorted({(c.folder, c.source.parent) for c in changes}):
        try:
            data = json.loads((source / PENDING_MANIFEST).read_text())
        except (OSError, ValueError):
            data = read_manifest(root, folder) or {}
        written = [c.key for c in changes if c.folder == folder]
        fields = {k: v for k, v in data.items() if k != "outputs"}
        write_manifest(root, folder, fields, written)


def _matches(case_id: str, pattern: str) -> bool:
    if any(c in pattern for c in "*?["):
        return fnmatch.fnmatchcase(case_id, pattern) or fnmatch.fnmatchcase(
            case_id.split("::", 1)[-1], pattern
        )
    return pattern.lower() in case_id.lower()


def _reason(files: dict[str, Any], comparison: dict[str, Any] | None) -> str:
    if files.get("status") == "missing":
        return "no baseline yet"
    if files.get("problem"):
        return str(files["problem"])
    if comparison and comparison.get("size_mismatch"):
        return str(comparison["size_mismatch"])
    beyond = [
        f"{m['name']} {m['value']} (allowed {m['limit']})"
        for m in (comparison or {}).get("measures", [])
        if not m.get("passed")
    ]
    return ", ".join(beyond) or str(files.get("status"))
