"""Case files (YAML) -> Case objects, each mistake reported at its file and line.

A case file holds file-level defaults and a list of cases::

    workflow: ../workflows/txt2img.json    # relative to this file
    seed: 42                               # pins every seed input of the workflow
    tolerance: {phash: 2}
    cases:
      - id: fox
        inputs:
          "6": {text: "a red fox"}         # node id (or title, or unique class_type)
          KSampler: {steps: 5, cfg: 7.0}
      - id: photo
        workflow: ../workflows/img2img.json
        inputs:
          LoadImage: {image: {file: ../inputs/photo.png}}   # uploaded before the run
"""

from __future__ import annotations

import copy
import difflib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from comfytest._yaml import LineMap, load_yaml
from comfytest.compare import Tolerance
from comfytest.errors import CaseError, WorkflowError
from comfytest.workflow import (
    OverrideError,
    Prompt,
    find_node,
    load_workflow,
    node_label,
    seed_targets,
    set_input,
)

__all__ = ["CASE_KEYS", "FILE_KEYS", "Case", "Upload", "load_cases"]

#: Keys a case may carry; the same keys (but ``id``) may stand at file level as defaults.
CASE_KEYS = ("id", "description", "workflow", "seed", "inputs", "tolerance", "timeout")
FILE_KEYS = (*(key for key in CASE_KEYS if key != "id"), "cases")
TOLERANCE_KEYS = ("phash", "hash_size", "max_pixel_diff", "mean_pixel_diff")
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.=+-]*$")


@dataclass(frozen=True)
class Upload:
    """A local file to upload before the run, whose server-side name fills an input."""

    node_id: str
    input_name: str
    path: Path


@dataclass(frozen=True)
class Case:
    """One runnable case: a finished prompt plus how to judge its outputs."""

    id: str
    path: Path
    line: int
    workflow_path: Path
    prompt: Prompt
    seed: int | None
    tolerance: Tolerance
    timeout: float | None = None
    description: str = ""
    uploads: tuple[Upload, ...] = ()
    overrides: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)


def load_cases(path: Path) -> list[Case]:
    """Parse a case file; raise CaseError at the first mistake."""
    data = load_yaml(path)
    if data is None:
        raise CaseError("empty case file: expected a mapping with a 'cases' list", path, 1)
    if not isinstance(data, LineMap):
        raise CaseError("expected a mapping with a 'cases' list at the top level", path, 1)
    _check_keys(data, FILE_KEYS, path, "case file")
    entries = data.get("cases")
    if not isinstance(entries, list) or not entries:
        raise CaseError("'cases' must be a non-empty list of cases", path, data.line_of("cases"))
    defaults = {key: data[key] for key in data if key != "cases"}
    cases: list[Case] = []
    seen: dict[str, int] = {}
    for entry in entries:
        if not isinstance(entry, LineMap):
            raise CaseError("each case must be a mapping with an 'id'", path, data.line_of("cases"))
        case = _build_case(entry, data, defaults, path)
        if case.id in seen:
            raise CaseError(
                f"duplicate case id {case.id!r} (first at line {seen[case.id]})", path, case.line
            )
        seen[case.id] = case.line
        cases.append(case)
    return cases


def _build_case(entry: LineMap, top: LineMap, defaults: dict[str, Any], path: Path) -> Case:
    _check_keys(entry, CASE_KEYS, path, "case")

    def line_of(key: str) -> int:
        return entry.line_of(key) if key in entry else top.line_of(key)

    case_id = entry.get("id")
    if not isinstance(case_id, str) or not _ID.match(case_id):
        raise CaseError(
            f"case id must be a string of letters, digits and _.=+- (got {case_id!r})",
            path,
            entry.line_of("id"),
        )
    merged = {**defaults, **entry}
    if "workflow" not in merged:
        raise CaseError(f"case {case_id!r} names no workflow", path, entry.line)
    workflow_value = merged["workflow"]
    if not isinstance(workflow_value, str):
        raise CaseError("workflow must be a path (string)", path, line_of("workflow"))
    workflow_path = (path.parent / workflow_value).resolve()
    try:
        prompt = copy.deepcopy(load_workflow(workflow_path))
    except WorkflowError as exc:
        if exc.line is None and not workflow_path.exists():
            raise CaseError(
                f"workflow not found: {workflow_path}", path, line_of("workflow")
            ) from None
        raise

    seed = merged.get("seed")
    if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool) or seed < 0):
        raise CaseError(
            f"seed: expected a non-negative integer, got {seed!r}", path, line_of("seed")
        )

    overrides: dict[str, dict[str, Any]] = {}
    uploads: list[Upload] = []
    for source in (top, entry):
        block = source.get("inputs")
        if block is None:
            continue
        if not isinstance(block, LineMap):
            raise CaseError(
                "inputs: expected a mapping of node -> {input: value}",
                path,
                source.line_of("inputs"),
            )
        for ref, values in block.items():
            line = block.line_of(ref)
            try:
                node_id = find_node(prompt, str(ref))
            except OverrideError as exc:
                raise CaseError(str(exc), path, line) from None
            if not isinstance(values, LineMap):
                raise CaseError(
                    f"inputs of {ref!r}: expected a mapping of input -> value", path, line
                )
            for name, value in values.items():
                vline = values.line_of(name)
                value = _check_value(value, path, vline, name)
                try:
                    if isinstance(value, Upload):
                        set_input(prompt, node_id, str(name), value.path.name)
                        uploads.append(Upload(node_id, str(name), value.path))
                    else:
                        set_input(prompt, node_id, str(name), value)
                except OverrideError as exc:
                    raise CaseError(str(exc), path, vline) from None
                overrides.setdefault(node_id, {})[str(name)] = (
                    str(value.path) if isinstance(value, Upload) else value
                )

    for node_id, name in seed_targets(prompt):
        if name in overrides.get(node_id, {}):
            continue
        if seed is None:
            title = node_label(prompt, node_id)[1]
            raise CaseError(
                f"case {case_id!r} leaves input {name!r} of node {node_id} ({title}) unpinned: "
                "add 'seed: <integer>' to the case or set that input",
                path,
                entry.line,
            )
        prompt[node_id]["inputs"][name] = seed

    timeout = merged.get("timeout")
    if timeout is not None and (
        isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0
    ):
        raise CaseError(
            f"timeout: expected a positive number of seconds, got {timeout!r}",
            path,
            line_of("timeout"),
        )
    description = merged.get("description", "")
    if not isinstance(description, str):
        raise CaseError("description must be a string", path, line_of("description"))
    return Case(
        id=case_id,
        path=path,
        line=entry.line,
        workflow_path=workflow_path,
        prompt=prompt,
        seed=seed,
        tolerance=_tolerance(merged.get("tolerance"), path, line_of("tolerance")),
        timeout=float(timeout) if timeout is not None else None,
        description=description,
        uploads=tuple(uploads),
        overrides=overrides,
    )


def _check_value(value: Any, path: Path, line: int, name: Any) -> Any:
    if isinstance(value, LineMap):
        if set(value) != {"file"} or not isinstance(value["file"], str):
            raise CaseError(
                f"{name}: a mapping value must be {{file: <path>}} (a file to upload)", path, line
            )
        local = (path.parent / value["file"]).resolve()
        if not local.is_file():
            raise CaseError(f"{name}: file to upload not found: {local}", path, line)
        return Upload("", str(name), local)
    if isinstance(value, list):
        raise CaseError(f"{name}: list values are not supported as overrides", path, line)
    return value


def _tolerance(value: Any, path: Path, line: int) -> Tolerance:
    if value is None:
        return Tolerance()
    if isinstance(value, int) and not isinstance(value, bool):
        value = {"phash": value}
    if not isinstance(value, LineMap | dict):
        raise CaseError("tolerance: expected an integer (pHash bits) or a mapping", path, line)
    if isinstance(value, LineMap):
        _check_keys(value, TOLERANCE_KEYS, path, "tolerance")
    kwargs: dict[str, Any] = {}
    for key, raw in value.items():
        kline = value.line_of(key) if isinstance(value, LineMap) else line
        is_number = isinstance(raw, (int, float)) and not isinstance(raw, bool)
        if not is_number or raw < 0 or (key != "mean_pixel_diff" and not isinstance(raw, int)):
            kind = "a non-negative number" if key == "mean_pixel_diff" else "a non-negative integer"
            raise CaseError(f"tolerance.{key}: expected {kind}, got {raw!r}", path, kline)
        kwargs[key] = raw
    if kwargs.get("hash_size", 2) < 2:
        raise CaseError("tolerance.hash_size: must be at least 2", path, line)
    return Tolerance(**kwargs)


def _check_keys(mapping: LineMap, allowed: tuple[str, ...], path: Path, what: str) -> None:
    for key in mapping:
        if key not in allowed:
            close = difflib.get_close_matches(str(key), allowed, n=1, cutoff=0.5)
            hint = f"; did you mean {close[0]!r}?" if close else f" (known: {', '.join(allowed)})"
            raise CaseError(f"unknown {what} key {key!r}{hint}", path, mapping.line_of(key))
