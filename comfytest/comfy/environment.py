"""The environment a result came from, and what changed between two of them.

A fingerprint is small and JSON-shaped, so it can sit beside baselines and be read in a
pull request::

    {"comfyui_version": "0.3.75", "pytorch_version": "2.14.1+cu130", "python_version": "3.11.7",
     "os": "posix", "device": "cpu (cpu)",
     "node_classes": {"count": 412, "digest": "5f0c..."},
     "models": {"checkpoints": {"comfytest-sd15-tiny.safetensors":
                                {"size": 279526298, "sha256": "9f3c..."}}},
     "node_packs": {"my_pack": {"classes": ["MyNode"], "version": "1.2.0",
                                "commit": "4e1d...", "digest": "a1b2..."}}}

Model sizes and sha256 are known only for a managed runtime (its files are local); a server
given by URL lists model names with a null size, and its node packs by their classes only.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from comfytest.comfy.changes import differences, unchanged
from comfytest.comfy.model_hashes import ModelHashes
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
    "unchanged",
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
    model_dirs: Mapping[str, Sequence[Path]] | None = None,
) -> dict[str, Any]:
    """The fingerprint of the server behind ``client``; ``runtime`` when it is a managed one
    (its model files are local: they are named by sha256, cached in ``<home>/hashes.json``,
    and its node packs by version, commit and digest). ``model_dirs`` are model folders
    given to the server on top of the runtime's (kind -> folders)."""
    models = {folder: client.models(folder) for folder in MODEL_FOLDERS}
    name = f"{runtime.name} (ComfyUI {runtime.info.get('comfyui_version')})" if runtime else None
    hashes = ModelHashes(runtime.root.parent.parent / "hashes.json") if runtime else None
    roots: dict[str, list[Path]] = {}
    if runtime is not None:
        for source in (runtime.info.get("model_dirs") or {}, model_dirs or {}):
            for kind, paths in source.items():
                roots.setdefault(kind, []).extend(Path(p) for p in paths)
    found = fingerprint(
        client.system_stats(),
        object_info if object_info is not None else client.object_info(),
        models,
        runtime.comfyui_dir / "models" if runtime else None,
        runtime=name,
        model_dirs=roots,
        hashes=hashes,
        packs=runtime.info.get("custom_nodes") if runtime else None,
    )
    if runtime is not None and found.get("comfyui_version") in (None, "", "unknown"):
        found["comfyui_version"] = runtime.info.get("comfyui_version")  # "commit <sha>"
    if hashes is not None:
        hashes.save()
    return found


def fingerprint(
    system_stats: Mapping[str, Any],
    object_info: Mapping[str, Any],
    models: Mapping[str, list[str] | None],
    model_root: Path | None = None,
    runtime: str | None = None,
    *,
    model_dirs: Mapping[str, Sequence[Path]] | None = None,
    hashes: ModelHashes | None = None,
    packs: Sequence[Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """A fingerprint from /system_stats, /object_info and the model lists of a server.

    ``runtime`` names the managed runtime, when there is one (older ComfyUI trees report
    their version as "unknown"; the runtime knows the commit). A model is its size, or with
    ``hashes`` its size and sha256, found under ``model_root/<folder>`` or ``model_dirs``.
    ``packs`` are the runtime's node packs as runtime.json records them.
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
            folder: {
                name: _model(_locate(model_root, model_dirs, folder, name), hashes)
                for name in sorted(names)
            }
            for folder, names in sorted(models.items())
            if names
        },
    }
    node_packs = _node_packs(object_info, packs or ())
    if node_packs:
        found["node_packs"] = node_packs
    if runtime:
        found["runtime"] = runtime
    return found


def _node_packs(
    object_info: Mapping[str, Any], packs: Sequence[Mapping[str, Any]]
) -> dict[str, dict[str, Any]]:
    """Each custom node pack the server loaded: its classes (from /object_info's
    ``python_module``), and for a managed runtime's packs their version, commit and digest."""
    found: dict[str, dict[str, Any]] = {}
    for name, spec in sorted(object_info.items()):
        module = str(spec.get("python_module") or "") if isinstance(spec, Mapping) else ""
        if module.startswith("custom_nodes."):
            pack = module.split(".", 2)[1]
            found.setdefault(pack, {"classes": []})["classes"].append(name)
    for recorded in packs:
        entry = found.setdefault(str(recorded["name"]), {"classes": []})
        entry.update({k: recorded.get(k) for k in ("version", "commit", "digest")})
    return found


def _locate(
    root: Path | None, dirs: Mapping[str, Sequence[Path]] | None, folder: str, name: str
) -> Path | None:
    """Where a listed model lies: the runtime's models/<folder>, else a folder given for it."""
    candidates = [root / folder / name] if root is not None else []
    candidates += [Path(d) / name for d in (dirs or {}).get(folder, ())]
    return next((c for c in candidates if c.is_file()), candidates[0] if candidates else None)


def _model(path: Path | None, hashes: ModelHashes | None) -> int | dict[str, Any] | None:
    """A model's size, or its size and sha256 when hashing; None when it is not local."""
    if path is None:
        return None
    try:
        size = path.stat().st_size
    except OSError:
        return None
    if hashes is None:
        return size
    return {"size": size, "sha256": hashes.sha256(path)}


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
