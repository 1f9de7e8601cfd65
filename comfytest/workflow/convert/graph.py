"""The workflow graph as read from its JSON, and litegraph's rules for connecting it.

One :class:`Graph` per level: the root, or the inside of one subgraph/group-node instance.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

MUTED, BYPASSED = 2, 4
SUBGRAPH_INPUT, SUBGRAPH_OUTPUT = "-10", "-20"


@dataclass(frozen=True)
class Link:
    origin_id: str
    origin_slot: int
    target_id: str
    target_slot: int
    type: str


@dataclass
class Graph:
    """One level of the workflow: the root, or the inside of one subgraph/group instance."""

    nodes: dict[str, dict[str, Any]]
    links: dict[str, Link]
    prefix: str = ""
    instance: dict[str, Any] | None = None
    definition: dict[str, Any] | None = None
    parent: Graph | None = None
    promoted: dict[str, Any] = field(default_factory=dict)

    def api_id(self, node: dict[str, Any]) -> str:
        return f"{self.prefix}{node['id']}"


def _read_link(raw: Any) -> tuple[str, Link]:
    if isinstance(raw, dict):
        link_id, origin, origin_slot = raw["id"], raw["origin_id"], raw["origin_slot"]
        target, target_slot, kind = raw["target_id"], raw["target_slot"], raw.get("type")
    else:
        link_id, origin, origin_slot, target, target_slot, kind = (list(raw) + [None] * 6)[:6]
    link = Link(str(origin), int(origin_slot), str(target), int(target_slot), str(kind or "*"))
    return str(link_id), link


def read_graph(nodes: Sequence[dict[str, Any]], links: Sequence[Any], **kw: Any) -> Graph:
    return Graph(
        nodes={str(node["id"]): node for node in nodes},
        links=dict(_read_link(raw) for raw in links if raw),
        **kw,
    )


# -- connections and bypassed nodes ------------------------------------------------------------


def types_compatible(a: object, b: object) -> bool:
    """litegraph ``isValidConnection``: ``*``/empty match anything; ``A,B`` lists intersect."""
    left = "" if a in ("*", None) else str(a)
    right = "" if b in ("*", None) else str(b)
    if not left or not right or left == right:
        return True
    left, right = left.lower(), right.lower()
    if "," not in left and "," not in right:
        return left == right
    return any(x == y for x in left.split(",") for y in right.split(","))


def bypass_input(node: dict[str, Any], slot: int, kind: str) -> int:
    """The input a bypassed node passes to output ``slot`` for a target of type ``kind``; -1."""
    inputs = node.get("inputs") or []
    if kind in ("*", ""):
        return slot if slot < len(inputs) else (0 if inputs else -1)
    outputs = node.get("outputs") or []
    out_type = outputs[slot].get("type") if slot < len(outputs) else "*"
    if slot < len(inputs):
        same = inputs[slot].get("type")
        if types_compatible(same, out_type) and types_compatible(same, kind):
            return slot
    for index, candidate in enumerate(inputs):
        if candidate.get("type") == kind:
            return index
    for index, candidate in enumerate(inputs):
        ctype = candidate.get("type")
        if types_compatible(ctype, out_type) and types_compatible(ctype, kind):
            return index
    return -1


def group_bypass_input(node: dict[str, Any], slot: int, kind: str) -> int:
    """The same for a bypassed legacy group node (``ExecutableGroupNodeDTO``): input ``slot``,
    else the first input, whose type is exactly ``kind``; -1."""
    inputs = node.get("inputs") or []
    candidates: list[int] = [slot, *range(len(inputs))]
    for index in candidates:
        if index < len(inputs) and inputs[index].get("type") == kind:
            return index
    return -1
