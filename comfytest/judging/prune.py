"""Which baselines a run may delete, and deleting them: never anything comfytest did not write.

A baseline is *unused* only when all of this holds:

- a comfytest manifest (``manifest.json``) names it among its outputs, with the digest
  comfytest recorded when it wrote it, and the file on disk still has that digest;
- the manifest's owner (``"case": "<case file>::<case>"``) is a case file of this run whose
  every case ran to its end (``CaseFileRun.complete``), and the manifest lies under that
  file's own baselines folder;
- no case of this run judged that output, and the case folder is not one whose case ran no
  judgement at all (skipped, or failed before its outputs: those keep everything).

Whether the session as a whole ended normally is the plugin's to decide; it calls
``unused_baselines`` only then. Files no manifest names (a case's input image, a
screenshot, notes, a half-written ``.tmp``) are never candidates, whatever their extension.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from comfytest.atomic import atomic_write
from comfytest.judging.manifest import MANIFEST, read_manifest

__all__ = ["CaseFileRun", "Unused", "delete_unused", "unused_baselines"]


@dataclass(frozen=True)
class CaseFileRun:
    """A case file of this run as the plugin saw it."""

    #: The case file as manifests name their owner, e.g. ``cases/t.yaml``.
    owner: str
    #: Its baselines folder under the baselines root, e.g. ``t``.
    folder: str
    #: Every case the file defines was selected and finished (a teardown report each).
    complete: bool


@dataclass(frozen=True)
class Unused:
    """A file a manifest names that no case of the run judged, and why it is unused."""

    path: Path
    reason: str
    #: False when the file is not as comfytest wrote it (changed by hand): reported, kept.
    prunable: bool = True


def unused_baselines(
    root: Path,
    files: list[CaseFileRun],
    judged: set[tuple[str, str]],
    judged_folders: set[str],
    untouched_folders: set[str],
) -> list[Unused]:
    """The unused baselines under ``root`` owned by the complete case files of ``files``.

    ``judged`` holds (folder, key) of every output judged; ``judged_folders`` the case
    folders that judged outputs; ``untouched_folders`` those whose case ran no judgement."""
    owners = {f.owner: f.folder for f in files if f.complete}
    found: list[Unused] = []
    if not owners or not root.is_dir():
        return found
    for manifest_path in sorted(root.rglob(MANIFEST)):
        folder = manifest_path.parent.relative_to(root).as_posix()
        data = read_manifest(root, folder)
        case = data.get("case") if data else None
        if data is None or not isinstance(case, str) or folder in untouched_folders:
            continue
        owner = case.partition("::")[0]
        if owner not in owners or not folder.startswith(owners[owner] + "/"):
            continue
        outputs = data.get("outputs")
        for key, entry in sorted((outputs if isinstance(outputs, dict) else {}).items()):
            if (folder, key) in judged or not isinstance(entry, dict):
                continue
            path = root / folder / (f"{key}.txt" if "text" in entry else f"{key}.png")
            if not path.is_file():
                continue
            if folder in judged_folders:
                reason = f"{case} no longer has output {key}"
            else:
                reason = f"{case} is no longer a case of {owner}"
            if not _as_written(path, entry):
                reason += "; kept: the file is not as comfytest wrote it (changed by hand?)"
                found.append(Unused(path, reason, prunable=False))
            else:
                found.append(Unused(path, reason))
    return found


def delete_unused(root: Path, unused: list[Unused]) -> list[Unused]:
    """Delete the prunable ``unused`` files; drop them from their manifest, delete a manifest
    that then names nothing, and remove folders left empty. Returns every file deleted
    (manifests included), each with why."""
    deleted: list[Unused] = []
    by_folder: dict[Path, list[Unused]] = {}
    for item in unused:
        if item.prunable:
            by_folder.setdefault(item.path.parent, []).append(item)
    for folder, items in sorted(by_folder.items()):
        for item in items:
            item.path.unlink(missing_ok=True)
            deleted.append(item)
        manifest = folder / MANIFEST
        data = read_manifest(folder.parent, folder.name) or {}
        gone = {item.path.stem for item in items}
        left = {k: v for k, v in (data.get("outputs") or {}).items() if k not in gone}
        if any(_output_path(folder, k, v).is_file() for k, v in left.items()):
            body = json.dumps({**data, "outputs": left}, indent=2, sort_keys=True) + "\n"
            atomic_write(manifest, body.encode())
        else:
            manifest.unlink(missing_ok=True)
            deleted.append(Unused(manifest, f"{data.get('case')}: it described only those"))
        with contextlib.suppress(OSError):  # only empty folders, never anything in them
            while folder != root and folder.is_relative_to(root) and not any(folder.iterdir()):
                folder.rmdir()
                folder = folder.parent
    return deleted


def _output_path(folder: Path, key: str, entry: Any) -> Path:
    text = isinstance(entry, dict) and "text" in entry
    return folder / (f"{key}.txt" if text else f"{key}.png")


def _as_written(path: Path, entry: dict[str, Any]) -> bool:
    """The file still has the content its manifest recorded when comfytest wrote it."""
    try:
        data = path.read_bytes()
    except OSError:
        return False
    if "text" in entry:
        if isinstance(entry.get("sha256"), str):
            return bool(hashlib.sha256(data).hexdigest()[:16] == entry["sha256"])
        text = entry["text"]  # older manifests: the text itself, when it was not clipped
        clipped = not isinstance(text, str) or text.endswith("...")
        return not clipped and data.decode(errors="replace") == text
    recorded = entry.get("png_sha256")
    return isinstance(recorded, str) and hashlib.sha256(data).hexdigest()[:16] == recorded
