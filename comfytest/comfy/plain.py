"""The plain HTTP calls of a ComfyUI server: what a client asks besides running prompts.

``ComfyClient`` builds on ``PlainCalls``; every route goes through ``Http`` (routed for the
server's API, comfytest.comfy.api).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from comfytest.comfy.history import OutputFile
from comfytest.comfy.http import Http

__all__ = ["IN_MEMORY_LIMIT", "PlainCalls"]

#: Outputs up to this size are judged from memory; bigger ones are streamed to a file.
IN_MEMORY_LIMIT = 16 << 20


class PlainCalls:
    """Node definitions, models, uploads and downloads of the server ``http`` talks to."""

    def __init__(self, http: Http) -> None:
        self._http = http
        self.api = http.api
        self._uploaded: dict[str, str] = {}

    def system_stats(self) -> dict[str, Any]:
        return self._http.get_json("/system_stats")

    def reachable(self) -> bool:
        """True when the server answers anything at all, within ``PROBE_TIMEOUT``."""
        return self._http.reachable()

    def object_info(self) -> dict[str, Any]:
        return self._http.get_json("/object_info")

    def history(self) -> dict[str, Any]:
        return self._http.get_json("/history")

    def models(self, folder: str) -> list[str] | None:
        """Files in a model folder (None when the server has no such folder)."""
        response = self._http.call("GET", self.api.models_route(folder), ok=(200, 404))
        if response.status_code == 404:
            return None
        names = response.json()
        if not isinstance(names, list):
            return None
        # Comfy Cloud lists ModelFile objects ({"name", "pathIndex"}), ComfyUI plain names.
        return [str(n.get("name") if isinstance(n, dict) else n) for n in names]

    def free(self) -> None:
        """Unload models and drop ComfyUI's node cache (applied before the next prompt)."""
        self._http.call("POST", "/free", json={"unload_models": True, "free_memory": True})

    def upload_image(self, path: Path, subfolder: str = "comfytest") -> str:
        """Upload a local file once per run; returns the name LoadImage takes."""
        data = path.read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        if digest in self._uploaded:
            return self._uploaded[digest]
        name = f"{digest[:12]}-{path.name}"
        response = self._http.call(
            "POST",
            "/upload/image",
            files={"image": (name, data, "application/octet-stream")},
            # No overwrite: the name carries the content digest, and ComfyUI answers an
            # identical file with its existing name. Overwriting could truncate the file while
            # another worker's prompt reads it (xdist workers share a server).
            data={"subfolder": subfolder, "type": "input"},
        )
        body = response.json()
        stored = f"{body['subfolder']}/{body['name']}" if body.get("subfolder") else body["name"]
        self._uploaded[digest] = stored
        return str(stored)

    def download(self, output: OutputFile) -> bytes:
        params = {"filename": output.filename, "subfolder": output.subfolder, "type": output.type}
        return self._http.call("GET", "/view", params=params).content

    def download_to(
        self, output: OutputFile, path: Path, *, in_memory: int = IN_MEMORY_LIMIT
    ) -> bytes | Path:
        """An output file: its bytes when it is at most ``in_memory`` bytes, else streamed
        into ``path`` (returned), so a big animation is never held whole."""
        params = {"filename": output.filename, "subfolder": output.subfolder, "type": output.type}
        return self._http.download("/view", params, path, in_memory)
