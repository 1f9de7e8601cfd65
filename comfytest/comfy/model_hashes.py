"""sha256 of model files, cached by path, size and mtime so a suite does not rehash every run.

The cache is one JSON file (``<home>/hashes.json`` for a managed runtime)::

    {"/abs/path/model.safetensors": {"size": 279526298, "mtime_ns": 17..., "sha256": "ab12..."}}

A file replaced under the same name and size has another mtime, so it is hashed again.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from pathlib import Path
from typing import Any

from comfytest.atomic import atomic_write

__all__ = ["ModelHashes"]

CHUNK = 1 << 20


class ModelHashes:
    """A sha256 cache kept in ``path``; ``save()`` writes it back when it grew."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._entries: dict[str, Any] = {}
        self._changed = False
        with contextlib.suppress(OSError, ValueError):
            loaded = json.loads(path.read_text())
            if isinstance(loaded, dict):
                self._entries = loaded
        #: Files hashed (not taken from the cache) by this object.
        self.hashed: list[Path] = []

    def sha256(self, file: Path) -> str | None:
        """The file's sha256 (hex), from the cache when its size and mtime are unchanged;
        None when it cannot be read."""
        try:
            stat = file.stat()
        except OSError:
            return None
        key = str(file.absolute())
        entry = self._entries.get(key)
        if (
            isinstance(entry, dict)
            and entry.get("size") == stat.st_size
            and entry.get("mtime_ns") == stat.st_mtime_ns
        ):
            return str(entry["sha256"])
        digest = hashlib.sha256()
        try:
            with file.open("rb") as handle:
                while chunk := handle.read(CHUNK):
                    digest.update(chunk)
        except OSError:
            return None
        found = digest.hexdigest()
        self._entries[key] = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": found}
        self._changed = True
        self.hashed.append(file)
        return found

    def save(self) -> None:
        if self._changed:
            with contextlib.suppress(OSError):
                body = json.dumps(self._entries, indent=1, sort_keys=True) + "\n"
                atomic_write(self.path, body.encode())
            self._changed = False
