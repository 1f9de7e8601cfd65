"""xdist glue: objects registered only when pytest-xdist is loaded."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

from comfytest.comfy.pool import start_servers
from comfytest.errors import RuntimeSetupError
from comfytest.plugin.nodes import (
    RUNNER_KEY,
    SETTINGS_KEY,
)
from comfytest.runtime import find_runtime

__all__ = ["SharedServers"]


class SharedServers:
    """On the xdist controller, with ``--comfy-launch --comfy-servers=M``: starts M managed
    servers (in parallel) before the first worker starts, gives every worker their URLs
    (``workerinput["comfytest_servers"]``) and leaves them to the Runner, which stops them at
    unconfigure. Registered only when xdist is loaded."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.urls: list[str] | None = None

    def pytest_configure_node(self, node: Any) -> None:
        if self.urls is None:
            self.urls = self._start()
        node.workerinput["comfytest_servers"] = list(self.urls)

    def _start(self) -> list[str]:
        settings = self.config.stash[SETTINGS_KEY]
        runner = self.config.stash[RUNNER_KEY]
        root = self.config.rootpath / ".comfytest" / "servers"
        root.mkdir(parents=True, exist_ok=True)
        folders = [
            Path(tempfile.mkdtemp(prefix="server-", dir=root)) for _ in range(settings.server_count)
        ]
        started = time.monotonic()
        try:
            runtime = find_runtime(settings.home, settings.runtime)
            servers = start_servers(
                runtime,
                folders,
                extra_args=settings.server_args,
                model_dirs=dict(settings.model_dirs),
            )
        except RuntimeSetupError as exc:
            raise pytest.UsageError(f"--comfy-servers: {exc}") from None
        runner.servers.adopt(servers, time.monotonic() - started)
        return [server.url for server in servers]
