"""The converter: walks the graph, emits API nodes and resolves every link to its source."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from comfytest.errors import ConversionError
from comfytest.workflow.convert.graph import (
    BYPASSED,
    MUTED,
    SUBGRAPH_INPUT,
    SUBGRAPH_OUTPUT,
    Graph,
    bypass_input,
    group_bypass_input,
    read_graph,
)
from comfytest.workflow.convert.groups import GROUP_NODE_PREFIXES, group_definition
from comfytest.workflow.convert.replacements import replace_filename_patterns
from comfytest.workflow.convert.subgraphs import promoted_values
from comfytest.workflow.convert.widgets import (
    AlignmentError,
    dynamic_prompt,
    is_dynamic_prompt,
    widget_inputs,
    wrap,
)

#: Frontend-only node types: never sent to the server.
VIRTUAL_NODE_TYPES = frozenset({"Reroute", "PrimitiveNode", "Note", "MarkdownNote"})


@dataclass(frozen=True)
class _Literal:
    """A value (not a link) that ends up in an input: a PrimitiveNode or promoted widget."""

    value: Any
    from_primitive: bool = False


class _Muted:
    """The source is muted: the frontend deletes the input."""


_Source = tuple[str, int] | _Literal | _Muted | None


def _title(node: dict[str, Any], spec: dict[str, Any] | None = None) -> str:
    return str(node.get("title") or (spec or {}).get("display_name") or node.get("type", "?"))


# -- the conversion ------------------------------------------------------------------------------


class Converter:
    def __init__(
        self, workflow: dict[str, Any], object_info: dict[str, Any], now: datetime | None = None
    ) -> None:
        self.object_info = object_info
        self.now = now
        definitions = workflow.get("definitions") or {}
        self.subgraphs = {str(s["id"]): s for s in definitions.get("subgraphs") or []}
        self.group_nodes: dict[str, Any] = (workflow.get("extra") or {}).get("groupNodes") or {}
        self.root = read_graph(workflow["nodes"], workflow.get("links") or [])
        self.prompt: dict[str, Any] = {}

    def convert(self) -> dict[str, Any]:
        self._emit_graph(self.root)
        for node in self.prompt.values():  # inputs left pointing at nothing (muted, dropped)
            for name, value in list(node["inputs"].items()):
                if isinstance(value, list) and len(value) == 2 and value[0] not in self.prompt:
                    del node["inputs"][name]
        subgraphs = [read_graph(d.get("nodes") or [], []) for d in self.subgraphs.values()]
        replace_filename_patterns(self.prompt, self.root, subgraphs, self.object_info, self.now)
        return self.prompt

    # -- walking the graph ----------------------------------------------------------------------

    def _emit_graph(self, graph: Graph) -> None:
        for node in graph.nodes.values():
            if node.get("mode", 0) in (MUTED, BYPASSED):
                continue
            child = self._child_graph(graph, node)
            if child is not None:
                self._emit_graph(child)
            elif node.get("type") in self.object_info:
                self.prompt[graph.api_id(node)] = self._api_node(graph, node)
            elif node.get("type") not in VIRTUAL_NODE_TYPES:
                raise ConversionError(
                    f"node class {node.get('type')!r} is not installed on this server",
                    graph.api_id(node),
                    str(node.get("type")),
                    _title(node),
                )

    def _child_graph(self, graph: Graph, node: dict[str, Any]) -> Graph | None:
        """The inside of a subgraph or legacy group-node instance; None for other nodes."""
        kind = str(node.get("type"))
        if kind in self.subgraphs:
            definition = self.subgraphs[kind]
        elif kind.startswith(GROUP_NODE_PREFIXES) and kind[9:] in self.group_nodes:
            definition = group_definition(self.group_nodes[kind[9:]], node, self.object_info)
        else:
            return None
        child = read_graph(
            definition.get("nodes") or [],
            definition.get("links") or [],
            prefix=f"{graph.api_id(node)}:",
            instance=node,
            definition=definition,
            parent=graph,
        )
        if kind not in self.subgraphs:
            return child  # group nodes hand their widget values to the inner nodes instead
        try:
            child.promoted = promoted_values(child)
        except AlignmentError as exc:
            raise ConversionError(str(exc), graph.api_id(node), kind, _title(node)) from None
        return child

    def _api_node(self, graph: Graph, node: dict[str, Any]) -> dict[str, Any]:
        spec = self.object_info[node["type"]]
        node_id = graph.api_id(node)
        try:
            inputs = widget_inputs(node, spec)
        except AlignmentError as exc:
            raise ConversionError(str(exc), node_id, node["type"], _title(node, spec)) from None
        for index, slot in enumerate(node.get("inputs") or []):
            if slot.get("link") is None:
                continue
            source = self._resolve_input(graph, node, index, None, set())
            name = str(slot.get("name"))
            if isinstance(source, _Muted):
                inputs.pop(name, None)
            elif isinstance(source, _Literal):
                value = source.value
                if source.from_primitive and is_dynamic_prompt(spec, name):
                    value = dynamic_prompt(value)
                inputs[name] = wrap(value)
            elif source is not None:
                inputs[name] = [source[0], source[1]]
        return {
            "class_type": node["type"],
            "inputs": inputs,
            "_meta": {"title": _title(node, spec)},
        }

    # -- following links ------------------------------------------------------------------------

    def _resolve_input(
        self, graph: Graph, node: dict[str, Any], index: int, kind: str | None, seen: set[str]
    ) -> _Source:
        """Where input ``index`` of ``node`` really comes from (frontend ``resolveInput``)."""
        key = f"{graph.api_id(node)}[I]{index}"
        if key in seen:
            raise ConversionError("links form a cycle", graph.api_id(node), str(node.get("type")))
        seen.add(key)
        slot = (node.get("inputs") or [])[index]
        link_id = slot.get("link")
        if link_id is None:
            return None
        link = graph.links.get(str(link_id))
        if link is None:
            raise ConversionError(
                f"input {slot.get('name')!r} uses link {link_id}, which the workflow lacks",
                graph.api_id(node),
                str(node.get("type")),
                _title(node),
            )
        want = kind or str(slot.get("type") or "*")
        if link.origin_id == SUBGRAPH_INPUT:
            return self._resolve_subgraph_input(graph, link.origin_slot, seen)
        origin = graph.nodes.get(link.origin_id)
        if origin is None:
            raise ConversionError(
                f"input {slot.get('name')!r} links from node {link.origin_id}, which is missing",
                graph.api_id(node),
                str(node.get("type")),
                _title(node),
            )
        return self._resolve_output(graph, origin, link.origin_slot, want, seen)

    def _resolve_output(
        self, graph: Graph, node: dict[str, Any], slot: int, kind: str, seen: set[str]
    ) -> _Source:
        """What output ``slot`` of ``node`` stands for (frontend ``resolveOutput``).

        A PrimitiveNode gives its value in every mode: the frontend's ``applyToGraph`` copies
        it into the target widget before it resolves links, muted or bypassed alike. Muting
        stops real nodes only; a muted Reroute still passes its link through."""
        node_type = node.get("type")
        if node_type == "PrimitiveNode":
            values = node.get("widgets_values") or []
            return _Literal(values[0], from_primitive=True) if values else None
        mode = node.get("mode", 0)
        if mode == BYPASSED:
            if str(node_type).startswith(GROUP_NODE_PREFIXES):
                index = group_bypass_input(node, slot, kind)
            else:
                index = bypass_input(node, slot, kind)
            return None if index < 0 else self._resolve_input(graph, node, index, None, seen)
        child = self._child_graph(graph, node)
        if mode == MUTED and (child is not None or node_type in self.object_info):
            return _Muted()
        if child is not None:
            return self._resolve_subgraph_output(child, slot, kind, seen)
        if node_type in self.object_info:
            return (graph.api_id(node), slot)
        inputs = node.get("inputs") or []
        if slot < len(inputs):  # Reroute and other pass-through virtual nodes
            return self._resolve_input(graph, node, slot, kind, seen)
        return None

    def _resolve_subgraph_input(self, graph: Graph, slot: int, seen: set[str]) -> _Source:
        """A ``-10`` link: the instance's input outside, or its promoted widget value."""
        assert graph.definition is not None
        assert graph.instance is not None
        assert graph.parent is not None
        inputs = graph.definition.get("inputs") or []
        name = inputs[slot].get("name") if slot < len(inputs) else None
        outer = graph.instance.get("inputs") or []
        index = next((i for i, s in enumerate(outer) if s.get("name") == name), None)
        if index is None and slot < len(outer) and not name:
            index = slot
        if index is not None and outer[index].get("link") is not None:
            return self._resolve_input(graph.parent, graph.instance, index, None, seen)
        if name in graph.promoted:
            return _Literal(graph.promoted[name])
        return None

    def _resolve_subgraph_output(
        self, child: Graph, slot: int, kind: str, seen: set[str]
    ) -> _Source:
        """An instance's output: follow the ``-20`` link inside to the inner node."""
        for link in child.links.values():
            if link.target_id == SUBGRAPH_OUTPUT and link.target_slot == slot:
                if link.origin_id == SUBGRAPH_INPUT:
                    return self._resolve_subgraph_input(child, link.origin_slot, seen)
                inner = child.nodes.get(link.origin_id)
                if inner is not None:
                    return self._resolve_output(child, inner, link.origin_slot, kind, seen)
        return None
