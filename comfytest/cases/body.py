"""One case's values as its layers accumulate them: the ``_defaults.yaml`` files, the case
file's top level, the cases it ``extends``, the case itself. Each value is checked as it is
read and remembers the file and line it was written at, so a mistake points there.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from comfytest.cases.recipe import Setting
from comfytest.cases.standin import StandIn, ci_caps, stand_ins
from comfytest.cases.yaml_reader import LineMap
from comfytest.errors import CaseError
from comfytest.judging.compare import HASHES, PROFILES, Tolerance
from comfytest.workflow.prompt import did_you_mean

__all__ = [
    "TOLERANCE_KEYS",
    "Body",
    "MarkSpec",
    "axis_origin",
    "check_keys",
    "marks_of",
    "sweep_axes",
    "tolerance_of",
]

TOLERANCE_KEYS = (
    "pixel_threshold",
    "max_diff_ratio",
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


@dataclass(frozen=True)
class MarkSpec:
    """A pytest mark named in YAML; ``when`` limits it to sweep cells with those values."""

    name: str
    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    when: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class Body:
    """A case's values as the layers accumulate them, each remembering its file and line."""

    scalars: dict[str, tuple[Any, Path, int]] = field(default_factory=dict)
    settings: list[Setting] = field(default_factory=list)
    aliases: dict[str, tuple[str, Path, int]] = field(default_factory=dict)
    tolerance: dict[str, tuple[Any, Path, int]] = field(default_factory=dict)
    marks: list[tuple[Any, Path, int]] = field(default_factory=list)
    server: dict[str, Any] = field(default_factory=dict)
    #: ``stand_in`` entries of every layer, in order (a later one wins for a model name).
    stand_ins: list[StandIn] = field(default_factory=list)

    def copy(self) -> Body:
        return Body(
            dict(self.scalars),
            list(self.settings),
            dict(self.aliases),
            dict(self.tolerance),
            list(self.marks),
            dict(self.server),
            list(self.stand_ins),
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
            elif key == "stand_in":
                self.stand_ins += stand_ins(value, path, line)
            elif key == "ci":
                ci_caps(value, path, line)  # checked where it is written
                self.scalars[key] = (value, path, line)
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


def sweep_axes(body: Body) -> list[tuple[str, list[Any], bool]]:
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


def axis_origin(body: Body, axis: str, default: tuple[Path, int]) -> tuple[Path, int]:
    """File and line where a sweep axis was written."""
    for key in ("matrix", "zip"):
        if key in body.scalars:
            value, path, _ = body.scalars[key]
            if isinstance(value, LineMap) and axis in value:
                return path, value.line_of(axis)
    return default


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
        # pHash bits alone, as before pixel limits were the default: the GPU profile's shape.
        return {"phash": (value, path, line), "max_diff_ratio": (None, path, line)}
    if isinstance(value, str) and value in PROFILES:
        return {key: (raw, path, line) for key, raw in PROFILES[value].items()}
    if not isinstance(value, LineMap):
        raise CaseError(
            f"tolerance: expected a profile ({', '.join(PROFILES)}), an integer (pHash bits) "
            f"or a mapping, got {value!r}",
            path,
            line,
        )
    check_keys(value, (*TOLERANCE_KEYS, "outputs"), path, "tolerance")
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
            check_keys(limits, TOLERANCE_KEYS, path, "tolerance")
            for name, raw in limits.items():
                _tolerance_value(name, raw, path, limits.line_of(name))
        layer["outputs"] = ({str(k): dict(v) for k, v in outputs.items()}, path, oline)
    return layer


def _tolerance_value(key: str, raw: Any, path: Path, line: int) -> Any:
    """Check one tolerance value: hashes, pixel_threshold and max_pixel_diff are integers (a
    hash may be null: not computed); max_diff_ratio (null: off, else 0 to 1),
    mean_pixel_diff and min_psnr are numbers."""
    nullable = key in HASHES or key == "max_diff_ratio"
    if raw is None and nullable:
        return None
    if key == "regex":
        if not isinstance(raw, str):
            raise CaseError(f"tolerance.regex: expected a string, got {raw!r}", path, line)
        try:
            re.compile(raw)
        except re.error as exc:
            raise CaseError(f"tolerance.regex: {exc}", path, line) from None
        return raw
    real = key in ("mean_pixel_diff", "min_psnr", "max_diff_ratio")
    is_number = isinstance(raw, (int, float)) and not isinstance(raw, bool)
    too_big = key == "max_diff_ratio" and is_number and raw > 1
    if not is_number or raw < 0 or too_big or (not real and not isinstance(raw, int)):
        kind = "a non-negative number" if real else "a non-negative integer"
        kind = "a fraction from 0 to 1" if key == "max_diff_ratio" else kind
        or_null = " or null" if nullable else ""
        raise CaseError(f"tolerance.{key}: expected {kind}{or_null}, got {raw!r}", path, line)
    if key == "hash_size" and raw < 2:
        raise CaseError("tolerance.hash_size: must be at least 2", path, line)
    return raw


def tolerance_of(body: Body) -> Tolerance:
    kwargs: dict[str, Any] = {}
    for key, (raw, path, line) in body.tolerance.items():
        kwargs[key] = raw if key == "outputs" else _tolerance_value(key, raw, path, line)
    return Tolerance(**kwargs)


_MARK_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def marks_of(body: Body, values: Mapping[str, Any]) -> tuple[MarkSpec, ...]:
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


def check_keys(mapping: LineMap, allowed: tuple[str, ...], path: Path, what: str) -> None:
    for key in mapping:
        if key not in allowed:
            hint = did_you_mean(str(key), allowed, n=1) or f" (known: {', '.join(allowed)})"
            raise CaseError(f"unknown {what} key {key!r}{hint}", path, mapping.line_of(key))
