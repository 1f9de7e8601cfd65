"""Connecting to one server of the pool: its client, made with the run's options.

Only a managed server is told to unload its models (``POST /free``) at connection: on a
server given by URL, other people's models stay loaded, and the first case is timed as
what it is (cold when its loaders ran, warm when they came from the cache).

Plain library: no pytest here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from comfytest.comfy.api import Api
from comfytest.comfy.auth import auth_hint, cloud_key
from comfytest.comfy.client import ComfyClient, header_from_env
from comfytest.comfy.http import RETRY_BUDGET
from comfytest.errors import ServerError

__all__ = ["ClientOptions"]


@dataclass(frozen=True)
class ClientOptions:
    """How every client of a run is made. The environment variables are named here and
    read when a client is made; their values are kept nowhere else."""

    auth_env: str | None = None
    ca_bundle: Path | None = None
    cloud_key_env: str | None = None
    retry_budget: float = RETRY_BUDGET
    max_queued: int | None = None
    run_id: str | None = None

    def connect(self, url: str, *, managed: bool, free: bool = True) -> tuple[ComfyClient, str]:
        """A client of the server at ``url``, checked to answer, and its ComfyUI version.

        A ``managed`` server (ours alone) is freed, so nothing cached before this run
        counts, unless ``free`` is false (a reused server keeps its models loaded: that is
        what it is for); it is never Comfy Cloud and gets no queue cap. A server that asks
        for credentials (HTTP 401, 403) is told apart from an unreachable one."""
        header = header_from_env(self.auth_env) if self.auth_env else None
        cloud = None if managed or not self.cloud_key_env else self.cloud_key_env
        client = ComfyClient(
            url,
            header=header,
            ca_bundle=self.ca_bundle,
            api=Api(cloud_key(cloud)) if cloud else None,
            retry_budget=self.retry_budget,
            max_queued=None if managed else self.max_queued,
            run_id=self.run_id,
        )
        try:
            version = client.system_stats().get("system", {}).get("comfyui_version", "?")
            if managed and free:
                client.free()
        except ServerError as exc:
            client.close()
            if exc.status in (401, 403):
                raise ServerError(
                    f"ComfyUI at {url} refused this run: {exc}; {auth_hint(self.auth_env)}"
                ) from None
            raise ServerError(f"ComfyUI is not reachable at {url}: {exc}") from None
        return client, str(version)
