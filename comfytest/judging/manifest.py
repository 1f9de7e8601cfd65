"""The manifest beside a case's baselines: what a reviewer needs to judge a changed baseline
(the case, its inputs, the environment), and per output its size, frames, pHash and
digests. A differing output takes its baseline's pHash from here (``stored_phashes``)."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import imagehash
import numpy as np

from comfytest.atomic import atomic_write
from comfytest.judging.images import Frames, Unreadable

__all__ = [
    "MANIFEST",
    "PENDING_MANIFEST",
    "add_identities",
    "case_owner",
    "read_manifest",
    "recorded_identities",
    "stored_phashes",
    "write_manifest",
]


MANIFEST = "manifest.json"
#: Beside kept evidence: the manifest the case's baselines would get if accepted.
PENDING_MANIFEST = "manifest.pending.json"


def case_owner(case_file: Path, project: Path) -> str:
    """A case file as manifests name their owner: relative to the project (a store's
    ``project``), as in a clone of it; else its absolute path."""
    return (
        case_file.relative_to(project).as_posix()
        if case_file.is_relative_to(project)
        else str(case_file)
    )


def read_manifest(root: Path, folder: str) -> dict[str, Any] | None:
    """The manifest beside a case's baselines, or None (absent or unreadable)."""
    try:
        data = json.loads((root / folder / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def write_manifest(
    root: Path, folder: str, data: dict[str, Any], keys: Iterable[str] | None = None
) -> None:
    """Describe a case's baselines next to them, atomically: the outputs ``keys`` (the
    case's own; by default every PNG and text file in the folder), plus the entries of
    the manifest before for outputs whose files are still there, as they were recorded.
    ``data["graphs"]`` (``{key: identity}``, see ``comfytest.workflow.identity``) gives each
    output the identity of the node that made it, kept as its entry's ``graph``.

    Only what comfytest wrote is ever named: a file a user put beside the baselines is
    not, so pruning never deletes it."""
    folder_path = root / folder
    wanted = None if keys is None else set(keys)
    data = dict(data)
    graphs = data.pop("graphs", None) or {}
    before = (read_manifest(root, folder) or {}).get("outputs")
    outputs: dict[str, Any] = {
        key: entry
        for key, entry in (before if isinstance(before, dict) else {}).items()
        if isinstance(entry, dict)
        and (folder_path / (f"{key}.txt" if "text" in entry else f"{key}.png")).is_file()
    }
    for png in sorted(folder_path.glob("*.png")):
        if wanted is not None and png.stem not in wanted:
            continue
        pixels, hashes, first = hashlib.sha256(), [], None
        try:
            for frame in Frames(png, side="baseline"):  # one frame at a time
                first = first or (list(frame.size), frame.mode)
                pixels.update(np.asarray(frame).tobytes())
                hashes.append(str(imagehash.phash(frame)))
        except Unreadable:
            continue
        if first is None:
            continue
        outputs[png.stem] = {
            "size": first[0],
            "mode": first[1],
            "frames": len(hashes),
            "phash": hashes if len(hashes) > 1 else hashes[0],
            "pixels_sha256": pixels.hexdigest()[:16],
            "png_sha256": _file_digest(png),
        }
    for txt in sorted(folder_path.glob("*.txt")):
        if wanted is not None and txt.stem not in wanted:
            continue
        text = txt.read_text(encoding="utf-8", errors="replace")
        outputs[txt.stem] = {
            "text": text if len(text) <= 200 else text[:200] + "...",
            "sha256": _file_digest(txt),
        }
    earlier = before if isinstance(before, dict) else {}
    for key, entry in outputs.items():
        kept = earlier.get(key, {}).get("graph") if isinstance(earlier.get(key), dict) else None
        if graphs.get(key) or kept:
            entry["graph"] = graphs.get(key) or kept
    _write(folder_path, {**data, "outputs": dict(sorted(outputs.items()))})


def add_identities(root: Path, folder: str, graphs: dict[str, Any]) -> bool:
    """Record the node identity of outputs whose manifest entry has none (a manifest from
    before comfytest recorded them); nothing else in it changes. True if it was written."""
    manifest = read_manifest(root, folder)
    outputs = manifest.get("outputs") if manifest else None
    if manifest is None or not isinstance(outputs, dict):
        return False
    missing = {
        key: graph
        for key, graph in graphs.items()
        if isinstance(outputs.get(key), dict) and "graph" not in outputs[key]
    }
    for key, graph in missing.items():
        outputs[key]["graph"] = graph
    if missing:
        _write(root / folder, manifest)
    return bool(missing)


def recorded_identities(root: Path, folder: str) -> dict[str, dict[str, str] | None]:
    """Each baseline file in a case's folder, by key, with its node's recorded identity
    (None where the manifest records none)."""
    outputs = (read_manifest(root, folder) or {}).get("outputs")
    outputs = outputs if isinstance(outputs, dict) else {}
    found: dict[str, dict[str, str] | None] = {}
    for path in sorted((root / folder).glob("*")):
        if path.suffix not in (".png", ".txt") or not _OUTPUT_KEY.fullmatch(path.stem):
            continue
        entry = outputs.get(path.stem)
        graph = entry.get("graph") if isinstance(entry, dict) else None
        found[path.stem] = graph if isinstance(graph, dict) else None
    return found


#: A baseline's file name: ``<node id>-<index>`` or ``<node id>-t<index>`` (text).
_OUTPUT_KEY = re.compile(r".+-t?\d+")


def _write(folder: Path, manifest: dict[str, Any]) -> None:
    body = json.dumps(manifest, indent=2, sort_keys=True) + "\n"
    atomic_write(folder / MANIFEST, body.encode())


def stored_phashes(root: Path, folder: str, key: str) -> Callable[[int], str | None]:
    """The pHash of each frame of baseline ``key`` as its manifest records it, by frame.

    Read on first use (only outputs whose pixels differ need it). Every frame's is None
    unless the manifest describes these very PNG bytes: a baseline replaced by hand, or a
    manifest from before ``png_sha256``, is hashed afresh."""
    found: list[str | None] | None = None

    def lookup(frame: int) -> str | None:
        nonlocal found
        if found is None:
            found = _recorded_phashes(root, folder, key)
        return found[frame] if frame < len(found) else None

    return lookup


def _recorded_phashes(root: Path, folder: str, key: str) -> list[str | None]:
    entry = ((read_manifest(root, folder) or {}).get("outputs") or {}).get(key)
    if not isinstance(entry, dict) or not isinstance(entry.get("png_sha256"), str):
        return []
    try:
        if _file_digest(root / folder / f"{key}.png") != entry["png_sha256"]:
            return []
    except OSError:
        return []
    phash = entry.get("phash")
    return [
        value if isinstance(value, str) and re.fullmatch("[0-9a-f]{16}", value) else None
        for value in (phash if isinstance(phash, list) else [phash])
    ]


def _file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]
