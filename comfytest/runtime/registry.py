"""Managed servers started in the background (``comfytest runtime start``): each one's state
is a ``server.json`` in its own folder under ``<home>/servers``, so ``stop`` and ``status``
find them from any later process."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

from comfytest.atomic import atomic_write
from comfytest.runtime.install import Runtime, default_home
from comfytest.runtime.server import kill_pid, start_server

__all__ = ["running", "start_detached", "stop_detached"]


def servers_dir(home: Path | None) -> Path:
    return (home or default_home()) / "servers"


def start_detached(runtime: Runtime, home: Path | None, server_args: list[str]) -> dict[str, str]:
    """Start a server of ``runtime`` that outlives this process; its recorded state."""
    servers = servers_dir(home)
    servers.mkdir(parents=True, exist_ok=True)
    run_dir = Path(tempfile.mkdtemp(prefix=f"{runtime.name}-", dir=servers))
    server = start_server(runtime, run_dir, extra_args=server_args, detached=True)
    state = {
        "url": server.url,
        "pid": str(server.pid),
        "run_dir": str(run_dir),
        "runtime": runtime.name,
    }
    atomic_write(run_dir / "server.json", json.dumps(state, indent=2).encode())
    return state


def running(home: Path | None) -> list[dict[str, str]]:
    """The recorded state of every detached server (some may have died since)."""
    states = []
    for state_file in sorted(servers_dir(home).glob("*/server.json")):
        try:
            states.append(json.loads(state_file.read_text()))
        except (OSError, ValueError):
            continue
    return states


def stop_detached(home: Path | None, url: str | None = None) -> list[dict[str, str]]:
    """Stop the detached servers (only the one at ``url``, when given) and remove their
    folders; the states of those that were still running."""
    stopped = []
    for state in running(home):
        if url and state["url"].rstrip("/") != url.rstrip("/"):
            continue
        if kill_pid(int(state["pid"])):
            stopped.append(state)
        shutil.rmtree(state["run_dir"], ignore_errors=True)
    return stopped
