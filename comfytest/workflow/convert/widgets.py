"""Widget values: which saved ``widgets_values`` belong to which inputs, and what is sent.

Walks ``input_order``, skips the values the frontend saves but never sends
(``control_after_generate`` modes, combo filters, upload buttons), aligns by shape when the
count is off, fills defaults, and resolves ``dynamicPrompts`` text deterministically.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

WIDGET_TYPES = frozenset({"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"})
SEED_INPUTS = ("seed", "noise_seed")
CONTROL_VALUES = frozenset({"fixed", "increment", "decrement", "randomize", "increment-wrap"})
UPLOAD_FLAGS = {"image_upload": "image", "video_upload": "video", "audio_upload": "audio"}


class AlignmentError(Exception):
    """widgets_values cannot be matched to the node's widgets."""


@dataclass(frozen=True)
class Widget:
    """An input the frontend shows as a widget, and the unsent values it saves after it."""

    name: str
    kind: str
    options: dict[str, Any]
    extras: tuple[str, ...] = ()  # "control", "filter", "upload"

    @property
    def choices(self) -> list[Any]:
        return list(self.options.get("options") or [])


def _input_specs(spec: dict[str, Any]) -> Iterator[tuple[str, list[Any]]]:
    """(name, config) of every required then optional input, in ``input_order``."""
    sections = spec.get("input") or {}
    order = spec.get("input_order") or {}
    for section in ("required", "optional"):
        configs = sections.get(section) or {}
        for name in order.get(section) or list(configs):
            if name in configs:
                yield name, list(configs[name])


def widget_of_config(name: str, config: list[Any]) -> Widget | None:
    kind_or_choices = config[0] if config else None
    options = dict(config[1]) if len(config) > 1 and isinstance(config[1], dict) else {}
    if options.get("forceInput"):
        return None
    if isinstance(kind_or_choices, list):
        options["options"] = kind_or_choices
        kind = "COMBO"
    elif kind_or_choices in WIDGET_TYPES:
        kind = str(kind_or_choices)
    else:
        return None
    extras: tuple[str, ...] = ()
    control = options.get("control_after_generate", name in SEED_INPUTS)
    if kind == "INT" and control:
        extras = ("control",)
    elif kind == "COMBO" and options.get("control_after_generate"):
        extras = ("control", "filter")
    if any(options.get(flag) for flag in UPLOAD_FLAGS):
        extras += ("upload",)
    return Widget(name, kind, options, extras)


def widgets_of(spec: dict[str, Any]) -> list[Widget]:
    """The node's widgets in the order the frontend creates them."""
    return [w for name, config in _input_specs(spec) if (w := widget_of_config(name, config))]


def saved_layout(widgets: Sequence[Widget], *, uploads: bool) -> list[tuple[Widget, str]]:
    """Every saved value in order: (widget, "value" or the extra it is)."""
    slots = []
    for widget in widgets:
        slots.append((widget, "value"))
        slots += [(widget, extra) for extra in widget.extras if uploads or extra != "upload"]
    return slots


def _fits(widget: Widget, value: Any) -> bool:
    """Could ``value`` be this widget's value? Loose on purpose: only catches misalignment."""
    if widget.kind in ("INT", "FLOAT"):
        return value is None or (isinstance(value, (int, float)) and not isinstance(value, bool))
    if widget.kind == "BOOLEAN":
        return isinstance(value, bool)
    if widget.kind == "STRING":
        return isinstance(value, str)
    return not (isinstance(value, str) and value in CONTROL_VALUES) or value in widget.choices


def _looks_like(extra: str, value: Any) -> bool:
    if extra == "control":
        return value in CONTROL_VALUES
    if extra == "filter":
        return isinstance(value, str)
    return value is None or value in UPLOAD_FLAGS.values()


def align_exact(widgets: Sequence[Widget], values: Sequence[Any]) -> dict[str, Any] | None:
    """Values by position when the count matches a known layout and every value fits."""
    for uploads in (True, False):
        slots = saved_layout(widgets, uploads=uploads)
        if len(slots) != len(values):
            continue
        found = {w.name: v for (w, role), v in zip(slots, values, strict=True) if role == "value"}
        if all(_fits(w, found[w.name]) for w in widgets):
            return found
    return None


def align_by_shape(widgets: Sequence[Widget], values: Sequence[Any]) -> dict[str, Any]:
    """Walk the widgets, skipping saved extras only where a value looks like one.

    Values left over at the end belong to widgets that frontend extensions add after the
    node's inputs (3D previews, size read-outs); the frontend ignores them, and so do we.
    """
    found: dict[str, Any] = {}
    position = 0
    for widget in widgets:
        if position >= len(values):
            break
        value = values[position]
        if not _fits(widget, value):
            raise AlignmentError(
                f"widgets_values {list(values)!r} do not line up with the widgets "
                f"{[w.name for w in widgets]}: {value!r} cannot be {widget.name!r} ({widget.kind})"
            )
        found[widget.name] = value
        position += 1
        for extra in widget.extras:
            if position < len(values) and _looks_like(extra, values[position]):
                position += 1
    return found


def default_value(widget: Widget) -> Any:
    if "default" in widget.options:
        return widget.options["default"]
    return widget.choices[0] if widget.choices else None


def is_dynamic_prompt(spec: dict[str, Any], name: str) -> bool:
    for input_name, config in _input_specs(spec):
        if input_name == name:
            widget = widget_of_config(name, config)
            return bool(widget and widget.kind == "STRING" and widget.options.get("dynamicPrompts"))
    return False


def widget_inputs(node: dict[str, Any], spec: dict[str, Any]) -> dict[str, Any]:
    """API inputs from the node's ``widgets_values`` (list or dict form)."""
    widgets = widgets_of(spec)
    saved = node.get("widgets_values")
    if isinstance(saved, dict):
        names = {name for name, _ in _input_specs(spec)}
        found = {name: value for name, value in saved.items() if name in names}
    else:
        values = list(saved or [])
        found = align_exact(widgets, values) or align_by_shape(widgets, values)
    inputs: dict[str, Any] = {}
    for widget in widgets:
        value = found[widget.name] if widget.name in found else default_value(widget)
        if value is None and widget.name not in found:
            continue
        if widget.kind == "STRING" and widget.options.get("dynamicPrompts"):
            value = dynamic_prompt(value)
        inputs[widget.name] = wrap(value)
    extra = {name: wrap(value) for name, value in found.items() if name not in inputs}
    return inputs | extra


def wrap(value: Any) -> Any:
    """Lists go out as ``{"__value__": [...]}``, so the server does not read them as links."""
    return {"__value__": value} if isinstance(value, list) else value


# -- dynamicPrompts ----------------------------------------------------------------------------


_COMMENTS = re.compile(r"/\*[\s\S]*?\*/|//.*")


def dynamic_prompt(text: Any) -> Any:
    """The frontend's ``processDynamicPrompt``, choosing the first option of every ``{a|b}``."""
    if not isinstance(text, str):
        return text
    source = _COMMENTS.sub("", text)
    return re.sub(r"\\([{}|])", r"\1", _expand(source))


def _expand(text: str, position: int = 0) -> str:
    """Copy ``text``; each ``{...}`` group becomes its first option (expanded in turn)."""
    out = []
    while position < len(text):
        char = text[position]
        position += 1
        if char == "\\":
            out.append(text[position - 1 : position + 1])
            position += 1
        elif char == "{":
            choice, position = _first_choice(text, position)
            out.append(choice)
        else:
            out.append(char)
    return "".join(out)


def _first_choice(text: str, position: int) -> tuple[str, int]:
    """Read one ``{a|b}`` group (``position`` is just after ``{``); expand its first option."""
    options, current, depth = [], [], 0
    while position < len(text):
        char = text[position]
        position += 1
        if char == "\\":
            current.append(text[position - 1 : position + 1])
            position += 1
            continue
        if char == "{":
            depth += 1
        elif char == "}":
            if not depth:
                break
            depth -= 1
        elif char == "|" and not depth:
            options.append("".join(current))
            current = []
            continue
        current.append(char)
    options.append("".join(current))
    return _expand(options[0]), position
