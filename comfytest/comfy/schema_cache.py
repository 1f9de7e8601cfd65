"""The node definitions (``/object_info``) of the last run of each server, kept on disk so
that collection, which never talks to a server, can check UI-format workflows.

A run saves each server's ``/object_info`` once it has fetched it, under
``<project>/.comfytest/object_info/``: a server given by URL under its URL, the managed
runtime under its name (its URL changes from run to run). Collection reads the file of the
server a case will most likely run on; an error found with it says how old it is, since the
server may have changed since (a new node pack, an upgrade), and the run checks again with
the live definitions.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from comfytest.atomic import atomic_write

__all__ = [
    "CACHE_FOLDER",
    "NodeSchemas",
    "cache_path",
    "read_schemas",
    "server_key",
    "write_schemas",
]

#: Where the files live, under the project root.
CACHE_FOLDER = Path(".comfytest") / "object_info"


def server_key(url: str | None, runtime: str | None = None) -> str:
    """The file name for a server: its URL, or the managed runtime's name (None: default)."""
    if not url:
        return f"runtime-{re.sub(r'[^A-Za-z0-9_.-]+', '_', runtime or 'default')}.json"
    digest = hashlib.sha256(url.rstrip("/").encode()).hexdigest()[:12]
    readable = re.sub(r"[^A-Za-z0-9_.-]+", "_", url.split("://", 1)[-1]).strip("_")[:60]
    return f"url-{readable}-{digest}.json"


def cache_path(root: Path, key: str) -> Path:
    return root / CACHE_FOLDER / key


@dataclass(frozen=True)
class NodeSchemas:
    """A cached ``/object_info``: the definitions, whose server they came from, and when."""

    object_info: dict[str, Any]
    server: str
    saved_at: float
    path: Path

    def describe(self, now: float | None = None) -> str:
        """Where the definitions come from, for an error message."""
        return (
            f"checked at collection against the /object_info of {self.server} saved "
            f"{_age((now or time.time()) - self.saved_at)} ago in {self.path}; if that server "
            "has changed since, delete that file"
        )


def _age(seconds: float) -> str:
    seconds = max(0.0, seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f} {unit}"
    return f"{seconds:.0f} s"


def write_schemas(root: Path, key: str, server: str, object_info: dict[str, Any]) -> None:
    """Save ``object_info`` for the server ``key`` names; ``server`` says it in words."""
    path = cache_path(root, key)
    path.parent.mkdir(parents=True, exist_ok=True)
    body = {"server": server, "saved_at": time.time(), "object_info": object_info}
    atomic_write(path, json.dumps(body, separators=(",", ":")).encode())


def read_schemas(root: Path, key: str) -> NodeSchemas | None:
    """The cached definitions for ``key``, or None when there are none (or they are
    unreadable: the cache is only a help, never a reason to fail)."""
    path = cache_path(root, key)
    try:
        body = json.loads(path.read_bytes())
        return NodeSchemas(
            dict(body["object_info"]), str(body["server"]), float(body["saved_at"]), path
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None
