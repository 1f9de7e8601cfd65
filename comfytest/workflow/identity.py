"""What an output node is, independent of its id: a digest of the graph upstream of it.

Node ids are an accident of editing: the same graph saved again, pasted into another
workflow or cleaned up in the editor gets other ids. Baselines are keyed by the id that
made them, so each output's manifest entry also records two digests of its node
(``node_identity``):

- ``shape``: class types and how they are linked, upstream to the loaders, without any
  literal value. A changed prompt word, step count or seed leaves it as it was.
- ``values``: the same with every literal input value too: the exact computation.

Titles (``_meta``) are not part of either; comfytest's own cache-defeating input is
dropped by the caller (``drop``)."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from comfytest.workflow.prompt import Prompt, is_link

__all__ = ["Identity", "node_identity"]

#: ``{"node", "class_type", "shape", "values"}``, as a manifest stores it.
Identity = dict[str, str]


def node_identity(prompt: Prompt, node_id: str, drop: frozenset[str] = frozenset()) -> Identity:
    """The identity of ``node_id`` in ``prompt``; inputs named in ``drop`` are ignored."""
    shapes: dict[str, str] = {}
    values: dict[str, str] = {}

    def digest(nid: str, with_values: bool, seen: frozenset[str]) -> str:
        memo = values if with_values else shapes
        if nid in memo:
            return memo[nid]
        node = prompt.get(nid)
        if not isinstance(node, dict) or nid in seen:  # a dangling link, or a cycle
            return "?"
        parts: list[Any] = [node.get("class_type")]
        inputs = node.get("inputs")
        inputs = inputs if isinstance(inputs, dict) else {}
        for name in sorted(inputs):
            value = inputs[name]
            if name in drop:
                continue
            if is_link(value):
                upstream = digest(str(value[0]), with_values, seen | {nid})
                parts.append([name, upstream, value[1]])
            elif with_values:
                parts.append([name, value])
        text = json.dumps(parts, sort_keys=True, default=str, separators=(",", ":"))
        memo[nid] = hashlib.sha256(text.encode()).hexdigest()[:16]
        return memo[nid]

    node = prompt.get(node_id)
    node = node if isinstance(node, dict) else {}
    return {
        "node": node_id,
        "class_type": str(node.get("class_type", "?")),
        "shape": digest(node_id, False, frozenset()),
        "values": digest(node_id, True, frozenset()),
    }
