"""``filename_prefix`` patterns, substituted as the frontend does when it queues
(``applyTextReplacements`` in ``searchAndReplace.ts``, applied by ``saveImageExtraOutput.ts``).

* ``%date:FORMAT%``: the date in ``FORMAT``, where ``yyyy``/``yy``, ``MM``/``M``, ``dd``/``d``,
  ``hh``/``h`` (24-hour), ``mm``/``m`` and ``ss``/``s`` are replaced (``formatDate``). The
  frontend uses the moment it queues; comfytest uses the time the run started, given by the
  caller, so every case of a run gets the same names.
* ``%Node.widget%``: the value of widget ``widget`` of the first node whose ``Node name for
  S&R`` property is ``Node`` (every node but the save nodes has one, its type by default),
  else whose title is; characters not allowed in file names become ``_``.
* Anything else (``%width%``, ``%year%``, a node that is not found) is left as written: the
  server substitutes ``%year%``, ``%width%`` and the like itself when it saves.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from comfytest.workflow.convert.graph import Graph
from comfytest.workflow.convert.widgets import AlignmentError, widget_inputs

__all__ = [
    "SAVE_NODE_TYPES",
    "NodeWidgets",
    "format_date",
    "js_string",
    "replace_filename_patterns",
    "replace_patterns",
]

#: Nodes whose ``filename_prefix`` the frontend substitutes.
SAVE_NODE_TYPES = frozenset(
    {
        "SaveImage", "SaveImageAdvanced", "SaveSVGNode", "SaveVideo", "SaveAnimatedWEBP",
        "SaveWEBM", "SaveAudio", "SaveAudioMP3", "SaveAudioOpus", "SaveAudioAdvanced", "SaveGLB",
        "SaveAnimatedPNG", "CLIPSave", "VAESave", "ModelSave", "LoraSave", "SaveLatent",
    }
)  # fmt: skip
_PATTERN = re.compile(r"%([^%]+)%")
_DATE_PARTS = re.compile(r"dd?|MM?|hh?|mm?|ss?|yyy?y?")
_NOT_IN_FILE_NAMES = re.compile(r'[/?<>\\:*|"\x00-\x1f\x7f]')


@dataclass(frozen=True)
class NodeWidgets:
    """What a pattern can name: a node's S&R name, its title, and its widget values."""

    search_name: str | None
    title: str
    values: dict[str, Any]


def format_date(text: str, when: datetime) -> str:
    """The frontend's ``formatDate``: each date part in ``text`` replaced from ``when``."""
    parts = {"d": when.day, "M": when.month, "h": when.hour, "m": when.minute, "s": when.second}

    def part(match: re.Match[str]) -> str:
        found = match.group(0)
        if found == "yy":
            return str(when.year)[2:]
        if found == "yyyy":
            return str(when.year)
        if found[0] in parts:
            return str(parts[found[0]]).rjust(len(found), "0")
        return found  # "yyy"

    return _DATE_PARTS.sub(part, text)


def js_string(value: Any) -> str:
    """``value + ''`` in JavaScript, for the JSON values a widget holds."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e21:
            return str(int(value))
        text = repr(value)
        if "e" in text:
            mantissa, exponent = text.split("e")
            number = int(exponent)
            return f"{mantissa}e{'+' if number > 0 else '-'}{abs(number)}"
        return text
    if isinstance(value, list):
        return ",".join(js_string(item) for item in value)
    if isinstance(value, dict):
        return "[object Object]"
    return str(value)


def replace_patterns(text: str, nodes: Iterable[NodeWidgets], when: datetime) -> str:
    """``text`` with every ``%…%`` pattern the frontend knows replaced."""
    candidates = list(nodes)

    def one(match: re.Match[str]) -> str:
        split = match.group(1).split(".")
        if len(split) != 2:
            if split[0].startswith("date:"):
                return format_date(split[0][5:], when)
            return match.group(0)
        name, widget = split
        found = [n for n in candidates if n.search_name == name]
        found = found or [n for n in candidates if n.title == name]
        if not found or widget not in found[0].values:
            return match.group(0)
        return _NOT_IN_FILE_NAMES.sub("_", js_string(found[0].values[widget]))

    return _PATTERN.sub(one, text)


def replace_filename_patterns(
    prompt: dict[str, Any],
    root: Graph,
    subgraphs: list[Graph],
    object_info: dict[str, Any],
    now: datetime | None,
) -> None:
    """Substitute the patterns of every save node's literal ``filename_prefix`` in ``prompt``."""
    targets = [
        node["inputs"]
        for node in prompt.values()
        if node["class_type"] in SAVE_NODE_TYPES
        and isinstance(node["inputs"].get("filename_prefix"), str)
        and "%" in node["inputs"]["filename_prefix"]
    ]
    if targets:
        nodes = list(_node_widgets(prompt, root, subgraphs, object_info))
        when = now or datetime.now()
        for inputs in targets:
            inputs["filename_prefix"] = replace_patterns(inputs["filename_prefix"], nodes, when)


def _node_widgets(
    prompt: dict[str, Any], root: Graph, subgraphs: list[Graph], object_info: dict[str, Any]
) -> Iterator[NodeWidgets]:
    """Every node of the root graph, then of each subgraph, with its widget values: the
    saved ones, and for a root node the values the prompt sends."""
    for graph in [root, *subgraphs]:
        for node in graph.nodes.values():
            kind = str(node.get("type"))
            spec = object_info.get(kind)
            default = kind if spec is not None and kind not in SAVE_NODE_TYPES else None
            search = (node.get("properties") or {}).get("Node name for S&R", default)
            values: dict[str, Any] = {}
            if spec is not None:
                with contextlib.suppress(AlignmentError):
                    values = widget_inputs(node, spec)
                if graph is root:
                    values |= (prompt.get(graph.api_id(node)) or {}).get("inputs") or {}
            title = node.get("title") or (spec or {}).get("display_name") or kind
            yield NodeWidgets(
                None if search is None else str(search),
                str(title),
                {
                    name: value["__value__"] if isinstance(value, dict) else value
                    for name, value in values.items()
                    if not (isinstance(value, list) and len(value) == 2)  # a link
                },
            )
