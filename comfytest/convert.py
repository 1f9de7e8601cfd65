"""UI-format ("Save") workflows → API-format prompts, using the server's ``/object_info``.

ComfyUI's frontend converts its graph with ``graphToPrompt`` at queue time; this module does the
same from the saved JSON alone, following the frontend's rules (COMFYUI_API.md §6.3-6.4):

1. Links are read in both shapes: v0.4 arrays ``[id, origin, slot, target, slot, type]`` and
   v1 objects. Native litegraph reroutes (``parentId``) are visual only and need nothing.
2. Every node is classified. Real nodes (their type is in ``/object_info``) are emitted unless
   muted (mode 2) or bypassed (mode 4). Subgraph instances (type = a ``definitions.subgraphs``
   id) and legacy group nodes (``workflow>Name`` from ``extra.groupNodes``, rewritten into the
   same shape as a subgraph) are expanded, their inner nodes getting path ids ``outer:inner``.
   ``Reroute``, ``PrimitiveNode``, ``Note`` and ``MarkdownNote`` are frontend-only and never
   emitted; any other unknown type is a :class:`ConversionError` (a custom node is missing).
3. Widget values are matched to the inputs that are widgets, walking ``input_order`` (required,
   then optional). The frontend also saves values that never reach the server: the
   ``control_after_generate`` mode after a seed-like INT, mode + filter after a COMBO with that
   flag, and an upload button after upload combos (saved as ``"image"``, as ``null`` or not at
   all, depending on the frontend version). When the count does not match the exact layout, the
   values are aligned by what they look like; a value that cannot belong to its widget is an
   error. Missing trailing values take the input's default, as a freshly loaded node would.
4. Every linked input is resolved to its real source, like the frontend's ``resolveInput``:
   through Reroutes (their input 0), out of subgraphs (``-10`` links lead to the instance's
   input, or to its promoted widget value when that input is unconnected), into subgraphs
   (``-20`` links), and through bypassed nodes (output *n* → input *n* when its type fits, else
   the first input of exactly the target's type, else the first compatible one). A
   PrimitiveNode source becomes a literal value. A link overrides the widget value of the same
   name; a link from a muted node removes the input, as the frontend's final clean-up does.

Deliberate choices:

* ``dynamicPrompts`` strings (e.g. ``CLIPTextEncode.text``): the frontend strips ``//`` and
  ``/* */`` comments and replaces each ``{a|b|c}`` by a *random* option when it queues. We strip
  comments exactly as it does (a prompt with ``//`` in it means what the user saw run), and
  resolve every choice to its **first** option, so a converted workflow is deterministic, as a
  regression test must be, and still sends a text the UI could have sent.
* Inner nodes of a muted or bypassed subgraph instance are dropped with it.
* Lists are wrapped as ``{"__value__": [...]}`` so the server does not read them as links.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from comfytest.errors import ComfytestError, NodeProblem

__all__ = ["VIRTUAL_NODE_TYPES", "ConversionError", "is_ui_workflow", "ui_to_api"]

#: Frontend-only node types: never sent to the server.
VIRTUAL_NODE_TYPES = frozenset({"Reroute", "PrimitiveNode", "Note", "MarkdownNote"})

MUTED, BYPASSED = 2, 4
SUBGRAPH_INPUT, SUBGRAPH_OUTPUT = "-10", "-20"
WIDGET_TYPES = frozenset({"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"})
SEED_INPUTS = ("seed", "noise_seed")
CONTROL_VALUES = frozenset({"fixed", "increment", "decrement", "randomize", "increment-wrap"})
UPLOAD_FLAGS = {"image_upload": "image", "video_upload": "video", "audio_upload": "audio"}
GROUP_NODE_PREFIXES = ("workflow>", "workflow/")


class ConversionError(ComfytestError):
    """A UI workflow cannot be converted; names the node (id, type, title) and the problem."""

    def __init__(
        self, message: str, node_id: str = "", class_type: str = "", title: str = ""
    ) -> None:
        self.message = message
        self.node_id = node_id
        self.class_type = class_type
        self.title = title
        if node_id:
            message = NodeProblem(node_id, class_type, title, message).describe()
        super().__init__(message)


def is_ui_workflow(data: object) -> bool:
    """True for a UI-format workflow (what "Save" writes): a ``nodes`` list and ``links``."""
    return (
        isinstance(data, dict)
        and isinstance(data.get("nodes"), list)
        and isinstance(data.get("links", []), list)
    )


def ui_to_api(workflow: dict[str, Any], object_info: dict[str, Any]) -> dict[str, Any]:
    """Convert a UI-format workflow into the API prompt ``POST /prompt`` takes.

    ``object_info`` must come from the server the prompt will run on (same nodes, versions).
    """
    if not is_ui_workflow(workflow):
        raise ConversionError("not a UI-format workflow: expected a 'nodes' list and 'links'")
    return _Converter(workflow, object_info).convert()


# -- the graph as read from JSON ---------------------------------------------------------------


@dataclass(frozen=True)
class _Link:
    origin_id: str
    origin_slot: int
    target_id: str
    target_slot: int
    type: str


@dataclass
class _Graph:
    """One level of the workflow: the root, or the inside of one subgraph/group instance."""

    nodes: dict[str, dict[str, Any]]
    links: dict[str, _Link]
    prefix: str = ""
    instance: dict[str, Any] | None = None
    definition: dict[str, Any] | None = None
    parent: _Graph | None = None
    promoted: dict[str, Any] = field(default_factory=dict)

    def api_id(self, node: dict[str, Any]) -> str:
        return f"{self.prefix}{node['id']}"


@dataclass(frozen=True)
class _Literal:
    """A value (not a link) that ends up in an input: a PrimitiveNode or promoted widget."""

    value: Any
    from_primitive: bool = False


class _Muted:
    """The source is muted: the frontend deletes the input."""


_Source = tuple[str, int] | _Literal | _Muted | None


def _read_link(raw: Any) -> tuple[str, _Link]:
    if isinstance(raw, dict):
        link_id, origin, origin_slot = raw["id"], raw["origin_id"], raw["origin_slot"]
        target, target_slot, kind = raw["target_id"], raw["target_slot"], raw.get("type")
    else:
        link_id, origin, origin_slot, target, target_slot, kind = (list(raw) + [None] * 6)[:6]
    link = _Link(str(origin), int(origin_slot), str(target), int(target_slot), str(kind or "*"))
    return str(link_id), link


def _read_graph(nodes: Sequence[dict[str, Any]], links: Sequence[Any], **kw: Any) -> _Graph:
    return _Graph(
        nodes={str(node["id"]): node for node in nodes},
        links=dict(_read_link(raw) for raw in links if raw),
        **kw,
    )


def _title(node: dict[str, Any], spec: dict[str, Any] | None = None) -> str:
    return str(node.get("title") or (spec or {}).get("display_name") or node.get("type", "?"))


# -- the conversion ------------------------------------------------------------------------------


class _Converter:
    def __init__(self, workflow: dict[str, Any], object_info: dict[str, Any]) -> None:
        self.object_info = object_info
        definitions = workflow.get("definitions") or {}
        self.subgraphs = {str(s["id"]): s for s in definitions.get("subgraphs") or []}
        self.group_nodes: dict[str, Any] = (workflow.get("extra") or {}).get("groupNodes") or {}
        self.root = _read_graph(workflow["nodes"], workflow.get("links") or [])
        self.prompt: dict[str, Any] = {}

    def convert(self) -> dict[str, Any]:
        self._emit_graph(self.root)
        for node in self.prompt.values():  # inputs left pointing at nothing (muted, dropped)
            for name, value in list(node["inputs"].items()):
                if isinstance(value, list) and len(value) == 2 and value[0] not in self.prompt:
                    del node["inputs"][name]
        return self.prompt

    # -- walking the graph ----------------------------------------------------------------------

    def _emit_graph(self, graph: _Graph) -> None:
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

    def _child_graph(self, graph: _Graph, node: dict[str, Any]) -> _Graph | None:
        """The inside of a subgraph or legacy group-node instance; None for other nodes."""
        kind = str(node.get("type"))
        if kind in self.subgraphs:
            definition = self.subgraphs[kind]
        elif kind.startswith(GROUP_NODE_PREFIXES) and kind[9:] in self.group_nodes:
            definition = _group_definition(self.group_nodes[kind[9:]], node, self.object_info)
        else:
            return None
        child = _read_graph(
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
            child.promoted = _promoted_values(child)
        except _AlignmentError as exc:
            raise ConversionError(str(exc), graph.api_id(node), kind, _title(node)) from None
        return child

    def _api_node(self, graph: _Graph, node: dict[str, Any]) -> dict[str, Any]:
        spec = self.object_info[node["type"]]
        node_id = graph.api_id(node)
        try:
            inputs = widget_inputs(node, spec)
        except _AlignmentError as exc:
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
                if source.from_primitive and _is_dynamic_prompt(spec, name):
                    value = dynamic_prompt(value)
                inputs[name] = _wrap(value)
            elif source is not None:
                inputs[name] = [source[0], source[1]]
        return {
            "class_type": node["type"],
            "inputs": inputs,
            "_meta": {"title": _title(node, spec)},
        }

    # -- following links ------------------------------------------------------------------------

    def _resolve_input(
        self, graph: _Graph, node: dict[str, Any], index: int, kind: str | None, seen: set[str]
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
        self, graph: _Graph, node: dict[str, Any], slot: int, kind: str, seen: set[str]
    ) -> _Source:
        """What output ``slot`` of ``node`` stands for (frontend ``resolveOutput``)."""
        mode = node.get("mode", 0)
        if mode == MUTED:
            return _Muted()
        if mode == BYPASSED:
            index = bypass_input(node, slot, kind)
            return None if index < 0 else self._resolve_input(graph, node, index, None, seen)
        child = self._child_graph(graph, node)
        if child is not None:
            return self._resolve_subgraph_output(child, slot, kind, seen)
        node_type = node.get("type")
        if node_type == "PrimitiveNode":
            values = node.get("widgets_values") or []
            return _Literal(values[0], from_primitive=True) if values else None
        if node_type in self.object_info:
            return (graph.api_id(node), slot)
        inputs = node.get("inputs") or []
        if slot < len(inputs):  # Reroute and other pass-through virtual nodes
            return self._resolve_input(graph, node, slot, kind, seen)
        return None

    def _resolve_subgraph_input(self, graph: _Graph, slot: int, seen: set[str]) -> _Source:
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
        self, child: _Graph, slot: int, kind: str, seen: set[str]
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


def _wrap(value: Any) -> Any:
    return {"__value__": value} if isinstance(value, list) else value


# -- bypassed nodes --------------------------------------------------------------------------


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


# -- widget values ---------------------------------------------------------------------------


class _AlignmentError(Exception):
    """widgets_values cannot be matched to the node's widgets."""


@dataclass(frozen=True)
class _Widget:
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


def _widget(name: str, config: list[Any]) -> _Widget | None:
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
    return _Widget(name, kind, options, extras)


def widgets_of(spec: dict[str, Any]) -> list[_Widget]:
    """The node's widgets in the order the frontend creates them."""
    return [w for name, config in _input_specs(spec) if (w := _widget(name, config))]


def _layout(widgets: Sequence[_Widget], *, uploads: bool) -> list[tuple[_Widget, str]]:
    """Every saved value in order: (widget, "value" or the extra it is)."""
    slots = []
    for widget in widgets:
        slots.append((widget, "value"))
        slots += [(widget, extra) for extra in widget.extras if uploads or extra != "upload"]
    return slots


def _fits(widget: _Widget, value: Any) -> bool:
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


def _align_exact(widgets: Sequence[_Widget], values: Sequence[Any]) -> dict[str, Any] | None:
    """Values by position when the count matches a known layout and every value fits."""
    for uploads in (True, False):
        slots = _layout(widgets, uploads=uploads)
        if len(slots) != len(values):
            continue
        found = {w.name: v for (w, role), v in zip(slots, values, strict=True) if role == "value"}
        if all(_fits(w, found[w.name]) for w in widgets):
            return found
    return None


def _align_by_shape(widgets: Sequence[_Widget], values: Sequence[Any]) -> dict[str, Any]:
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
            raise _AlignmentError(
                f"widgets_values {list(values)!r} do not line up with the widgets "
                f"{[w.name for w in widgets]}: {value!r} cannot be {widget.name!r} ({widget.kind})"
            )
        found[widget.name] = value
        position += 1
        for extra in widget.extras:
            if position < len(values) and _looks_like(extra, values[position]):
                position += 1
    return found


def _default(widget: _Widget) -> Any:
    if "default" in widget.options:
        return widget.options["default"]
    return widget.choices[0] if widget.choices else None


def _is_dynamic_prompt(spec: dict[str, Any], name: str) -> bool:
    for input_name, config in _input_specs(spec):
        if input_name == name:
            widget = _widget(name, config)
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
        found = _align_exact(widgets, values) or _align_by_shape(widgets, values)
    inputs: dict[str, Any] = {}
    for widget in widgets:
        value = found[widget.name] if widget.name in found else _default(widget)
        if value is None and widget.name not in found:
            continue
        if widget.kind == "STRING" and widget.options.get("dynamicPrompts"):
            value = dynamic_prompt(value)
        inputs[widget.name] = _wrap(value)
    extra = {name: _wrap(value) for name, value in found.items() if name not in inputs}
    return inputs | extra


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


# -- subgraph and group-node instances -----------------------------------------------------


def _feeds_widget(graph: _Graph, subgraph_input: dict[str, Any]) -> bool:
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


def _promoted_values(graph: _Graph) -> dict[str, Any]:
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
        raise _AlignmentError(
            f"widgets_values {list(saved or [])!r} do not match the subgraph's widget inputs "
            f"{names}"
        )
    return dict(zip(names, values, strict=True))


def _group_definition(
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
    shares: list[tuple[dict[str, Any], list[_Widget], list[tuple[_Widget, str]]]] = []
    for node in nodes:
        spec = object_info.get(str(node.get("type")))
        if spec is None:
            continue
        converted = {slot["widget"].get("name") for slot in node["inputs"] if slot.get("widget")}
        widgets = widgets_of(spec)
        shown = [w for w in widgets if w.name not in converted]
        shares.append((node, widgets, _layout(shown, uploads=True)))
    if sum(len(layout) for _, _, layout in shares) != len(saved):
        return  # cannot tell which value is whose: keep the inner nodes' own values
    position = 0
    for node, widgets, layout in shares:
        own = node.get("widgets_values")
        values = dict(own) if isinstance(own, dict) else _align_exact(widgets, list(own or []))
        values = dict(values or {})
        for (widget, role), value in zip(
            layout, saved[position : position + len(layout)], strict=True
        ):
            if role == "value":
                values[widget.name] = value
        position += len(layout)
        node["widgets_values"] = values
