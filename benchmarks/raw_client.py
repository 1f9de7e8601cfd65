"""A minimal raw ComfyUI client: the floor that comfytest's overhead is measured against.

One persistent WebSocket and one persistent HTTP connection; per prompt: POST /prompt,
wait for ``executing`` with ``node: null``, GET /history/<id>, GET /view for each image,
decode it with PIL. Nothing else: no judging, no files, no error handling beyond raising.
"""

from __future__ import annotations

import io
import json
import time
import uuid
from dataclasses import dataclass
from typing import Any

import httpx
from PIL import Image
from websockets.sync.client import connect

__all__ = ["RawClient", "RawRun", "execution_seconds", "execution_span"]


@dataclass(frozen=True)
class RawRun:
    prompt_id: str
    wall_s: float
    #: Server time from ``execution_start`` to the terminal message (status.messages).
    execution_s: float
    images: int

    @property
    def overhead_ms(self) -> float:
        return (self.wall_s - self.execution_s) * 1000


class RawClient:
    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")
        self.client_id = uuid.uuid4().hex
        self.http = httpx.Client(base_url=self.url, timeout=60)
        ws_url = self.url.replace("http://", "ws://", 1)
        self.ws = connect(f"{ws_url}/ws?clientId={self.client_id}", max_size=None)

    def close(self) -> None:
        self.ws.close()
        self.http.close()

    def run(self, prompt: dict[str, Any]) -> RawRun:
        started = time.perf_counter()
        answer = self.http.post(
            "/prompt", json={"prompt": prompt, "client_id": self.client_id}
        ).json()
        prompt_id = answer["prompt_id"]
        while True:
            frame = self.ws.recv()
            if isinstance(frame, bytes):
                continue  # a preview image
            message = json.loads(frame)
            data = message.get("data", {})
            if (
                message["type"] == "executing"
                and data.get("node") is None
                and data.get("prompt_id") == prompt_id
            ):
                break
        entry = self.http.get(f"/history/{prompt_id}").json()[prompt_id]
        images = 0
        for output in entry["outputs"].values():
            for image in output.get("images", []):
                params = {k: image[k] for k in ("filename", "subfolder", "type")}
                body = self.http.get("/view", params=params).content
                Image.open(io.BytesIO(body)).load()
                images += 1
        wall = time.perf_counter() - started
        return RawRun(prompt_id, wall, execution_seconds(entry), images)


def execution_span(entry: dict[str, Any]) -> tuple[float, float]:
    """When the server started a prompt and sent its terminal message (Unix times, s), from
    a /history entry's ``status.messages``."""
    stamps = {kind: data.get("timestamp") for kind, data in entry["status"]["messages"]}
    end = stamps.get("execution_success") or stamps.get("execution_error")
    return stamps["execution_start"] / 1000, end / 1000


def execution_seconds(entry: dict[str, Any]) -> float:
    """``execution_start`` to the terminal message, from a /history entry's timestamps."""
    start, end = execution_span(entry)
    return end - start
