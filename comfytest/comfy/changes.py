"""What changed between two environment fingerprints (see comfytest.comfy.environment), and
what stayed the same, in words a failure prints::

    node pack comfytest_fixture_pack 1.0.0 -> 2.0.0 (digest bdda1546 -> dbcdba86)
    node pack comfytest_fixture_pack: class FixtureInvert is gone
    model checkpoints/x.safetensors: other content, same name and size (sha256 9f3c1a2b -> 77e0d1c4)
    unchanged: ComfyUI 0.3.75, torch 2.14.1, Python 3.11.7, 1 model (by sha256)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["UNCHANGED", "differences", "environment_lines", "unchanged"]

#: How the line naming what stayed the same begins.
UNCHANGED = "unchanged: "

LABELS = {
    "runtime": "runtime",
    "comfyui_version": "ComfyUI",
    "pytorch_version": "torch",
    "python_version": "Python",
    "os": "OS",
    "device": "device",
}


def differences(baseline: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    """What changed from the baseline's environment to this one, one phrase each."""
    changes = []
    for key, label in LABELS.items():
        before, after = baseline.get(key) or "unknown", current.get(key) or "unknown"
        if before != after:
            changes.append(f"{label} {before} -> {after}")
    changes += _pack_changes(baseline, current)
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
            change = _model_change(before[name], after[name])
            if change:
                changes.append(f"model {folder}/{name}: {change}")
    return changes


def unchanged(baseline: Mapping[str, Any], current: Mapping[str, Any]) -> str:
    """One line naming the parts that stayed the same (ComfyUI, torch, models, node packs),
    so a change stands out as the likely cause."""
    same = []
    for key in ("comfyui_version", "pytorch_version", "python_version", "device"):
        if baseline.get(key) and baseline.get(key) == current.get(key):
            same.append(f"{LABELS[key]} {baseline[key]}")
    old_models, new_models = baseline.get("models") or {}, current.get("models") or {}
    kept = [
        (folder, name)
        for folder in old_models
        for name in old_models[folder]
        if name in new_models.get(folder, {})
        and not _model_change(old_models[folder][name], new_models[folder][name])
    ]
    if kept:
        hashed = all(
            isinstance(old_models[f][n], dict) and old_models[f][n].get("sha256") for f, n in kept
        )
        how = "by sha256" if hashed else "by name and size"
        same.append(f"{len(kept)} model{'s' if len(kept) != 1 else ''} ({how})")
    old_packs, new_packs = baseline.get("node_packs"), current.get("node_packs") or {}
    for name, pack in sorted((old_packs or {}).items()):
        if new_packs.get(name) == pack:
            same.append(f"node pack {name} {pack.get('version') or ''}".rstrip())
    old_nodes, new_nodes = baseline.get("node_classes") or {}, current.get("node_classes") or {}
    if old_nodes and old_nodes.get("digest") == new_nodes.get("digest"):
        same.append(f"{old_nodes.get('count')} node classes")
    return UNCHANGED + (", ".join(same) if same else "nothing recorded")


def environment_lines(baseline: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    """The changes, then the ``unchanged:`` line; empty when nothing changed."""
    changes = differences(baseline, current)
    return [*changes, unchanged(baseline, current)] if changes else []


def _pack_changes(baseline: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    if "node_packs" not in baseline:
        return []  # recorded before node packs were fingerprinted: nothing to compare
    old, new = baseline.get("node_packs") or {}, current.get("node_packs") or {}
    changes = []
    for name in sorted(set(old) | set(new)):
        if name not in new:
            classes = ", ".join(old[name].get("classes") or []) or "no classes"
            changes.append(f"node pack {name} is gone (it had {classes})")
            continue
        if name not in old:
            changes.append(f"node pack {name} {_pack_words(new[name])} is new")
            continue
        before, after = old[name], new[name]
        if any(before.get(k) != after.get(k) for k in ("version", "commit", "digest")):
            changes.append(
                f"node pack {name} {before.get('version') or '?'} -> "
                f"{after.get('version') or '?'}{_moved(before, after)}"
            )
        gone = sorted(set(before.get("classes") or []) - set(after.get("classes") or []))
        added = sorted(set(after.get("classes") or []) - set(before.get("classes") or []))
        if gone:
            changes.append(f"node pack {name}: class {', '.join(gone)} is gone")
        if added:
            changes.append(f"node pack {name}: class {', '.join(added)} is new")
    return changes


def _pack_words(pack: Mapping[str, Any]) -> str:
    return str(pack.get("version") or f"({len(pack.get('classes') or [])} classes)")


def _moved(before: Mapping[str, Any], after: Mapping[str, Any]) -> str:
    parts = []
    for key in ("commit", "digest"):
        if before.get(key) != after.get(key) and (before.get(key) or after.get(key)):
            parts.append(f"{key} {str(before.get(key))[:8]} -> {str(after.get(key))[:8]}")
    return f" ({', '.join(parts)})" if parts else ""


def _model_change(before: Any, after: Any) -> str:
    """How one model file changed, in words; "" when it did not (or cannot be told)."""
    old_size = before.get("size") if isinstance(before, dict) else before
    new_size = after.get("size") if isinstance(after, dict) else after
    if old_size is not None and new_size is not None and old_size != new_size:
        return f"changed size {old_size} -> {new_size}"
    old_hash = before.get("sha256") if isinstance(before, dict) else None
    new_hash = after.get("sha256") if isinstance(after, dict) else None
    if old_hash and new_hash and old_hash != new_hash:
        return f"other content, same name and size (sha256 {old_hash[:8]} -> {new_hash[:8]})"
    return ""
