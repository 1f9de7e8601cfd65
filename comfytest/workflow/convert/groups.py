"""Legacy group nodes (``extra.groupNodes``, node types ``workflow>Name`` or ``workflow/Name``),
rewritten into the shape of a subgraph definition, with the instance's widget values given
to the inner nodes as the frontend gives them (``groupNode.ts``).

The frontend registers each group as a node type whose widgets are, in order: the widgets of
every inner node (node order, ``input_order`` within a node) that are not converted to inputs,
a ``value`` widget for each PrimitiveNode linked inside the group, then the converted widgets
that nothing inside links to. An instance's ``widgets_values`` fill those widgets by position,
like any node's (litegraph ``configure``); widgets past the end keep the input's default. At
queue time every inner widget takes its group widget's value (``updateInnerWidgets``), so the
inner node's own saved value matters only for widgets the group does not show.
"""

from __future__ import annotations

from typing import Any

from comfytest.workflow.convert.widgets import (
    AlignmentError,
    Widget,
    align_by_shape,
    align_exact,
    default_value,
    saved_layout,
    widget_of_config,
    widgets_of,
)

__all__ = ["GROUP_NODE_PREFIXES", "group_definition", "group_widgets"]

GROUP_NODE_PREFIXES = ("workflow>", "workflow/")


def _index(value: Any) -> int | None:
    """A node index or slot of a group's own links; None for anything else (the frontend
    uses such entries as object keys that never match)."""
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def group_definition(
    group: dict[str, Any], instance: dict[str, Any], object_info: dict[str, Any]
) -> dict[str, Any]:
    """A legacy group node (``extra.groupNodes[name]``) rewritten as a subgraph definition.

    Inner node *i* gets id *i* (so API ids are ``group:i``, as in the frontend). The group's
    inputs are the inner inputs not linked inside it (plain inputs of every node first, then
    inputs converted from widgets); its outputs are inner outputs not used only inside.
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
    for raw in inner_links(group, len(nodes)):
        link(raw[0], raw[1], raw[2], raw[3], raw[4])
        used_inside.add((raw[0], raw[1]))
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
    external = set()
    for entry in group.get("external") or []:
        node_index, slot = (_index(e) for e in [*list(entry), None, None][:2])
        if node_index is not None and slot is not None:
            external.add((node_index, slot))
    outputs: list[dict[str, Any]] = []
    for node in nodes:
        for slot_index, slot in enumerate(node.get("outputs") or []):
            key = (node["id"], slot_index)
            if key not in used_inside or key in external:
                lid = link(node["id"], slot_index, -20, len(outputs), slot.get("type"))
                outputs.append(
                    {"name": slot.get("name"), "type": slot.get("type"), "linkIds": [lid]}
                )
    _give_widget_values(nodes, instance.get("widgets_values"), object_info, links)
    return {"nodes": nodes, "links": links, "inputs": inputs, "outputs": outputs}


def inner_links(group: dict[str, Any], count: int) -> list[tuple[int, int, int, int, Any]]:
    """(origin, origin slot, target, target slot, type) of the links inside the group."""
    found = []
    for raw in group.get("links") or []:
        fields = (list(raw) + [None] * 6)[:6] if isinstance(raw, list) else [None] * 6
        ends = [_index(f) for f in fields[:4]]
        origin, origin_slot, target, target_slot = (e if e is not None else -1 for e in ends)
        if min(origin, origin_slot, target, target_slot) < 0:
            continue  # a link from outside the group
        if origin < count and target < count:
            found.append((origin, origin_slot, target, target_slot, fields[5]))
    return found


def group_widgets(
    nodes: list[dict[str, Any]], links: list[dict[str, Any]], object_info: dict[str, Any]
) -> list[tuple[int, Widget]]:
    """(inner node index, widget) of every widget the group node shows, in the frontend's order.

    ``links`` are the group's links in :func:`group_definition`'s form (``-10`` = outside)."""
    inside = [lk for lk in links if lk["origin_id"] >= 0 and lk["target_id"] >= 0]
    shown: list[tuple[int, Widget]] = []
    converted_later: list[tuple[int, int, Widget]] = []
    for index, node in enumerate(nodes):
        spec = object_info.get(str(node.get("type")))
        if spec is not None:
            slots = node.get("inputs") or []
            for widget in widgets_of(spec):
                slot = next(
                    (
                        i
                        for i, s in enumerate(slots)
                        if s.get("name") == widget.name
                        and (s.get("widget") or {}).get("name") == widget.name
                    ),
                    None,
                )
                if slot is None:
                    shown.append((index, widget))
                else:
                    converted_later.append((index, slot, widget))
        elif node.get("type") == "PrimitiveNode":
            primitive = _primitive_widget(index, nodes, inside, object_info)
            if primitive is not None:
                shown.append((index, primitive))
    for index, slot, widget in converted_later:  # node order, then slot order
        if not any(lk["target_id"] == index and lk["target_slot"] == slot for lk in inside):
            shown.append((index, widget))
    return shown


def _primitive_widget(
    index: int, nodes: list[dict[str, Any]], inside: list[dict[str, Any]], info: dict[str, Any]
) -> Widget | None:
    """The ``value`` widget of a PrimitiveNode linked inside the group: the spec of the widget
    it feeds, with ``control_after_generate`` forced on (``checkPrimitiveConnection``)."""
    out = next((lk for lk in inside if lk["origin_id"] == index), None)
    if out is None:
        return None  # not linked inside: the frontend skips it
    target = nodes[out["target_id"]]
    slots = target.get("inputs") or []
    slot = slots[out["target_slot"]] if out["target_slot"] < len(slots) else {}
    name = (slot.get("widget") or {}).get("name") or slot.get("name")
    spec = info.get(str(target.get("type"))) or {}
    for section in ("required", "optional"):
        config = ((spec.get("input") or {}).get(section) or {}).get(name)
        if config:
            options = dict(config[1]) if len(config) > 1 and isinstance(config[1], dict) else {}
            options["control_after_generate"] = True
            return widget_of_config("value", [config[0], options])
    return None


def _give_widget_values(
    nodes: list[dict[str, Any]],
    saved: Any,
    object_info: dict[str, Any],
    links: list[dict[str, Any]],
) -> None:
    """Each inner node's widget values: its group widgets' values by position, its own for
    the widgets the group does not show."""
    if not isinstance(saved, list):
        return
    shown = group_widgets(nodes, links, object_info)
    layout = _layout(shown, uploads=True)
    if len(saved) != len(layout):  # newer frontends do not save upload buttons
        without = _layout(shown, uploads=False)
        layout = without if len(saved) == len(without) else layout
    given: dict[int, dict[str, Any]] = {}
    for position, (index, widget, role) in enumerate(layout):
        if role == "value":
            value = saved[position] if position < len(saved) else default_value(widget)
            given.setdefault(index, {})[widget.name] = value
    for index, values in given.items():
        node = nodes[index]
        if node.get("type") == "PrimitiveNode":
            rest = list(node.get("widgets_values") or [None])[1:]
            node["widgets_values"] = [values["value"], *rest]
            continue
        spec = object_info[str(node.get("type"))]
        own = node.get("widgets_values")
        if isinstance(own, dict):
            base = dict(own)
        else:
            widgets = widgets_of(spec)
            own_values = list(own or [])
            base = align_exact(widgets, own_values) or _lenient(widgets, own_values)
        node["widgets_values"] = base | values


def _layout(shown: list[tuple[int, Widget]], *, uploads: bool) -> list[tuple[int, Widget, str]]:
    return [
        (index, widget, role)
        for index, one in shown
        for widget, role in saved_layout([one], uploads=uploads)
    ]


def _lenient(widgets: list[Widget], values: list[Any]) -> dict[str, Any]:
    """The inner node's own values by shape; {} when they do not line up (the group's values
    replace them anyway)."""
    try:
        return align_by_shape(widgets, values)
    except AlignmentError:
        return {}
