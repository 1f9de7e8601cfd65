"""The reference cell of a sweep: the one the sweep report measures every other cell against.

``reference:`` names it by its values, axis -> value (``reference: {steps: 20, cfg: 7.0}``).
It may name only some of the axes (``reference: {steps: 20}``): of the cells it matches, the
default rule below picks one. It is checked when the file is collected: an axis the sweep
does not have, a value its axis does not list, or a combination no cell has (a ``zip``) is
an error at its file and line.

Without it, the reference is chosen from the values alone, never from measured times, so
it is the same cell on every run: **the most steps, then the highest values**. The axes are
compared in turn, an axis named ``steps`` (or ``<something>.steps``) first, then the others
in the order they are written; on each axis a cell ranks by its value when every value of
the axis is a number, else by the value's place in the axis's list (the last one listed
ranks highest). When that cell has no image (its run failed), the next cell by the same
order is taken, and the report says so.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from comfytest.errors import CaseError
from comfytest.workflow.prompt import did_you_mean

__all__ = ["DEFAULT_RULE", "check_reference", "preference"]

#: How the report words the default rule.
DEFAULT_RULE = "the most steps, then the highest values"


def check_reference(
    reference: Any,
    axes: Sequence[tuple[str, Sequence[Any]]],
    rows: Sequence[Mapping[str, Any]],
    path: Path,
    line: int,
) -> dict[str, Any]:
    """``reference`` as written, checked against the sweep's axes and cells (a CaseError at
    its file and line otherwise); {} when there is none."""
    if reference is None or reference == {}:
        return {}
    if not isinstance(reference, Mapping):
        raise CaseError(
            f"reference: expected a mapping of axis -> value, e.g. {{steps: 20}}, "
            f"not {reference!r}",
            path,
            line,
        )
    lines = getattr(reference, "lines", {})
    values = dict(axes)
    for name, value in reference.items():
        where = lines.get(name, line)
        if name not in values:
            raise CaseError(
                f"reference: {name!r} is not an axis of this sweep (its axes: "
                f"{', '.join(values)}){did_you_mean(str(name), values)}",
                path,
                where,
            )
        if not any(_same(value, v) for v in values[name]):
            listed = ", ".join(str(v) for v in values[name])
            raise CaseError(
                f"reference: {name}={value!r} is not one of the values of {name} ({listed})",
                path,
                where,
            )
    if not any(matches(row, reference) for row in rows):
        raise CaseError(
            f"reference: {dict(reference)} is not a cell of this sweep (the zipped values "
            "go together)",
            path,
            line,
        )
    return dict(reference)


def matches(values: Mapping[str, Any], reference: Mapping[str, Any]) -> bool:
    """The cell with ``values`` is one ``reference`` names (all the axes it names agree)."""
    return all(name in values and _same(values[name], v) for name, v in reference.items())


def preference(cells: Sequence[Mapping[str, Any]], reference: Mapping[str, Any]) -> list[int]:
    """The cells' indexes, the reference first: the cells ``reference`` matches (all of them
    when it is empty), by the default rule, then the rest by the same rule."""
    axes = list(dict.fromkeys(name for values in cells for name in values))
    axes.sort(key=lambda name: name.rsplit(".", 1)[-1] != "steps")  # stable: steps first
    ranks = {name: _ranks([values.get(name) for values in cells]) for name in axes}

    def key(index: int) -> tuple[Any, ...]:
        named = matches(cells[index], reference) if reference else True
        return (named, *(ranks[name][index] for name in axes), -index)

    return sorted(range(len(cells)), key=key, reverse=True)


def _ranks(column: list[Any]) -> list[float]:
    """Each cell's rank on one axis: its value when every value is a number, else the
    position of its value in the order the values first appear."""
    if all(_number(v) for v in column):
        return [float(v) for v in column]
    order = list(dict.fromkeys(repr(v) for v in column))
    return [float(order.index(repr(v))) for v in column]


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _same(a: Any, b: Any) -> bool:
    """Equal as YAML means it: 7 and 7.0 are the same value, True and 1 are not."""
    if _number(a) and _number(b):
        return bool(a == b)
    return type(a) is type(b) and bool(a == b)
