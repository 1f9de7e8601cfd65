"""A reusable managed server (``--comfy-reuse``): started by one run, reused by the next.

Its folder is ``<home>/servers/reuse-<key>/``, where the key is a digest of everything that
makes two servers alike: the runtime (its folder and ``runtime.json``), the extra main.py
arguments, the model folders and comfytest's launcher. ``server.json`` there says where it
listens, so ``comfytest runtime stop`` and ``status`` find it like a detached server.

A run holds a lease on it (``leases/<pid>``) while it uses it and touches ``last_used`` when
it lets go. The server's launcher (scripts/launch.py ``--idle``) exits by itself once no
live process holds a lease and ``last_used`` is older than the idle timeout (``idle_s``, as
the last run set it). Finding, starting and the idle exit each hold ``reuse-<key>.lock``, so
a run never takes a server that is about to exit, and two runs never start two servers.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import os
import shutil
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from comfytest._process import pid_alive, require_process_control
from comfytest.atomic import atomic_write
from comfytest.errors import RuntimeSetupError
from comfytest.runtime.install import SCRIPTS, Runtime, default_home, locked
from comfytest.runtime.server import (
    READY_TIMEOUT,
    free_port,
    log_tail,
    server_arguments,
    wait_ready,
)

__all__ = ["DEFAULT_IDLE", "ReusedServer", "acquire", "reuse_key"]


class ObjectInfoSource(Protocol):
    def object_info(self) -> dict[str, Any]: ...


#: Seconds a reusable server waits, unused, before it exits.
DEFAULT_IDLE = 900.0


def reuse_key(
    runtime: Runtime, server_args: Sequence[str], model_dirs: Mapping[str, Sequence[str]]
) -> str:
    """What makes two runs' servers interchangeable, as a short digest."""
    launcher = (SCRIPTS / "launch.py").read_bytes()
    body = {
        "runtime": str(runtime.root),
        "info": runtime.info,
        "args": list(server_args),
        "model_dirs": {k: [str(p) for p in v] for k, v in sorted(model_dirs.items())},
        "launcher": hashlib.sha256(launcher).hexdigest(),
    }
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:16]


@dataclass
class ReusedServer:
    """A reusable server as one run holds it: ``release()`` lets go, it keeps running."""

    url: str
    pid: int
    run_dir: Path
    #: Found running (started by an earlier run), rather than started by this one.
    reused: bool
    #: When it was started (epoch seconds) and how long it took to answer (this run's start).
    started_at: float
    ready_s: float
    idle_s: float
    #: Started by this process: a child, reaped here when it exits.
    child: bool = False
    returncode: int | None = None

    @property
    def log_path(self) -> Path:
        return self.run_dir / "comfyui.log"

    def alive(self) -> bool:
        if self.returncode is not None:
            return False
        if self.child:
            with contextlib.suppress(ChildProcessError):
                pid, status = os.waitpid(self.pid, os.WNOHANG)
                if pid:
                    self.returncode = os.waitstatus_to_exitcode(status)
                    return False
        return pid_alive(self.pid)

    def log_tail(self, lines: int = 30) -> str:
        return log_tail(self.log_path, lines)

    def describe(self) -> str:
        """How this server came to serve the run, for the summary's server line."""
        if self.reused:
            age = max(0.0, time.time() - self.started_at)
            since = f"{age / 60:.0f} min" if age >= 120 else f"{age:.0f} s"
            return (
                f"managed, reused: started {since} ago by an earlier run, models kept loaded; "
                f"exits {self.idle_s:g} s after the last run"
            )
        return (
            f"managed, reusable, ready in {self.ready_s:.1f} s; it stays up {self.idle_s:g} s "
            "after the last run ('comfytest runtime stop' ends it)"
        )

    def object_info(self, client: ObjectInfoSource) -> dict[str, Any]:
        """This server's /object_info, fetched by the first run that asks and kept in its
        folder for the next ones (the same process serves the same node definitions)."""
        saved = self.run_dir / "object_info.json"
        with contextlib.suppress(OSError, ValueError):
            data = json.loads(saved.read_text())
            if isinstance(data, dict):
                return data
        info = client.object_info()
        with contextlib.suppress(OSError):
            atomic_write(saved, json.dumps(info).encode())
        return info

    def release(self) -> None:
        """Let go: the idle timeout starts now (the server is not stopped)."""
        with contextlib.suppress(OSError):
            (self.run_dir / "last_used").touch()
        (self.run_dir / "leases" / str(os.getpid())).unlink(missing_ok=True)


def acquire(
    runtime: Runtime,
    home: Path | None,
    *,
    server_args: Sequence[str] = (),
    model_dirs: Mapping[str, Sequence[str]] | None = None,
    idle_s: float = DEFAULT_IDLE,
) -> ReusedServer:
    """The reusable server of this runtime and these arguments: found running and leased,
    or started now (and leased)."""
    require_process_control("reusing a managed ComfyUI")
    dirs = model_dirs or {}
    key = reuse_key(runtime, server_args, dirs)
    servers = (home or default_home()) / "servers"
    servers.mkdir(parents=True, exist_ok=True)
    run_dir = servers / f"reuse-{key}"
    with locked(servers / f"reuse-{key}.lock"):
        found = _running(run_dir)
        if found is not None:
            _lease(run_dir, idle_s)
            found.idle_s = idle_s
            return found
        shutil.rmtree(run_dir, ignore_errors=True)  # what a dead one left
        server = _start(runtime, run_dir, server_args, dirs, idle_s)
        _lease(run_dir, idle_s)
        return server


def _lease(run_dir: Path, idle_s: float) -> None:
    (run_dir / "leases").mkdir(parents=True, exist_ok=True)
    (run_dir / "leases" / str(os.getpid())).touch()
    atomic_write(run_dir / "idle_s", f"{idle_s:g}".encode())
    (run_dir / "last_used").touch()


def _running(run_dir: Path) -> ReusedServer | None:
    """The server recorded in ``run_dir``, when its process lives and it answers."""
    try:
        state = json.loads((run_dir / "server.json").read_text())
        url, pid = str(state["url"]), int(state["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not pid_alive(pid):
        return None
    if not _answers(url):
        return None
    return ReusedServer(url, pid, run_dir, True, float(state.get("started_at", 0)), 0.0, 0.0)


def _answers(url: str) -> bool:
    """GET /system_stats answers 200 (plain http.client: no TLS context to build, as an
    httpx client would, on the path of every warm run)."""
    host, _, port = url.removeprefix("http://").partition(":")
    connection = http.client.HTTPConnection(host, int(port or 80), timeout=5.0)
    try:
        connection.request("GET", "/system_stats")
        return connection.getresponse().status == 200
    except (OSError, http.client.HTTPException):
        return False
    finally:
        connection.close()


def _start(
    runtime: Runtime,
    run_dir: Path,
    server_args: Sequence[str],
    model_dirs: Mapping[str, Sequence[str]],
    idle_s: float,
) -> ReusedServer:
    """Start a server that outlives this process and exits after ``idle_s`` unused."""
    run_dir.mkdir(parents=True)
    atomic_write(run_dir / "idle_s", f"{idle_s:g}".encode())
    log_path = run_dir / "comfyui.log"
    started = time.monotonic()
    port = free_port()
    args = [*server_arguments(runtime, run_dir, port, model_dirs), *server_args]
    command = [str(runtime.python), str(SCRIPTS / "launch.py"), "--idle", str(run_dir)]
    command += [str(runtime.comfyui_dir), "--", *args]
    # posix_spawn, not Popen: nothing in this process owns it, so none warns that it still
    # runs when this process ends; its own session, so a Ctrl-C of the run does not reach it.
    log = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        pid = os.posix_spawn(
            command[0],
            command,
            dict(os.environ),
            file_actions=[
                (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                (os.POSIX_SPAWN_DUP2, log, 1),
                (os.POSIX_SPAWN_DUP2, log, 2),
            ],
            setsid=True,
        )
    finally:
        os.close(log)
    url = f"http://127.0.0.1:{port}"
    server = ReusedServer(url, pid, run_dir, False, time.time(), 0.0, idle_s, child=True)
    _wait_ready(server)
    server.ready_s = time.monotonic() - started
    state = {
        "url": url,
        "pid": str(pid),
        "run_dir": str(run_dir),
        "runtime": runtime.name,
        "idle_s": f"{idle_s:g}",
        "started_at": f"{server.started_at:.3f}",
    }
    atomic_write(run_dir / "server.json", json.dumps(state, indent=2).encode())
    return server


def _wait_ready(server: ReusedServer) -> None:
    """As a managed server waits; one that does not answer in time is ended (it is detached:
    nothing else would)."""
    try:
        wait_ready(server, READY_TIMEOUT)
    except RuntimeSetupError:
        if server.alive():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(server.pid, 9)
        raise
