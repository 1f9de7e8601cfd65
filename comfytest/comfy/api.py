"""Which dialect of ComfyUI's API a server speaks: a plain ComfyUI, or Comfy Cloud.

Comfy Cloud follows its published OpenAPI spec, ``openapi-cloud.yaml`` in the
Comfy-Org/docs repository (``CLOUD_SPEC``): ComfyUI's routes under ``/api``, the key in an
``X-API-Key`` header (``securitySchemes.ApiKeyAuth``), the WebSocket at
``/ws?clientId=…&token=<key>``, ``GET /api/view`` answering 302 to a signed URL on another
host, ``GET /api/job/{id}/status`` to poll a job and ``GET /api/jobs/{id}`` for its outputs
(``/api/history_v2/{id}`` is deprecated there), model lists under
``/api/experiment/models/{folder}``, no ``/free``, and ``POST /api/interrupt`` interrupting
every running job of the account. Everything else is read as a plain ComfyUI's answer.

Plain library: no pytest here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

__all__ = ["CLOUD_HOSTS", "CLOUD_SPEC", "JOB_DONE", "Api", "history_entry", "is_cloud_url"]

#: The spec this dialect was written from: its info.version and the docs commit read.
CLOUD_SPEC = "openapi-cloud.yaml info.version 1.0.0 (Comfy-Org/docs @ ffb27fc, 2026-08)"
#: Hosts that are Comfy Cloud: a --comfy-url there needs the Cloud API key.
CLOUD_HOSTS = ("cloud.comfy.org",)
#: ``JobStatusResponse.status`` values after which a job changes no more.
JOB_DONE = ("completed", "error", "failed", "cancelled")


@dataclass(frozen=True)
class Api:
    """The routes and credentials of one server. ``key`` is Comfy Cloud's API key (never
    in a repr); without it, the server is a plain ComfyUI."""

    key: str | None = field(default=None, repr=False)

    @property
    def cloud(self) -> bool:
        return self.key is not None

    def route(self, path: str) -> str:
        """``/prompt`` -> ``/api/prompt`` on Cloud; plain ComfyUI keeps its bare routes
        (older servers have no ``/api`` mirror). A route given with ``/api`` stays."""
        if path.startswith("/api/") or not self.cloud:
            return path
        return f"/api{path}"

    @property
    def headers(self) -> dict[str, str]:
        return {"X-API-Key": self.key} if self.key else {}

    def socket_query(self, client_id: str) -> str:
        """The WebSocket's query string: Cloud takes the key as ``token`` (a browser cannot
        set headers on a WebSocket)."""
        return f"clientId={client_id}" + (f"&token={self.key}" if self.key else "")

    def entry_route(self, prompt_id: str) -> str:
        return f"/api/jobs/{prompt_id}" if self.cloud else f"/history/{prompt_id}"

    def models_route(self, folder: str) -> str:
        return f"/api/experiment/models/{folder}" if self.cloud else f"/models/{folder}"

    def redact(self, text: str) -> str:
        """``text`` with the key blanked out: for anything that may be printed."""
        return text.replace(self.key, "***") if self.key else text


def history_entry(api: Api, prompt_id: str, answer: dict[str, Any]) -> dict[str, Any] | None:
    """The prompt's entry as plain ComfyUI's ``/history/{id}`` gives it (``outputs``,
    ``status`` with its ``messages``), or None while it has none (queued or running).

    Cloud's ``JobDetailResponse`` carries ``outputs`` and ``execution_status`` only once the
    job is in a terminal state; an ``execution_error`` without status messages becomes one."""
    if not api.cloud:
        entry = answer.get(prompt_id)
        return entry if isinstance(entry, dict) and entry else None
    if answer.get("status") not in JOB_DONE:
        return None
    status = dict(answer.get("execution_status") or {})
    messages = list(status.get("messages") or [])
    error = answer.get("execution_error")
    if isinstance(error, dict) and not any(kind == "execution_error" for kind, _ in messages):
        messages.append(["execution_error", {"prompt_id": prompt_id, **error}])
    if answer.get("status") == "cancelled" and not any(
        kind in ("execution_error", "execution_interrupted") for kind, _ in messages
    ):
        messages.append(["execution_interrupted", {"prompt_id": prompt_id}])
    status["messages"] = messages
    return {"outputs": answer.get("outputs") or {}, "status": status}


def is_cloud_url(url: str) -> bool:
    return (urlsplit(url).hostname or "") in CLOUD_HOSTS
