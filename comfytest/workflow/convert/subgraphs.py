"""Subgraph and legacy group-node instances: promoted widget values, group definitions."""

from __future__ import annotations

from typing import Any

from comfytest.workflow.convert.graph import Graph
from comfytest.workflow.convert.widgets import (
    CONTROL_VALUES,
    WIDGET_TYPES,
    AlignmentError,
    Widget,
    align_exact,
    saved_layout,
    widgets_of,
)

GROUP_NODE_PREFIXES = ("workflow>", "workflow/")


def _feeds_widget(graph: Graph, subgraph_input: dict[str, Any]) -> bool:
    """Does this subgraph input lead to a widget inside (so the instance shows a widget)?"""
    if str(subgraph_input.get("type")) in WIDGET_TYPES:
        return True
    for link_id in subgraph_input.get("linkIds") or []:
        link = graph.links.get(str(link_id))
        target = graph.nodes.get(link.target_id) if link else None
        slots = (target or {}).get("inputs") or []
        if link and link.target_slot < len(slots) and slots[link.target_slot].get("widget"):
            return True
    return False


def promoted_values(graph: Graph) -> dict[str, Any]:
    """Subgraph input name → the value of the instance's promoted widget for it.

    The instance saves one value per subgraph input that feeds a widget, in the order of its
    ``proxyWidgets`` property when present, else of the subgraph's inputs. Proxies of an inner
    node's own widget (``[inner_id, name]``) mirror that node's saved value and are skipped.
    """
    assert graph.instance is not None
    assert graph.definition is not None
    saved = graph.instance.get("widgets_values")
    if isinstance(saved, dict):
        return dict(saved)
    values = list(saved or [])
    proxies = (graph.instance.get("properties") or {}).get("proxyWidgets") or []
    if proxies and len(proxies) == len(values):
        return {str(p[1]): v for p, v in zip(proxies, values, strict=True) if str(p[0]) == "-1"}
    inputs = graph.definition.get("inputs") or []
    names = [str(i.get("name")) for i in inputs if _feeds_widget(graph, i)]
    if len(values) != len(names):  # older frontends also saved seed control modes
        values = [v for v in values if not (isinstance(v, str) and v in CONTROL_VALUES)]
    if len(values) != len(names):
        raise AlignmentError(
            f"widgets_values {list(saved or [])!r} do not match the subgraph's widget inputs "
            f"{names}"
        )
    return dict(zip(names, values, strict=True))


def group_definition(
    group: dict[str, Any], instance: dict[str, Any], object_info: dict[str, Any]
) -> dict[str, Any]:
    """A legacy group node (``extra.groupNodes[name]``) rewritten as a subgraph definition.

    Inner node *i* gets id *i* (so API ids are ``group:i``, as in the frontend). The group's
    inputs are the inner inputs not linked inside it (plain inputs of every node first, then
    inputs converted from widgets); its outputs are inner outputs not used only inside. The
    instance's widget values are spread over the inner nodes when their count fits.
    """
    nodes = [dict(node, id=i) for i, node in enumerate(group.get("nodes") or [])]
    for node in nodes:
        node["inputs"] = [dict(slot, link=None) for slot in node.get("inputs") or []]
    links: list[dict[str, Any]] = []

    def link(origin: int, origin_slot: int, target: int, target_slot: int, kind: Any) -> int:
        links.append(
            {"id": len(links) + 1, "origin_id": origin, "origin_slot": origin_slot,
             "target_id": target, "target_slot": target_slot, "type": kind or "*"}
        )  # fmt: skip
        if target >= 0 and target_slot < len(nodes[target]["inputs"]):
            nodes[target]["inputs"][target_slot]["link"] = len(links)
        return len(links)

    used_inside = set()
    for raw in group.get("links") or []:
        if raw and raw[0] is not None and int(raw[2]) < len(nodes):
            link(int(raw[0]), int(raw[1]), int(raw[2]), int(raw[3]), (list(raw) + [None] * 6)[5])
            used_inside.add((int(raw[0]), int(raw[1])))
    outer_inputs = instance.get("inputs") or []
    inputs: list[dict[str, Any]] = []
    for converted in (False, True):
        for node in nodes:
            for slot_index, slot in enumerate(node["inputs"]):
                if slot["link"] is None and bool(slot.get("widget")) == converted:
                    k = len(inputs)
                    name = outer_inputs[k].get("name") if k < len(outer_inputs) else slot["name"]
                    lid = link(-10, k, node["id"], slot_index, slot.get("type"))
                    inputs.append({"name": name, "type": slot.get("type"), "linkIds": [lid]})
    external = {(int(e[0]), int(e[1])) for e in group.get("external") or []}
    outputs: list[dict[str, Any]] = []
    for node in nodes:
        for slot_index, slot in enumerate(node.get("outputs") or []):
            key = (node["id"], slot_index)
            if key not in used_inside or key in external:
                lid = link(node["id"], slot_index, -20, len(outputs), slot.get("type"))
                outputs.append(
                    {"name": slot.get("name"), "type": slot.get("type"), "linkIds": [lid]}
                )
    _spread_group_widgets(nodes, instance.get("widgets_values"), object_info)
    return {"nodes": nodes, "links": links, "inputs": inputs, "outputs": outputs}


def _spread_group_widgets(
    nodes: list[dict[str, Any]], saved: Any, object_info: dict[str, Any]
) -> None:
    """Give each inner node its share of the group instance's widget values, in node order."""
    if not isinstance(saved, list):
        return
    shares: list[tuple[dict[str, Any], list[Widget], list[tuple[Widget, str]]]] = []
    for node in nodes:
        spec = object_info.get(str(node.get("type")))
        if spec is None:
            continue
        converted = {slot["widget"].get("name") for slot in node["inputs"] if slot.get("widget")}
        widgets = widgets_of(spec)
        shown = [w for w in widgets if w.name not in converted]
        shares.append((node, widgets, saved_layout(shown, uploads=True)))
    if sum(len(layout) for _, _, layout in shares) != len(saved):
        return  # cannot tell which value is whose: keep the inner nodes' own values
    position = 0
    for node, widgets, layout in shares:
        own = node.get("widgets_values")
        values = dict(own) if isinstance(own, dict) else align_exact(widgets, list(own or []))
        values = dict(values or {})
        for (widget, role), value in zip(
            layout, saved[position : position + len(layout)], strict=True
        ):
            if role == "value":
                values[widget.name] = value
        position += len(layout)
        node["widgets_values"] = values
