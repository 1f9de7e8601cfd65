"""Two case keys that let a user's saved workflow run unmodified on a small CPU-only CI.

``stand_in: {sd_xl_base_1.0.safetensors: sdxl, "*.safetensors": sdxl}`` maps model names
(exact, or ``fnmatch`` patterns) to a stand-in family; every loader input (one called
``*name``) that names a mapped model then names the family's stand-in instead
(``comfytest.runtime.standins``): ``ckpt_name`` its checkpoint, ``vae_name`` its TAESD,
``lora_name`` its LoRA. Any other loader input naming a mapped model is a CaseError: no
stand-in for that loader.

``ci: {max_side: 64, max_steps: 4}`` caps sizes and steps: ``width``/``height`` pairs
scale down together (aspect kept, multiples of 8, at least 8); ``steps`` is capped and a
node's ``start_at_step``/``end_at_step`` scale with it (rounded down), so a base/refiner
split keeps its shape. Text encoders' width/height (conditioning values, not sizes) are left alone.

Both are applied as overrides (the workflow file is not changed) and listed per case, in
the terminal and ``run.json``, so a capped run with stand-ins is never taken for a full one.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from comfytest.cases.yaml_reader import LineMap
from comfytest.errors import CaseError
from comfytest.workflow.prompt import Prompt, did_you_mean, is_link, node_label, node_sort_key

__all__ = [
    "FAMILIES",
    "FOLDERS",
    "LOADER_INPUTS",
    "CiCaps",
    "StandIn",
    "ci_caps",
    "ci_targets",
    "stand_in_file",
    "stand_in_targets",
    "stand_ins",
]

#: Families a model name can be mapped to (comfytest.runtime.standins writes their files).
FAMILIES = ("sd15", "sd2", "sdxl")
#: Loader input -> kind of stand-in (the file names follow comfytest.runtime.standins).
LOADER_INPUTS = {"ckpt_name": "checkpoint", "vae_name": "vae", "lora_name": "lora"}
#: Kind of stand-in -> the ComfyUI models folder it lives in.
FOLDERS = {"checkpoint": "checkpoints", "vae": "vae", "lora": "loras"}
_SUFFIX = {"checkpoint": "tiny", "vae": "vae", "lora": "lora"}
_MODEL_SUFFIXES = (".safetensors", ".ckpt", ".pt", ".pth", ".bin", ".gguf", ".sft")
CI_KEYS = ("max_side", "max_steps")
#: Inputs that name a model file: ckpt_name, unet_name, clip_name1, control_net_name, ...
_LOADER_INPUT = re.compile(r"name\d*$")


def stand_in_file(family: str, kind: str) -> str:
    """The file a loader input names for ``family``'s stand-in of ``kind`` (checkpoint, vae,
    lora); SD1.5's checkpoint is the runtime's own tiny one."""
    return f"comfytest-{family}-{_SUFFIX[kind]}.safetensors"


@dataclass(frozen=True)
class StandIn:
    """One ``stand_in`` entry: a model name or pattern, its family, where it was written."""

    pattern: str
    family: str
    path: Path
    line: int

    def matches(self, value: str) -> bool:
        return value == self.pattern or fnmatch.fnmatchcase(value, self.pattern)


@dataclass(frozen=True)
class CiCaps:
    """The ``ci`` profile: the largest side and step count a case runs with."""

    max_side: int | None
    max_steps: int | None
    path: Path
    line: int


def stand_ins(value: Any, path: Path, line: int) -> list[StandIn]:
    """Parse ``stand_in: {model name or pattern: family}``."""
    if not isinstance(value, LineMap):
        raise CaseError(
            "stand_in: expected a mapping of model file name -> family, e.g. "
            "{sd_xl_base_1.0.safetensors: sdxl}",
            path,
            line,
        )
    found = []
    for name, family in value.items():
        fline = value.line_of(name)
        if not isinstance(name, str) or not name:
            raise CaseError(f"stand_in: a model name is a string, got {name!r}", path, fline)
        if family not in FAMILIES:
            hint = did_you_mean(str(family), FAMILIES, n=1) or f" (known: {', '.join(FAMILIES)})"
            raise CaseError(f"stand_in.{name}: unknown family {family!r}{hint}", path, fline)
        found.append(StandIn(name, str(family), path, fline))
    return found


def ci_caps(value: Any, path: Path, line: int) -> CiCaps | None:
    """Parse ``ci: {max_side: 64, max_steps: 4}`` (``ci: null`` turns a default off)."""
    if value is None:
        return None
    if not isinstance(value, LineMap):
        raise CaseError("ci: expected a mapping, e.g. {max_side: 64, max_steps: 4}", path, line)
    caps: dict[str, int] = {}
    for key, raw in value.items():
        kline = value.line_of(key)
        if key not in CI_KEYS:
            hint = did_you_mean(str(key), CI_KEYS, n=1) or f" (known: {', '.join(CI_KEYS)})"
            raise CaseError(f"unknown ci key {key!r}{hint}", path, kline)
        least = 8 if key == "max_side" else 1
        if not isinstance(raw, int) or isinstance(raw, bool) or raw < least:
            raise CaseError(f"ci.{key}: expected an integer >= {least}, got {raw!r}", path, kline)
        caps[str(key)] = raw
    return CiCaps(caps.get("max_side"), caps.get("max_steps"), path, line)


def stand_in_targets(prompt: Prompt, entries: tuple[StandIn, ...]) -> list[tuple[str, str, str]]:
    """(node id, input, stand-in file name) for each input naming a mapped model; the last
    matching entry wins, as later layers override earlier ones."""
    targets = []
    for node_id in sorted(prompt, key=node_sort_key):
        for name, value in prompt[node_id].get("inputs", {}).items():
            if not isinstance(value, str) or is_link(value):
                continue
            hits = [e for e in entries if e.matches(value)]
            if not hits or not _LOADER_INPUT.search(name):
                continue  # a prompt text that names a model is not a loader's input
            if hits[-1].pattern != value and not _is_model(value):
                continue
            entry = hits[-1]
            kind = LOADER_INPUTS.get(name)
            if kind is None:
                class_type, title = node_label(prompt, node_id)
                raise CaseError(
                    f"stand_in: no stand-in for this loader: {class_type}.{name} of node "
                    f"{node_id} ({title}) names {value!r}; stand-ins exist for "
                    f"{', '.join(LOADER_INPUTS)} (checkpoint, VAE and LoRA loaders)",
                    entry.path,
                    entry.line,
                )
            targets.append((node_id, name, stand_in_file(entry.family, kind)))
    return targets


def ci_targets(prompt: Prompt, caps: CiCaps) -> list[tuple[str, str, int]]:
    """(node id, input, capped value) for every size and step input above the caps."""
    targets: list[tuple[str, str, int]] = []
    for node_id in sorted(prompt, key=node_sort_key):
        node = prompt[node_id]
        inputs: dict[str, Any] = node.get("inputs", {})
        if caps.max_side is not None and "TextEncode" not in str(node.get("class_type", "")):
            sides = {k: inputs[k] for k in ("width", "height") if _int(inputs.get(k))}
            if sides and max(sides.values()) > caps.max_side:
                scale = caps.max_side / max(sides.values())
                for key, side in sides.items():
                    targets.append((node_id, key, max(8, int(side * scale) // 8 * 8)))
        steps = inputs.get("steps")
        if caps.max_steps is not None and isinstance(steps, int) and steps > caps.max_steps:
            targets.append((node_id, "steps", caps.max_steps))
            for key in ("start_at_step", "end_at_step"):
                if _int(inputs.get(key)):
                    # Rounded down: a base/refiner split at 20 of 25 is 1 of 2, not 2 of 2.
                    scaled = min(caps.max_steps, inputs[key] * caps.max_steps // steps)
                    if scaled != inputs[key]:
                        targets.append((node_id, key, scaled))
    return targets


def _int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_model(value: str) -> bool:
    return value.lower().endswith(_MODEL_SUFFIXES)
