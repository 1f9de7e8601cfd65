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
import functools
import itertools
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from comfytest._yaml import LineMap, load_yaml
from comfytest.compare import HASHES, Tolerance
from comfytest.convert import is_ui_workflow
from comfytest.errors import CaseError, WorkflowError
from comfytest.recipe import Axis, Recipe, Setting, Upload, confined
from comfytest.workflow import (
    Prompt,
    did_you_mean,
    load_workflow,
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
)
#: Keys a file's top level or a ``_defaults.yaml`` may carry (defaults for every case).
SHARED_KEYS = tuple(key for key in CASE_KEYS if key not in ("id", "extends"))
FILE_KEYS = (*SHARED_KEYS, "cases")
TOLERANCE_KEYS = (
    "phash",
    "dhash",
    "whash",
    "colorhash",
    "hash_size",
    "max_pixel_diff",
    "mean_pixel_diff",
    "min_psnr",
    "regex",
)
_TAG_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.=+-]*$")
_UNSAFE = re.compile(r"[^A-Za-z0-9_.+:x-]+")


@dataclass(frozen=True)
class MarkSpec:
    """A pytest mark named in YAML; ``when`` limits it to sweep cells with those values."""

    name: str
    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    when: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Case:
    """One runnable case, or one cell of a sweep: a finished prompt plus how to judge it."""

    name: str  # the pytest item name: "fox" or "fox[steps=5-cfg=3.0]"
    case_id: str
    path: Path
    line: int
    workflow_path: Path
    prompt: Prompt
    seed: int | None
    tolerance: Tolerance
    timeout: float | None = None
    description: str = ""
    cell: str = ""
    values: Mapping[str, Any] = field(default_factory=dict)
    uploads: tuple[Upload, ...] = ()
    overrides: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    marks: tuple[MarkSpec, ...] = ()
    repeat: int = 1
    warmup: int = 0
    #: The sweep cell others are measured against in the sweep report (axis -> value).
    reference: Mapping[str, Any] = field(default_factory=dict)
    recipe: Recipe | None = None
    #: Server tags this case needs (``server: {gpu: h100}``); values as written, scalars.
    server: Mapping[str, Any] = field(default_factory=dict)
    #: A UI-format workflow, converted at run time (needs /object_info); ``prompt`` is empty.
    ui_workflow: Mapping[str, Any] | None = None

    @property
    def folder(self) -> str:
        """Where this case's baselines live, under its case file's folder."""
        return f"{self.case_id}/{self.cell}" if self.cell else self.case_id


@dataclass
class _Body:
    """A case's values as the layers accumulate them, each remembering its file and line."""

    scalars: dict[str, tuple[Any, Path, int]] = field(default_factory=dict)
    settings: list[Setting] = field(default_factory=list)
    aliases: dict[str, tuple[str, Path, int]] = field(default_factory=dict)
    tolerance: dict[str, tuple[Any, Path, int]] = field(default_factory=dict)
    marks: list[tuple[Any, Path, int]] = field(default_factory=list)
    server: dict[str, Any] = field(default_factory=dict)

    def copy(self) -> _Body:
        return _Body(
            dict(self.scalars),
            list(self.settings),
            dict(self.aliases),
            dict(self.tolerance),
            list(self.marks),
            dict(self.server),
        )

    def layer(self, data: LineMap, path: Path) -> None:
        """Apply one mapping of case keys written in ``path``."""
        for key, value in data.items():
            line = data.line_of(key)
            if key == "inputs":
                self.settings += _settings(value, path, line)
            elif key == "aliases":
                self.aliases.update(_aliases(value, path, line))
            elif key == "tolerance":
                self.tolerance.update(_tolerance_layer(value, path, line))
            elif key == "server":
                for tag, wanted in _server_layer(value, path, line).items():
                    if wanted is None:
                        self.server.pop(tag, None)  # a later layer drops a requirement
                    else:
                        self.server[tag] = wanted
            elif key == "marks":
                if not isinstance(value, list):
                    raise CaseError("marks: expected a list", path, line)
                self.marks += [(mark, path, line) for mark in value]
            elif key == "workflow":
                if not isinstance(value, str):
                    raise CaseError("workflow must be a path (string)", path, line)
                self.scalars[key] = ((path.parent / value).resolve(), path, line)
            elif key not in ("id", "extends", "cases"):
                self.scalars[key] = (value, path, line)


def load_cases(path: Path, root: Path | None = None, within: Path | None = None) -> list[Case]:
    """Parse a case file into Cases (sweeps expanded); raise CaseError at the first mistake.

    ``root`` is the case folder whose ``_defaults.yaml`` files apply, down to ``path``;
    ``within``, when given, is the folder every workflow and uploaded file must lie in.
    """
    data = load_yaml(path)
    if data is None:
        raise CaseError("empty case file: expected a mapping with a 'cases' list", path, 1)
    if not isinstance(data, LineMap):
        raise CaseError("expected a mapping with a 'cases' list at the top level", path, 1)
    _check_keys(data, FILE_KEYS, path, "case file")
    entries = data.get("cases")
    if not isinstance(entries, list) or not entries:
        raise CaseError("'cases' must be a non-empty list of cases", path, data.line_of("cases"))
    shared = _Body()
    for defaults in _defaults_files(path, root):
        layer = load_yaml(defaults)
        if layer is None:
            continue
        if not isinstance(layer, LineMap):
            raise CaseError("a defaults file must be a mapping of case keys", defaults, 1)
        _check_keys(layer, SHARED_KEYS, defaults, "defaults")
        shared.layer(layer, defaults)
    shared.layer(data, path)

    by_id: dict[str, LineMap] = {}
    for entry in entries:
        if not isinstance(entry, LineMap):
            raise CaseError("each case must be a mapping with an 'id'", path, data.line_of("cases"))
        _check_keys(entry, CASE_KEYS, path, "case")
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
        cases += _expand(case_id, entry, body, path, within)
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
    case_id: str, entry: LineMap, body: _Body, path: Path, within: Path | None = None
) -> list[Case]:
    """One Case, or one per sweep cell, in document order (last axis varies fastest)."""
    axes = _axes(body)
    if not axes:
        return [_build(case_id, entry, body, path, {}, "", within)]
    names = [name for name, _, _ in axes]
    matrix = [[(name, v) for v in vals] for name, vals, zipped in axes if not zipped]
    zipped_axes = [(name, vals) for name, vals, zipped in axes if zipped]
    zip_rows: list[list[tuple[str, Any]]] = [
        list(zip([name for name, _ in zipped_axes], row, strict=True))
        for row in zip(*[vals for _, vals in zipped_axes], strict=True)
    ] or [[]]
    rows = [[*m, *z] for m in itertools.product(*matrix) for z in zip_rows]
    reference, rpath, rline = body.scalars.get("reference", ({}, path, entry.line))
    if reference and (
        not isinstance(reference, Mapping)
        or not any(all(dict(row).get(k) == v for k, v in reference.items()) for row in rows)
    ):
        raise CaseError(
            f"reference: {dict(reference) if isinstance(reference, Mapping) else reference!r} "
            "is not a cell of this sweep",
            rpath,
            rline,
        )
    cases: list[Case] = []
    seen: dict[str, int] = {}
    for row in rows:
        values = dict(row)
        cell = "-".join(f"{name}={_format(values[name])}" for name in names)
        if cell in seen:
            seen[cell] += 1
            cell = f"{cell}-{seen[cell]}"
        else:
            seen[cell] = 0
        case = _build(case_id, entry, body, path, values, cell, within)
        cases.append(dataclasses.replace(case, reference=dict(reference)))
    return cases


def _axes(body: _Body) -> list[tuple[str, list[Any], bool]]:
    axes: list[tuple[str, list[Any], bool]] = []
    lengths: dict[str, int] = {}
    for key, zipped in (("matrix", False), ("zip", True)):
        if key not in body.scalars:
            continue
        value, path, line = body.scalars[key]
        if not isinstance(value, LineMap) or not value:
            raise CaseError(f"{key}: expected a mapping of input -> list of values", path, line)
        for name, values in value.items():
            vline = value.line_of(name)
            if not isinstance(values, list) or not values:
                raise CaseError(f"{key}.{name}: expected a non-empty list of values", path, vline)
            if any(name == other for other, _, _ in axes):
                raise CaseError(f"{key}.{name}: {name!r} is swept twice", path, vline)
            if zipped:
                lengths[name] = len(values)
            axes.append((str(name), values, zipped))
        if zipped and len(set(lengths.values())) > 1:
            sizes = ", ".join(f"{n}: {count}" for n, count in lengths.items())
            raise CaseError(f"zip: the lists must have the same length ({sizes})", path, line)
    return axes


def _build(
    case_id: str,
    entry: LineMap,
    body: _Body,
    path: Path,
    values: dict[str, Any],
    cell: str,
    within: Path | None = None,
) -> Case:
    workflow_path, wpath, wline = body.scalars.get("workflow", (None, path, entry.line))
    if workflow_path is None:
        raise CaseError(f"case {case_id!r} names no workflow", path, entry.line)
    confined(workflow_path, within, "workflow", wpath, wline)
    try:
        workflow = _load_workflow_cached(workflow_path)
    except WorkflowError as exc:
        if exc.line is None and not workflow_path.exists():
            raise CaseError(f"workflow not found: {workflow_path}", wpath, wline) from None
        raise

    seed, spath, sline = body.scalars.get("seed", (None, path, entry.line))
    if "seed" in values:
        seed = values["seed"]
        spath, sline = _axis_origin(body, "seed", (path, entry.line))
    if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool) or seed < 0):
        raise CaseError(f"seed: expected a non-negative integer, got {seed!r}", spath, sline)
    axes = []
    for axis, value in values.items():
        if axis == "seed":
            continue
        alias = body.aliases.get(axis)
        target, apath, aline = (
            alias if alias else (axis, *_axis_origin(body, axis, (path, entry.line)))
        )
        axes.append(Axis(axis, target, value, apath, aline))
    recipe = Recipe(case_id, path, entry.line, tuple(body.settings), tuple(axes), seed, within)

    ui = is_ui_workflow(workflow)
    prompt, uploads, overrides = ({}, (), {}) if ui else recipe.apply(workflow)

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
        prompt=prompt,
        seed=seed,
        tolerance=_tolerance(body),
        timeout=float(timeout) if timeout is not None else None,
        description=description,
        cell=cell,
        values=values,
        uploads=uploads,
        overrides=overrides,
        marks=_marks(body, values),
        repeat=counts["repeat"],
        warmup=counts["warmup"],
        recipe=recipe,
        server=dict(body.server),
        ui_workflow=workflow if ui else None,
    )


def _load_workflow_cached(path: Path) -> Prompt:
    """Parse each workflow file once per collection (many cases and cells share one)."""
    try:
        stat = path.stat()
    except OSError:
        return load_workflow(path)  # raises the readable error
    return _parsed(str(path), stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=128)
def _parsed(path: str, mtime_ns: int, size: int) -> Prompt:
    return load_workflow(Path(path))


def _axis_origin(body: _Body, axis: str, default: tuple[Path, int]) -> tuple[Path, int]:
    """File and line where a sweep axis was written."""
    for key in ("matrix", "zip"):
        if key in body.scalars:
            value, path, _ = body.scalars[key]
            if isinstance(value, LineMap) and axis in value:
                return path, value.line_of(axis)
    return default


def _format(value: Any) -> str:
    """A value as it appears in a cell id: short, and safe in a folder name."""
    if isinstance(value, bool):
        text = str(value).lower()
    elif isinstance(value, float):
        text = repr(value)
    elif isinstance(value, list) and len(value) == 2:
        text = f"{value[0]}x{value[1]}"
    else:
        text = str(value)
    text = _UNSAFE.sub("_", text).strip("_")
    return text[:40] or "_"


def _settings(value: Any, path: Path, line: int) -> list[Setting]:
    if not isinstance(value, LineMap):
        raise CaseError("inputs: expected a mapping of node -> {input: value}", path, line)
    settings = []
    for ref, inputs in value.items():
        rline = value.line_of(ref)
        if not isinstance(inputs, LineMap):
            raise CaseError(f"inputs of {ref!r}: expected a mapping of input -> value", path, rline)
        settings += [
            Setting(str(ref), str(name), item, path, inputs.line_of(name))
            for name, item in inputs.items()
        ]
    return settings


def _aliases(value: Any, path: Path, line: int) -> dict[str, tuple[str, Path, int]]:
    if not isinstance(value, LineMap):
        raise CaseError("aliases: expected a mapping of name -> 'Node.input'", path, line)
    result = {}
    for name, target in value.items():
        aline = value.line_of(name)
        if not isinstance(target, str) or "." not in target:
            raise CaseError(
                f"aliases.{name}: expected 'Node.input' (a node id, title or class, a dot, "
                f"an input name), got {target!r}",
                path,
                aline,
            )
        result[str(name)] = (target, path, aline)
    return result


def _server_layer(value: Any, path: Path, line: int) -> dict[str, Any]:
    """``server: {tag: value}``: each value a string, number or boolean (null drops it)."""
    if not isinstance(value, LineMap):
        raise CaseError("server: expected a mapping of tag -> value, e.g. {gpu: h100}", path, line)
    layer = {}
    for tag, wanted in value.items():
        tline = value.line_of(tag)
        if not isinstance(tag, str) or not _TAG_KEY.match(tag):
            raise CaseError(f"server: a tag name must be a plain name, got {tag!r}", path, tline)
        if isinstance(wanted, (list, dict)) or (
            wanted is not None and not isinstance(wanted, (str, int, float, bool))
        ):
            raise CaseError(
                f"server.{tag}: expected a string, number or boolean, got {wanted!r}", path, tline
            )
        if isinstance(wanted, str) and (not wanted or any(c.isspace() for c in wanted)):
            raise CaseError(f"server.{tag}: a tag value has no spaces, got {wanted!r}", path, tline)
        layer[tag] = wanted
    return layer


def _tolerance_layer(value: Any, path: Path, line: int) -> dict[str, tuple[Any, Path, int]]:
    if isinstance(value, int) and not isinstance(value, bool):
        return {"phash": (value, path, line)}
    if not isinstance(value, LineMap):
        raise CaseError("tolerance: expected an integer (pHash bits) or a mapping", path, line)
    _check_keys(value, (*TOLERANCE_KEYS, "outputs"), path, "tolerance")
    layer = {str(key): (raw, path, value.line_of(key)) for key, raw in value.items()}
    if "outputs" in value:
        outputs = value["outputs"]
        oline = value.line_of("outputs")
        if not isinstance(outputs, LineMap):
            raise CaseError("tolerance.outputs: expected output key -> {tolerance}", path, oline)
        for key, limits in outputs.items():
            kline = outputs.line_of(key)
            if not isinstance(limits, LineMap):
                raise CaseError(f"tolerance.outputs.{key}: expected a mapping", path, kline)
            _check_keys(limits, TOLERANCE_KEYS, path, "tolerance")
            for name, raw in limits.items():
                _tolerance_value(name, raw, path, limits.line_of(name))
        layer["outputs"] = ({str(k): dict(v) for k, v in outputs.items()}, path, oline)
    return layer


def _tolerance_value(key: str, raw: Any, path: Path, line: int) -> Any:
    """Check one tolerance value: hashes and max_pixel_diff are integers (a hash may be null:
    not computed); mean_pixel_diff and min_psnr are numbers."""
    if raw is None and key in HASHES:
        return None
    if key == "regex":
        if not isinstance(raw, str):
            raise CaseError(f"tolerance.regex: expected a string, got {raw!r}", path, line)
        try:
            re.compile(raw)
        except re.error as exc:
            raise CaseError(f"tolerance.regex: {exc}", path, line) from None
        return raw
    real = key in ("mean_pixel_diff", "min_psnr")
    is_number = isinstance(raw, (int, float)) and not isinstance(raw, bool)
    if not is_number or raw < 0 or (not real and not isinstance(raw, int)):
        kind = "a non-negative number" if real else "a non-negative integer"
        nullable = " or null" if key in HASHES else ""
        raise CaseError(f"tolerance.{key}: expected {kind}{nullable}, got {raw!r}", path, line)
    if key == "hash_size" and raw < 2:
        raise CaseError("tolerance.hash_size: must be at least 2", path, line)
    return raw


def _tolerance(body: _Body) -> Tolerance:
    kwargs: dict[str, Any] = {}
    for key, (raw, path, line) in body.tolerance.items():
        kwargs[key] = raw if key == "outputs" else _tolerance_value(key, raw, path, line)
    return Tolerance(**kwargs)


_MARK_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _marks(body: _Body, values: Mapping[str, Any]) -> tuple[MarkSpec, ...]:
    """Marks as written: ``slow``, ``{skip: reason}``, ``{xfail: {reason: .., when: {..}}}``."""
    marks: list[MarkSpec] = []
    for raw, path, line in body.marks:
        if isinstance(raw, str):
            name, args = raw, None
        elif isinstance(raw, LineMap) and len(raw) == 1:
            name, args = next(iter(raw.items()))
            line = raw.line_of(name)
        else:
            raise CaseError(
                "each mark is a name, or {name: reason} / {name: {arguments}}", path, line
            )
        if not isinstance(name, str) or not _MARK_NAME.match(name):
            raise CaseError(f"mark name must be an identifier, got {name!r}", path, line)
        when: Mapping[str, Any] = {}
        if args is None:
            spec = MarkSpec(name)
        elif isinstance(args, LineMap):
            kwargs = dict(args)
            when = kwargs.pop("when", {})
            if not isinstance(when, Mapping):
                raise CaseError(f"{name}.when: expected a mapping of axis -> value", path, line)
            spec = MarkSpec(name, (), kwargs, when)
        elif isinstance(args, list):
            spec = MarkSpec(name, tuple(args))
        else:
            reason = {"reason": args} if name in ("skip", "xfail") else None
            spec = MarkSpec(name, () if reason else (args,), reason or {})
        unknown = [axis for axis in when if axis not in values]
        if unknown:
            raise CaseError(f"{name}.when: {unknown[0]!r} is not a swept axis", path, line)
        if all(values[axis] == wanted for axis, wanted in when.items()):
            marks.append(spec)
    return tuple(marks)


def _check_keys(mapping: LineMap, allowed: tuple[str, ...], path: Path, what: str) -> None:
    for key in mapping:
        if key not in allowed:
            hint = did_you_mean(str(key), allowed, n=1) or f" (known: {', '.join(allowed)})"
            raise CaseError(f"unknown {what} key {key!r}{hint}", path, mapping.line_of(key))
