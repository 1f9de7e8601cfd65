"""Case files (YAML) -> Case objects, each mistake reported at its file and line.

A case file holds file-level defaults and a list of cases; each case, or each cell of its
sweep, becomes one Case::

    workflow: workflows/txt2img.json       # relative to this file
    seed: 42                               # pins every seed input of the workflow
    cases:
      - id: fox
        inputs:
          KSampler: {steps: 5, cfg: 7.0}   # node id, title, or a class_type used once
      - id: fox-sweep
        extends: fox                       # start from another case of this file
        matrix: {steps: [5, 10], cfg: [3.0, 7.0]}    # 4 cells: fox-sweep[steps=5-cfg=3.0] ...
        zip: {prompt: [a fox, a cat], seed: [1, 2]}  # paired values, one axis

Values are layered, later layers winning: the ``_defaults.yaml`` of every folder from the
case root down to the file's folder, the file's top level, the case it ``extends``, the case.
Paths are relative to the file that names them.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import re
from pathlib import Path
from typing import Any

from comfytest.cases.body import (
    Body,
    MarkSpec,
    axis_origin,
    check_keys,
    marks_of,
    sweep_axes,
    tolerance_of,
)
from comfytest.cases.case import Case
from comfytest.cases.cells import axis_parts, check_size, part_of
from comfytest.cases.recipe import Axis, Recipe, UiCheck, Upload
from comfytest.cases.reference import check_reference
from comfytest.cases.standin import ci_caps
from comfytest.cases.workflow_file import case_workflow
from comfytest.cases.yaml_reader import LineMap, load_yaml
from comfytest.comfy.schema_cache import NodeSchemas
from comfytest.errors import CaseError
from comfytest.workflow.convert import is_ui_workflow
from comfytest.workflow.prompt import (
    did_you_mean,
)

__all__ = [
    "CASE_KEYS",
    "DEFAULTS_FILE",
    "FILE_KEYS",
    "SCHEMA_PATH",
    "Case",
    "MarkSpec",
    "Recipe",
    "Upload",
    "load_cases",
]

DEFAULTS_FILE = "_defaults.yaml"
#: JSON Schema of case files, for editors (the loader below is what enforces it).
SCHEMA_PATH = Path(__file__).parent / "schema" / "cases.schema.json"
#: Keys a case may carry.
CASE_KEYS = (
    "id",
    "description",
    "extends",
    "workflow",
    "workflow_source",
    "seed",
    "inputs",
    "aliases",
    "matrix",
    "zip",
    "marks",
    "tolerance",
    "timeout",
    "repeat",
    "warmup",
    "reference",
    "server",
    "stand_in",
    "ci",
    "max_cells",
)
#: Keys a file's top level or a ``_defaults.yaml`` may carry (defaults for every case).
SHARED_KEYS = tuple(key for key in CASE_KEYS if key not in ("id", "extends"))
FILE_KEYS = (*SHARED_KEYS, "cases")
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.=+-]*$")


def load_cases(
    path: Path,
    root: Path | None = None,
    within: Path | None = None,
    schemas: NodeSchemas | None = None,
) -> list[Case]:
    """Parse a case file into Cases (sweeps expanded); raise CaseError at the first mistake.

    ``root`` is the case folder whose ``_defaults.yaml`` files apply, down to ``path``;
    ``within``, when given, is the folder every workflow and uploaded file must lie in;
    ``schemas``, a cached /object_info to check UI-format workflows' overrides against.
    """
    ui_check = UiCheck(schemas) if schemas is not None else None
    data = load_yaml(path)
    if data is None:
        raise CaseError("empty case file: expected a mapping with a 'cases' list", path, 1)
    if not isinstance(data, LineMap):
        raise CaseError("expected a mapping with a 'cases' list at the top level", path, 1)
    check_keys(data, FILE_KEYS, path, "case file")
    entries = data.get("cases")
    if not isinstance(entries, list) or not entries:
        raise CaseError("'cases' must be a non-empty list of cases", path, data.line_of("cases"))
    shared = Body()
    for defaults in _defaults_files(path, root):
        layer = load_yaml(defaults)
        if layer is None:
            continue
        if not isinstance(layer, LineMap):
            raise CaseError("a defaults file must be a mapping of case keys", defaults, 1)
        check_keys(layer, SHARED_KEYS, defaults, "defaults")
        shared.layer(layer, defaults)
    shared.layer(data, path)

    by_id: dict[str, LineMap] = {}
    for entry in entries:
        if not isinstance(entry, LineMap):
            raise CaseError("each case must be a mapping with an 'id'", path, data.line_of("cases"))
        check_keys(entry, CASE_KEYS, path, "case")
        case_id = entry.get("id")
        if not isinstance(case_id, str) or not _ID.match(case_id):
            raise CaseError(
                f"case id must be a string of letters, digits and _.=+- (got {case_id!r})",
                path,
                entry.line_of("id"),
            )
        if case_id in by_id:
            first = by_id[case_id].line
            raise CaseError(
                f"duplicate case id {case_id!r} (first at line {first})", path, entry.line
            )
        by_id[case_id] = entry

    cases: list[Case] = []
    for case_id, entry in by_id.items():
        body = shared.copy()
        for ancestor in _extends_chain(case_id, by_id, path):
            body.layer(ancestor, path)
        cases += _expand(case_id, entry, body, path, within, ui_check)
    return cases


def _defaults_files(path: Path, root: Path | None) -> list[Path]:
    """``_defaults.yaml`` files from ``root`` down to the case file's folder, outermost first."""
    folder = path.parent.resolve()
    top = root.resolve() if root is not None else folder
    if not folder.is_relative_to(top):
        top = folder
    chain = [folder, *folder.parents]
    chain = chain[: chain.index(top) + 1]
    return [d / DEFAULTS_FILE for d in reversed(chain) if (d / DEFAULTS_FILE).is_file()]


def _extends_chain(case_id: str, by_id: dict[str, LineMap], path: Path) -> list[LineMap]:
    """The case and the cases it extends, base first."""
    chain = [by_id[case_id]]
    seen = [case_id]
    while "extends" in chain[0]:
        parent = chain[0]["extends"]
        line = chain[0].line_of("extends")
        if not isinstance(parent, str) or parent not in by_id:
            raise CaseError(
                f"extends: no case {parent!r} in this file{did_you_mean(str(parent), by_id, n=1)}",
                path,
                line,
            )
        if parent in seen:
            cycle = " -> ".join([*reversed(seen), parent])
            raise CaseError(f"extends: cycle {cycle}", path, line)
        seen.append(parent)
        chain.insert(0, by_id[parent])
    return chain


def _expand(
    case_id: str,
    entry: LineMap,
    body: Body,
    path: Path,
    within: Path | None = None,
    ui_check: UiCheck | None = None,
) -> list[Case]:
    """One Case, or one per sweep cell, in document order (last axis varies fastest)."""
    axes = sweep_axes(body)
    if not axes:
        return [_build(case_id, entry, body, path, {}, "", within, ui_check)]
    names = [name for name, _, _ in axes]
    size = math.prod(len(vals) for _, vals, zipped in axes if not zipped)
    size *= next((len(vals) for _, vals, zipped in axes if zipped), 1)
    _, spath, sline = body.scalars["matrix" if "matrix" in body.scalars else "zip"]
    check_size(case_id, size, body.scalars.get("max_cells"), (spath, sline))
    matrix = [[(name, v) for v in vals] for name, vals, zipped in axes if not zipped]
    zipped_axes = [(name, vals) for name, vals, zipped in axes if zipped]
    zip_rows: list[list[tuple[str, Any]]] = [
        list(zip([name for name, _ in zipped_axes], row, strict=True))
        for row in zip(*[vals for _, vals in zipped_axes], strict=True)
    ] or [[]]
    rows = [[*m, *z] for m in itertools.product(*matrix) for z in zip_rows]
    written, rpath, rline = body.scalars.get("reference", ({}, path, entry.line))
    reference = check_reference(
        written, [(name, vals) for name, vals, _ in axes], [dict(r) for r in rows], rpath, rline
    )
    parts = {name: axis_parts([dict(row)[name] for row in rows]) for name in names}
    cases: list[Case] = []
    seen: dict[str, dict[str, Any]] = {}
    for row in rows:
        values = dict(row)
        cell = "-".join(f"{name}={part_of(parts[name], values[name])}" for name in names)
        if cell in seen:
            origin = axis_origin(body, names[0], (path, entry.line))
            raise CaseError(f"the sweep has cell {cell} twice: a value is listed twice", *origin)
        seen[cell] = values
        case = _build(case_id, entry, body, path, values, cell, within, ui_check)
        cases.append(dataclasses.replace(case, reference=dict(reference)))
    return cases


def _build(
    case_id: str,
    entry: LineMap,
    body: Body,
    path: Path,
    values: dict[str, Any],
    cell: str,
    within: Path | None = None,
    ui_check: UiCheck | None = None,
) -> Case:
    workflow_path, source, workflow = case_workflow(body, case_id, path, entry.line, within)

    seed, spath, sline = body.scalars.get("seed", (None, path, entry.line))
    if "seed" in values:
        seed = values["seed"]
        spath, sline = axis_origin(body, "seed", (path, entry.line))
    if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool) or seed < 0):
        raise CaseError(f"seed: expected a non-negative integer, got {seed!r}", spath, sline)
    axes = []
    for axis, value in values.items():
        if axis == "seed":
            continue
        alias = body.aliases.get(axis)
        target, apath, aline = (
            alias if alias else (axis, *axis_origin(body, axis, (path, entry.line)))
        )
        axes.append(Axis(axis, target, value, apath, aline))
    ci_value, cpath, cline = body.scalars.get("ci", (None, path, entry.line))
    recipe = Recipe(
        case_id,
        path,
        entry.line,
        tuple(body.settings),
        tuple(axes),
        seed,
        within,
        stand_ins=tuple(body.stand_ins),
        ci=ci_caps(ci_value, cpath, cline),
    )

    if not is_ui_workflow(workflow):
        recipe.apply(workflow)  # every override and seed checked before anything runs
    elif ui_check is not None:
        ui_check.check(recipe, (workflow_path, source), workflow)

    timeout, tpath, tline = body.scalars.get("timeout", (None, path, entry.line))
    if timeout is not None and (
        isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0
    ):
        raise CaseError(
            f"timeout: expected a positive number of seconds, got {timeout!r}", tpath, tline
        )
    description, dpath, dline = body.scalars.get("description", ("", path, entry.line))
    if not isinstance(description, str):
        raise CaseError("description must be a string", dpath, dline)
    counts = {}
    for key, least in (("repeat", 1), ("warmup", 0)):
        count, cpath, cline = body.scalars.get(key, (least, path, entry.line))
        if not isinstance(count, int) or isinstance(count, bool) or count < least:
            raise CaseError(f"{key}: expected an integer >= {least}, got {count!r}", cpath, cline)
        counts[key] = count
    return Case(
        name=f"{case_id}[{cell}]" if cell else case_id,
        case_id=case_id,
        path=path,
        line=entry.line,
        workflow_path=workflow_path,
        workflow=workflow,
        recipe=recipe,
        seed=seed,
        tolerance=tolerance_of(body),
        timeout=float(timeout) if timeout is not None else None,
        description=description,
        cell=cell,
        values=values,
        marks=marks_of(body, values),
        repeat=counts["repeat"],
        warmup=counts["warmup"],
        server=dict(body.server),
    )
