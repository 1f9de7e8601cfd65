"""Subgraph instances: the values of their promoted widgets."""

from __future__ import annotations

from typing import Any

from comfytest.workflow.convert.graph import Graph
from comfytest.workflow.convert.widgets import (
    CONTROL_VALUES,
    WIDGET_TYPES,
    AlignmentError,
)


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
