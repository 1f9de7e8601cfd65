"""Catch a broken workflow before a single sampler step runs, from the server's /object_info.

``check(prompt, object_info)`` lists every problem it can see, each named by node and input:

    missing_node     a class the server does not have (a custom node not installed?)
    missing_model    a loader's file is not in the server's list for that folder
    invalid_value    a combo value that is not one of the options
    missing_input    a required input that is neither set nor linked
    out_of_range     a number below min or above max, or not a number at all
    bad_link         a link to a node or output that does not exist, or of the wrong type
"""

from __future__ import annotations

from typing import Any

from comfytest.errors import PreflightFailed, Problem
from comfytest.workflow.prompt import (
    Prompt,
    did_you_mean,
    is_link,
    node_label,
    node_sort_key,
)

__all__ = ["PreflightFailed", "Problem", "check", "loader_nodes", "output_nodes"]

MODEL_SUFFIXES = (".safetensors", ".ckpt", ".pt", ".pth", ".bin", ".gguf", ".sft", ".onnx")
UPLOAD_FLAGS = ("image_upload", "video_upload", "audio_upload", "remote")


def check(prompt: Prompt, object_info: dict[str, Any]) -> list[Problem]:
    """Every problem preflight can see, in node order."""
    problems: list[Problem] = []
    for node_id in sorted(prompt, key=node_sort_key):
        node = prompt[node_id]
        class_type, title = node_label(prompt, node_id)

        def problem(kind: str, message: str) -> None:
            problems.append(Problem(node_id, class_type, title, kind, message))  # noqa: B023

        spec = object_info.get(class_type)
        if not spec:
            hint = did_you_mean(class_type, object_info, n=2, cutoff=0.6)
            problem(
                "missing_node",
                f"node class {class_type!r} is not installed on this server "
                f"(a custom node pack missing?){hint}",
            )
            continue
        inputs: dict[str, Any] = node.get("inputs", {})
        declared = _declared(spec)
        for name, (section, input_type, options) in declared.items():
            if name not in inputs:
                if section == "required":
                    problem(
                        "missing_input",
                        f"required input {name!r} ({_type_name(input_type)}) "
                        "is not set and not linked",
                    )
                continue
            value = inputs[name]
            if is_link(value):
                message = _link_problem(prompt, object_info, value, input_type)
                if message:
                    problem("bad_link", f"input {name!r}: {message}")
                continue
            for kind, message in _value_problems(name, value, input_type, options):
                problem(kind, message)
    return problems


def output_nodes(prompt: Prompt, object_info: dict[str, Any]) -> list[str]:
    """Ids of the nodes whose class is an output node (SaveImage, PreviewImage, ...)."""
    return [
        node_id
        for node_id in sorted(prompt, key=node_sort_key)
        if (object_info.get(prompt[node_id].get("class_type", "")) or {}).get("output_node")
    ]


def loader_nodes(prompt: Prompt, object_info: dict[str, Any]) -> list[str]:
    """Ids of the nodes that load models (their class's category starts with "loaders")."""
    return [
        node_id
        for node_id in sorted(prompt, key=node_sort_key)
        if str(
            (object_info.get(prompt[node_id].get("class_type", "")) or {}).get("category", "")
        ).startswith("loaders")
    ]


def _declared(spec: dict[str, Any]) -> dict[str, tuple[str, Any, dict[str, Any]]]:
    """name -> (section, type, options) for required and optional inputs."""
    declared: dict[str, tuple[str, Any, dict[str, Any]]] = {}
    for section in ("required", "optional"):
        for name, entry in (spec.get("input", {}).get(section) or {}).items():
            if not isinstance(entry, list) or not entry:
                continue
            options = entry[1] if len(entry) > 1 and isinstance(entry[1], dict) else {}
            declared[name] = (section, entry[0], options)
    return declared


def _value_problems(
    name: str, value: Any, input_type: Any, options: dict[str, Any]
) -> list[tuple[str, str]]:
    choices: list[Any] | None = None
    if isinstance(input_type, list):
        choices = input_type
    elif input_type == "COMBO" and isinstance(options.get("options"), list):
        choices = options["options"]
    if choices is not None:
        if any(options.get(flag) for flag in UPLOAD_FLAGS) or value in choices:
            return []
        if _is_model(value, choices):
            listed = f"{len(choices)} files: {_short(choices)}" if choices else "it has none"
            return [("missing_model", f"{name} {value!r} is not on this server ({listed})")]
        hint = did_you_mean(str(value), choices, n=2, cutoff=0.6)
        return [("invalid_value", f"{name} {value!r} is not one of {_short(choices)}{hint}")]
    if input_type in ("INT", "FLOAT"):
        is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not is_number or (
            input_type == "INT" and isinstance(value, float) and not value.is_integer()
        ):
            kind = "an integer" if input_type == "INT" else "a number"
            return [("out_of_range", f"{name} must be {kind}, got {value!r}")]
        low, high = options.get("min"), options.get("max")
        if low is not None and value < low:
            return [("out_of_range", f"{name} {value!r} is below the minimum {low!r}")]
        if high is not None and value > high:
            return [("out_of_range", f"{name} {value!r} is above the maximum {high!r}")]
    return []


def _link_problem(
    prompt: Prompt, object_info: dict[str, Any], link: list[Any], input_type: Any
) -> str:
    source, slot = str(link[0]), int(link[1])
    if source not in prompt:
        return f"links to node {source}, which is not in the workflow"
    source_spec = object_info.get(prompt[source].get("class_type", ""))
    if not source_spec:
        return ""  # reported on the source node itself
    outputs = source_spec.get("output") or []
    if slot >= len(outputs):
        return f"links to output {slot} of node {source}, which has {len(outputs)} outputs"
    produced = outputs[slot]
    expected = "COMBO" if isinstance(input_type, list) else input_type
    if isinstance(produced, list):
        produced = "COMBO"
    if not _compatible(str(produced), str(expected)):
        title = node_label(prompt, source)[1]
        return (
            f"expects {_type_name(expected)} but node {source} ({title}) output {slot} "
            f"gives {produced}"
        )
    return ""


def _compatible(produced: str, expected: str) -> bool:
    if "*" in (produced, expected):
        return True
    return bool(set(produced.split(",")) & set(expected.split(",")))


def _is_model(value: Any, choices: list[Any]) -> bool:
    """A model file: the value, or the server's choices for it, name model files."""
    return isinstance(value, str) and (
        value.lower().endswith(MODEL_SUFFIXES)
        or any(str(c).lower().endswith(MODEL_SUFFIXES) for c in choices)
    )


def _type_name(input_type: Any) -> str:
    return "a choice" if isinstance(input_type, list) else str(input_type)


def _short(choices: list[Any], limit: int = 8) -> str:
    shown = ", ".join(repr(c) for c in choices[:limit])
    return f"[{shown}{', ...' if len(choices) > limit else ''}]"
