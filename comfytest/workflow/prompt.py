"""API-format workflows as plain dicts: load, address nodes, override inputs, pin seeds.

Pure functions over ``dict[str, Any]`` prompts (the shape ``POST /prompt`` takes); nothing
here talks to a server.
"""

from __future__ import annotations

import difflib
import hashlib
import json
from collections.abc import Iterable
from typing import Any

from comfytest.errors import OverrideError
from comfytest.workflow.files import load_workflow

__all__ = [
    "SEED_INPUTS",
    "OverrideError",
    "Prompt",
    "copy_prompt",
    "did_you_mean",
    "find_node",
    "is_link",
    "load_workflow",
    "node_label",
    "node_sort_key",
    "prompt_digest",
    "resolve_axis",
    "seed_inputs",
    "set_input",
]

Prompt = dict[str, Any]

#: Input names ComfyUI's frontend treats as seeds (``control_after_generate``).
SEED_INPUTS = ("seed", "noise_seed")
#: Short names for inputs in sweeps; any other name is looked up as an input name.
INPUT_ALIASES = {
    "sampler": "sampler_name",
    "model": "ckpt_name",
    "ckpt": "ckpt_name",
    "checkpoint": "ckpt_name",
    "batch": "batch_size",
}
#: Aliases that follow the sampler's conditioning links, or set two inputs at once.
SPECIAL_AXES = ("prompt", "negative", "size")


def copy_prompt(value: Any) -> Any:
    """A deep copy of JSON-shaped data (dicts, lists, scalars); several times faster than
    ``copy.deepcopy``, which matters when a sweep expands into thousands of cells."""
    if isinstance(value, dict):
        return {key: copy_prompt(item) for key, item in value.items()}
    if isinstance(value, list):
        return [copy_prompt(item) for item in value]
    return value


def node_label(prompt: Prompt, node_id: str) -> tuple[str, str]:
    """(class_type, title) of a node; the title falls back to the class."""
    node = prompt.get(node_id, {})
    class_type = str(node.get("class_type", "?"))
    title = node.get("_meta", {}).get("title") if isinstance(node.get("_meta"), dict) else None
    return class_type, str(title or class_type)


def find_node(prompt: Prompt, ref: str) -> str:
    """Resolve a node reference: an id, a title (``_meta.title``), or a unique class_type."""
    if ref in prompt:
        return ref
    by_title = [nid for nid in prompt if node_label(prompt, nid)[1] == ref]
    if len(by_title) == 1:
        return by_title[0]
    if len(by_title) > 1:
        raise OverrideError(f"node title {ref!r} is ambiguous: nodes {', '.join(by_title)}")
    by_class = [nid for nid in prompt if prompt[nid]["class_type"] == ref]
    if len(by_class) == 1:
        return by_class[0]
    if len(by_class) > 1:
        candidates = ", ".join(f"{nid} ({node_label(prompt, nid)[1]!r})" for nid in by_class)
        raise OverrideError(
            f"{ref!r} matches {len(by_class)} nodes of that class: {candidates}; "
            "name one by id or title"
        )
    names = list(prompt) + [node_label(prompt, nid)[1] for nid in prompt]
    names += [prompt[nid]["class_type"] for nid in prompt]
    raise OverrideError(f"no node {ref!r} in the workflow{did_you_mean(ref, names)}")


def set_input(prompt: Prompt, node_id: str, name: str, value: Any) -> None:
    """Set a literal input in place; the input must exist and must not be a link."""
    inputs: dict[str, Any] = prompt[node_id].setdefault("inputs", {})
    title = node_label(prompt, node_id)[1]
    if name not in inputs:
        raise OverrideError(
            f"node {node_id} ({title}) has no input {name!r}{did_you_mean(name, inputs)}"
        )
    if is_link(inputs[name]):
        source = inputs[name][0]
        raise OverrideError(
            f"input {name!r} of node {node_id} ({title}) is linked to node {source}; "
            f"override node {source}'s inputs instead"
        )
    inputs[name] = copy_prompt(value)


def resolve_axis(prompt: Prompt, key: str, value: Any) -> list[tuple[str, str, Any]]:
    """Which (node, input, value) a sweep axis sets.

    ``key`` is ``Node.input`` (node id, title or unique class), an alias (``sampler``,
    ``model``, ``batch``), ``prompt``/``negative`` (the text feeding the sampler's
    positive/negative conditioning), ``size`` (``WxH`` or ``[W, H]`` on the one node with
    both width and height), or an input name that exactly one node has.
    """
    if "." in key:
        node_ref, name = key.rsplit(".", 1)
        return [(find_node(prompt, node_ref), name, value)]
    if key in ("prompt", "negative"):
        return [
            (_text_source(prompt, "positive" if key == "prompt" else "negative"), "text", value)
        ]
    if key == "size":
        width, height = _size(value)
        holders = _holders(prompt, "width") & _holders(prompt, "height")
        latent = {nid for nid in holders if "Latent" in prompt[nid]["class_type"]}
        chosen = latent if len(latent) == 1 else holders
        if len(chosen) != 1:
            raise OverrideError(
                _ambiguous(prompt, sorted(holders, key=node_sort_key), "width/height")
            )
        (node_id,) = chosen
        return [(node_id, "width", width), (node_id, "height", height)]
    name = INPUT_ALIASES.get(key, key)
    holders = _holders(prompt, name)
    if len(holders) == 1:
        return [(holders.pop(), name, value)]
    if holders:
        raise OverrideError(_ambiguous(prompt, sorted(holders, key=node_sort_key), name))
    known = {n for node in prompt.values() for n in node.get("inputs", {})}
    known = (known | set(INPUT_ALIASES) | set(SPECIAL_AXES)) - {key, name}
    raise OverrideError(f"no node has an input {name!r}{did_you_mean(key, known)}")


def _holders(prompt: Prompt, name: str) -> set[str]:
    return {
        node_id
        for node_id, node in prompt.items()
        if name in node.get("inputs", {}) and not is_link(node["inputs"][name])
    }


def _ambiguous(prompt: Prompt, node_ids: list[str], name: str) -> str:
    nodes = ", ".join(f"{nid} ({node_label(prompt, nid)[1]!r})" for nid in node_ids)
    return f"{len(node_ids)} nodes have {name}: {nodes}; name one as 'Node.input' or add an alias"


def _text_source(prompt: Prompt, slot: str) -> str:
    """The node whose literal ``text`` feeds the sampler's ``slot`` conditioning."""
    sources = {
        node["inputs"][slot][0]
        for node in prompt.values()
        if is_link(node.get("inputs", {}).get(slot))
    }
    if len(sources) != 1:
        found = f"{len(sources)} different sources" if sources else "no link"
        raise OverrideError(f"expected one node feeding '{slot}' conditioning, found {found}")
    source = sources.pop()
    text = prompt.get(source, {}).get("inputs", {}).get("text")
    if text is None or is_link(text):
        title = node_label(prompt, source)[1]
        raise OverrideError(
            f"the {slot} conditioning comes from node {source} ({title}), which has no literal "
            f"text input; sweep '{title}.<input>' instead"
        )
    return str(source)


def _size(value: Any) -> tuple[int, int]:
    if isinstance(value, str) and "x" in value:
        width, _, height = value.partition("x")
        if width.strip().isdigit() and height.strip().isdigit():
            return int(width), int(height)
    if (
        isinstance(value, list)
        and len(value) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
    ):
        return value[0], value[1]
    raise OverrideError(f"size: expected 'WIDTHxHEIGHT' or [width, height], got {value!r}")


def seed_inputs(prompt: Prompt, object_info: dict[str, Any] | None = None) -> list[tuple[str, str]]:
    """(node id, input name) of every literal input the UI would randomise, in node order.

    With the server's ``object_info``: the INT inputs flagged ``control_after_generate``
    (and ``seed``/``noise_seed`` where the flag is not given). Without it, or for a class it
    does not list: the inputs named ``seed`` or ``noise_seed``. The one seed finder, used at
    collection (no server) and again at run time."""
    found = []
    for node_id in sorted(prompt, key=node_sort_key):
        inputs = prompt[node_id].get("inputs", {})
        spec = (object_info or {}).get(prompt[node_id].get("class_type", ""))
        declared = _declared_inputs(spec) if spec else None
        for name, value in inputs.items():
            if is_link(value):
                continue
            if declared is None:
                seeded = name in SEED_INPUTS
            else:
                input_type, options = declared.get(name, (None, {}))
                flag = options.get("control_after_generate")
                seeded = input_type == "INT" and (flag or (flag is None and name in SEED_INPUTS))
            if seeded:
                found.append((node_id, name))
    return found


def _declared_inputs(spec: dict[str, Any]) -> dict[str, tuple[Any, dict[str, Any]]]:
    """name -> (type, options) of a class's required and optional inputs (/object_info)."""
    declared: dict[str, tuple[Any, dict[str, Any]]] = {}
    for section in ("required", "optional"):
        for name, entry in (spec.get("input", {}).get(section) or {}).items():
            if isinstance(entry, list) and entry:
                options = entry[1] if len(entry) > 1 and isinstance(entry[1], dict) else {}
                declared[name] = (entry[0], options)
    return declared


def prompt_digest(prompt: Prompt) -> str:
    """A short, stable digest of a prompt (sorted-key JSON)."""
    blob = json.dumps(prompt, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def node_sort_key(node_id: str) -> tuple[int, int, str]:
    return (0, int(node_id), "") if node_id.isdigit() else (1, 0, node_id)


def is_link(value: Any) -> bool:
    """True for an input that is a link ``[source node id, output index]``."""
    return (
        isinstance(value, list)
        and len(value) == 2
        and isinstance(value[0], str)
        and isinstance(value[1], int)
    )


def did_you_mean(name: str, choices: Iterable[object], n: int = 3, cutoff: float = 0.5) -> str:
    """``"; did you mean 'a' or 'b'?"`` with the nearest choices, or "" when none is near."""
    names = list(dict.fromkeys(str(choice) for choice in choices))
    close = difflib.get_close_matches(name, names, n=n, cutoff=cutoff)
    return f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
