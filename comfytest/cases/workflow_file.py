"""A case's workflow file: where it is, which graph of an image, read once per collection."""

from __future__ import annotations

import functools
from pathlib import Path

from comfytest.cases.body import Body
from comfytest.cases.recipe import confined
from comfytest.errors import CaseError, WorkflowError
from comfytest.workflow.files import SOURCES
from comfytest.workflow.prompt import Prompt, did_you_mean, load_workflow

__all__ = ["case_workflow"]


def case_workflow(
    body: Body, case_id: str, path: Path, line: int, within: Path | None
) -> tuple[Path, str | None, Prompt]:
    """(path, ``workflow_source``, workflow) of a case; a mistake is a CaseError at the YAML
    line that names the file (or at the JSON file's own line, for a JSON mistake)."""
    workflow_path, wpath, wline = body.scalars.get("workflow", (None, path, line))
    if workflow_path is None:
        raise CaseError(f"case {case_id!r} names no workflow", path, line)
    confined(workflow_path, within, "workflow", wpath, wline)
    source, opath, oline = body.scalars.get("workflow_source", (None, wpath, wline))
    if source is not None and source not in SOURCES:
        raise CaseError(
            f"workflow_source: expected 'prompt' or 'workflow', got {source!r}"
            f"{did_you_mean(str(source), SOURCES, n=1)}",
            opath,
            oline,
        )
    try:
        return workflow_path, source, _load_workflow_cached(workflow_path, source)
    except WorkflowError as exc:
        if exc.line is not None:
            raise  # a JSON mistake: its own file and line
        if not workflow_path.exists():
            raise CaseError(f"workflow not found: {workflow_path}", wpath, wline) from None
        at_source = source is not None and "workflow_source" in exc.message
        where, at = (opath, oline) if at_source else (wpath, wline)
        raise CaseError(f"workflow {workflow_path}: {exc.message}", where, at) from None


def _load_workflow_cached(path: Path, source: str | None = None) -> Prompt:
    """Parse each workflow file once per collection (many cases and cells share one)."""
    try:
        stat = path.stat()
    except OSError:
        return load_workflow(path, source)  # raises the readable error
    return _parsed(str(path), stat.st_mtime_ns, stat.st_size, source)


@functools.lru_cache(maxsize=128)
def _parsed(path: str, mtime_ns: int, size: int, source: str | None) -> Prompt:
    return load_workflow(Path(path), source)
