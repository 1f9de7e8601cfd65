"""UI-format ("Save") workflows → API-format prompts, using the server's ``/object_info``.

ComfyUI's frontend converts its graph with ``graphToPrompt`` at queue time; this package does the
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
   PrimitiveNode source becomes a literal value, in every mode (the frontend's ``applyToGraph``
   copies it into the target widget whether the PrimitiveNode is muted or bypassed). A link
   overrides the widget value of the same name; a link from a muted real node removes the
   input, as the frontend's final clean-up does, while a muted Reroute still passes its link.
5. Legacy group nodes get their instance's widget values by position over the widgets the
   frontend builds for the group (:mod:`.groups`); widgets past the saved values take their
   defaults, as a group node loaded in the frontend shows them.
6. ``filename_prefix`` of the save nodes: ``%date:…%`` and ``%Node.widget%`` are substituted as
   the frontend's ``applyTextReplacements`` does (:mod:`.replacements`), the date being the
   ``now`` the caller gives (the run's start), not the moment each prompt is queued.

Deliberate choices:

* ``dynamicPrompts`` strings (e.g. ``CLIPTextEncode.text``): the frontend strips ``//`` and
  ``/* */`` comments and replaces each ``{a|b|c}`` by a *random* option when it queues. We strip
  comments exactly as it does (a prompt with ``//`` in it means what the user saw run), and
  resolve every choice to its **first** option, so a converted workflow is deterministic, as a
  regression test must be, and still sends a text the UI could have sent.
* Inner nodes of a muted or bypassed subgraph instance are dropped with it.
* Lists are wrapped as ``{"__value__": [...]}`` so the server does not read them as links.

The package, one concern a module: :mod:`.graph` (the graph as read from JSON, link shapes,
connection rules), :mod:`.widgets` (widget values, step 3), :mod:`.subgraphs` (subgraph
instances, step 2), :mod:`.groups` (legacy group nodes, steps 2 and 5), :mod:`.replacements`
(step 6), :mod:`.converter` (the walk and link resolution, steps 2 and 4).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from comfytest.errors import ConversionError
from comfytest.workflow.convert.converter import VIRTUAL_NODE_TYPES, Converter
from comfytest.workflow.convert.widgets import dynamic_prompt as dynamic_prompt

__all__ = ["VIRTUAL_NODE_TYPES", "ConversionError", "is_ui_workflow", "ui_to_api"]


def is_ui_workflow(data: object) -> bool:
    """True for a UI-format workflow (what "Save" writes): a ``nodes`` list and ``links``."""
    return (
        isinstance(data, dict)
        and isinstance(data.get("nodes"), list)
        and isinstance(data.get("links", []), list)
    )


def ui_to_api(
    workflow: dict[str, Any], object_info: dict[str, Any], *, now: datetime | None = None
) -> dict[str, Any]:
    """Convert a UI-format workflow into the API prompt ``POST /prompt`` takes.

    ``object_info`` must come from the server the prompt will run on (same nodes, versions).
    ``now`` is the time ``%date:…%`` patterns in ``filename_prefix`` show (default: now).
    """
    if not is_ui_workflow(workflow):
        raise ConversionError("not a UI-format workflow: expected a 'nodes' list and 'links'")
    return Converter(workflow, object_info, now).convert()
