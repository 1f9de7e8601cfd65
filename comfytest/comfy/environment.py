"""The environment a result came from, and what changed between two of them.

A fingerprint is small and JSON-shaped, so it can sit beside baselines and be read in a
pull request::

    {"comfyui_version": "0.3.75", "pytorch_version": "2.14.1+cu130", "python_version": "3.11.7",
     "os": "posix", "device": "cpu (cpu)",
     "node_classes": {"count": 412, "digest": "5f0c..."},
     "models": {"checkpoints": {"comfytest-sd15-tiny.safetensors": 279526298}}}

Model sizes are known only for a managed runtime (its files are local); a server given by
URL lists names with a null size.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from comfytest.errors import ComfytestError

if TYPE_CHECKING:
    from comfytest.comfy.client import ComfyClient
    from comfytest.runtime import Runtime

__all__ = [
    "MODEL_FOLDERS",
    "differences",
    "fingerprint",
    "recorded_environment",
    "server_fingerprint",
]

#: Model folders listed in a fingerprint (others are rarely used by tests and cost requests).
MODEL_FOLDERS = (
    "checkpoints",
    "diffusion_models",
    "text_encoders",
    "vae",
    "loras",
    "controlnet",
    "upscale_models",
    "clip_vision",
    "embeddings",
)


def server_fingerprint(
    client: ComfyClient,
    runtime: Runtime | None = None,
    object_info: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The fingerprint of the server behind ``client``; ``runtime`` when it is a managed one
    (its model files are local, so their sizes are known)."""
    models = {folder: client.models(folder) for folder in MODEL_FOLDERS}
    name = f"{runtime.name} (ComfyUI {runtime.info.get('comfyui_version')})" if runtime else None
    return fingerprint(
        client.system_stats(),
        object_info if object_info is not None else client.object_info(),
        models,
        runtime.comfyui_dir / "models" if runtime else None,
        runtime=name,
    )


def fingerprint(
    system_stats: Mapping[str, Any],
    object_info: Mapping[str, Any],
    models: Mapping[str, list[str] | None],
    model_root: Path | None = None,
    runtime: str | None = None,
) -> dict[str, Any]:
    """A fingerprint from /system_stats, /object_info and the model lists of a server.

    ``runtime`` names the managed runtime, when there is one (older ComfyUI trees report
    their version as "unknown"; the runtime knows the commit).
    """
    system = system_stats.get("system", {})
    devices = system_stats.get("devices") or [{}]
    specs = {name: _shape(spec.get("input") or {}) for name, spec in object_info.items()}
    blob = json.dumps(specs, sort_keys=True, separators=(",", ":"), default=str).encode()
    found = {
        "comfyui_version": system.get("comfyui_version"),
        "pytorch_version": system.get("pytorch_version"),
        "python_version": str(system.get("python_version", "")).split(" ")[0],
        "os": system.get("os"),
        "device": f"{devices[0].get('name')} ({devices[0].get('type')})",
        "node_classes": {
            "count": len(object_info),
            "digest": hashlib.sha256(blob).hexdigest()[:16],
        },
        # None when the server cannot list models (no /models route before mid-2024).
        "models": None
        if all(names is None for names in models.values())
        else {
            folder: {name: _size(model_root, folder, name) for name in sorted(names)}
            for folder, names in sorted(models.items())
            if names
        },
    }
    if runtime:
        found["runtime"] = runtime
    return found


def _shape(inputs: Mapping[str, Any]) -> dict[str, Any]:
    """A node's inputs as names and types only. Option lists and limits are left out: combo
    lists name files and folders of the server (LoadImage's images, dataset folders) that
    change with every upload, and model lists are fingerprinted on their own."""
    return {
        section: {
            name: (spec[0] if isinstance(spec[0], str) else "COMBO")
            if isinstance(spec, list) and spec
            else str(spec)
            for name, spec in entries.items()
        }
        if isinstance(entries, Mapping)
        else str(entries)
        for section, entries in inputs.items()
    }


def _size(root: Path | None, folder: str, name: str) -> int | None:
    if root is None:
        return None
    try:
        return (root / folder / name).stat().st_size
    except OSError:
        return None


def differences(baseline: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    """What changed from the baseline's environment to this one, one phrase each."""
    changes = []
    labels = {
        "runtime": "runtime",
        "comfyui_version": "ComfyUI",
        "pytorch_version": "torch",
        "python_version": "Python",
        "os": "OS",
        "device": "device",
    }
    for key, label in labels.items():
        before, after = baseline.get(key) or "unknown", current.get(key) or "unknown"
        if before != after:
            changes.append(f"{label} {before} -> {after}")
    old_nodes, new_nodes = baseline.get("node_classes") or {}, current.get("node_classes") or {}
    if old_nodes.get("digest") != new_nodes.get("digest"):
        changes.append(
            f"node classes or their inputs changed ({old_nodes.get('count')} -> "
            f"{new_nodes.get('count')} classes)"
        )
    old_models, new_models = baseline.get("models"), current.get("models")
    if old_models is None or new_models is None:
        if old_models != new_models:
            changes.append("model files: not listed by one of the two servers")
        return changes
    for folder in sorted(set(old_models) | set(new_models)):
        before, after = old_models.get(folder, {}), new_models.get(folder, {})
        for name in sorted(set(before) - set(after)):
            changes.append(f"model {folder}/{name} is gone")
        for name in sorted(set(after) - set(before)):
            changes.append(f"model {folder}/{name} is new")
        for name in sorted(set(before) & set(after)):
            if None not in (before[name], after[name]) and before[name] != after[name]:
                changes.append(
                    f"model {folder}/{name} changed size {before[name]} -> {after[name]}"
                )
    return changes


def recorded_environment(path: Path) -> dict[str, Any]:
    """The environment a baseline folder, a manifest.json or a run.json was made in."""
    file = path / "manifest.json" if path.is_dir() else path
    try:
        data = json.loads(file.read_text())
    except OSError as exc:
        raise ComfytestError(f"{file}: cannot read it: {exc.strerror}") from None
    except ValueError as exc:
        raise ComfytestError(f"{file}: not JSON: {exc}") from None
    environment = data.get("environment") or (data.get("header") or {}).get("environment")
    if not isinstance(environment, dict):
        raise ComfytestError(f"{file}: records no environment")
    return environment
