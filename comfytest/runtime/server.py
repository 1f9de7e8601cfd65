"""Run a ComfyUI runtime: start it on a free loopback port, wait until ready, stop it.

``start_server()`` keeps the server's input, output, temp and user folders inside a run
folder, waits until ``GET /system_stats`` answers, and ties the server's life to this
process through a pipe (see scripts/launch.py): no orphan servers.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Protocol

import httpx

from comfytest._process import pid_alive, require_process_control
from comfytest.errors import RuntimeSetupError
from comfytest.runtime.install import SCRIPTS, Log, Runtime, stderr_log

__all__ = [
    "ManagedServer",
    "Starting",
    "extra_paths",
    "free_port",
    "kill_pid",
    "log_tail",
    "pid_alive",
    "start_server",
    "wait_ready",
]

READY_TIMEOUT = 180.0
STOP_TIMEOUT = 15.0

# -- run ----------------------------------------------------------------------------------


@dataclass
class ManagedServer:
    """A ComfyUI process this harness started; ``stop()`` ends it and removes its run folder."""

    process: subprocess.Popen[bytes]
    url: str
    port: int
    run_dir: Path
    log_path: Path
    _log_handle: IO[bytes] | None = None

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    @property
    def returncode(self) -> int | None:
        return self.process.returncode

    def log_tail(self, lines: int = 30) -> str:
        return log_tail(self.log_path, lines)

    def stop(self, *, keep_files: bool = False) -> None:
        if self.process.stdin is not None:
            with contextlib.suppress(OSError):
                self.process.stdin.close()
        if self.alive():
            try:
                self.process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(STOP_TIMEOUT)
        if self._log_handle is not None:
            self._log_handle.close()
            self._log_handle = None
        if not keep_files:
            shutil.rmtree(self.run_dir, ignore_errors=True)


def extra_paths(
    runtime: Runtime, run_dir: Path, model_dirs: Mapping[str, Sequence[str]] | None = None
) -> Path | None:
    """The server's extra_model_paths YAML, written in ``run_dir``: the runtime's node packs
    and model folders, plus ``model_dirs`` (kind -> folders); None when there are none."""
    entries: dict[str, list[str]] = {}
    if runtime.info.get("custom_nodes"):
        entries["custom_nodes"] = [str(runtime.root / "custom_nodes")]
    for source in (runtime.info.get("model_dirs") or {}, model_dirs or {}):
        for kind, paths in source.items():
            entries.setdefault(kind, []).extend(str(Path(p).absolute()) for p in paths)
    if not entries:
        return None
    path = run_dir / "extra_model_paths.yaml"
    # JSON is YAML; ComfyUI splits each value on newlines into folders.
    body = {"comfytest": {kind: "\n".join(paths) for kind, paths in entries.items()}}
    path.write_text(json.dumps(body, indent=2) + "\n")
    return path


def server_arguments(
    runtime: Runtime,
    run_dir: Path,
    port: int,
    model_dirs: Mapping[str, Sequence[str]] | None = None,
) -> list[str]:
    """main.py arguments that keep every file of this server inside ``run_dir``."""
    for sub in ("input", "output", "user", "frontend"):
        (run_dir / sub).mkdir(parents=True, exist_ok=True)
    args = [
        "--listen",
        "127.0.0.1",
        "--port",
        str(port),
        "--output-directory",
        str(run_dir / "output"),
        "--input-directory",
        str(run_dir / "input"),
        "--temp-directory",
        str(run_dir),
    ]
    extra = extra_paths(runtime, run_dir, model_dirs)
    if extra is not None:
        args += ["--extra-model-paths-config", str(extra)]
    supported = _supported_flags(runtime.comfyui_dir)
    optional = {
        "--front-end-root": [str(run_dir / "frontend")],
        "--user-directory": [str(run_dir / "user")],
        "--disable-auto-launch": [],
        "--disable-api-nodes": [],
    }
    for flag, values in optional.items():
        if flag in supported:
            args += [flag, *values]
    if not runtime.info.get("cuda", False):
        args.append("--cpu")
    return args


def start_server(
    runtime: Runtime,
    run_dir: Path,
    *,
    extra_args: Sequence[str] = (),
    port: int | None = None,
    detached: bool = False,
    model_dirs: Mapping[str, Sequence[str]] | None = None,
    ready_timeout: float = READY_TIMEOUT,
    log: Log = stderr_log,
) -> ManagedServer:
    """Start ComfyUI and wait until it answers. Tied to this process unless ``detached``."""
    require_process_control("starting a managed ComfyUI")
    run_dir.mkdir(parents=True, exist_ok=True)
    last_error = ""
    for _attempt in range(1 if port else 3):
        chosen = port or free_port()  # a busy free port (a race) is retried with another
        log_path = run_dir / "comfyui.log"
        handle = log_path.open("ab")
        command = [
            str(runtime.python),
            str(SCRIPTS / "launch.py"),
            "--detached" if detached else "--watch-stdin",
            str(runtime.comfyui_dir),
            "--",
            *server_arguments(runtime, run_dir, chosen, model_dirs),
            *extra_args,
        ]
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL if detached else subprocess.PIPE,
            stdout=handle,
            stderr=subprocess.STDOUT,
            cwd=runtime.comfyui_dir,
            start_new_session=True,
        )
        url = f"http://127.0.0.1:{chosen}"
        server = ManagedServer(process, url, chosen, run_dir, log_path, handle)
        started = time.monotonic()
        try:
            wait_ready(server, ready_timeout)
        except RuntimeSetupError as exc:
            server.stop(keep_files=True)
            last_error = str(exc)
            if "address already in use" in server.log_tail(60).lower():
                continue
            raise
        log(
            f"ComfyUI ready at {server.url} in {time.monotonic() - started:.1f} s "
            f"(pid {process.pid})"
        )
        return server
    raise RuntimeSetupError(last_error)


class Starting(Protocol):
    """A ComfyUI process waited on until it answers (a managed or a reusable server)."""

    url: str

    @property
    def log_path(self) -> Path: ...

    @property
    def returncode(self) -> int | None: ...

    def alive(self) -> bool: ...

    def log_tail(self, lines: int = 30) -> str: ...


def wait_ready(server: Starting, timeout: float) -> None:
    """Until ``server`` answers /system_stats; a RuntimeSetupError with its log's tail when
    it exits first or does not answer within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=2.0) as http:
        while time.monotonic() < deadline:
            if not server.alive():
                raise RuntimeSetupError(
                    f"ComfyUI exited with code {server.returncode} during start-up; "
                    f"log {server.log_path}:\n{server.log_tail()}"
                )
            with contextlib.suppress(httpx.HTTPError):
                if http.get(f"{server.url}/system_stats").status_code == 200:
                    return
            time.sleep(0.1)  # start-up has no event to wait on; this is the readiness probe
    raise RuntimeSetupError(
        f"ComfyUI did not answer {server.url}/system_stats within {timeout:g} s; "
        f"log {server.log_path}:\n{server.log_tail()}"
    )


def log_tail(path: Path, lines: int = 30) -> str:
    """The last ``lines`` lines of a server's log ("" when it cannot be read)."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _supported_flags(comfyui_dir: Path) -> set[str]:
    try:
        text = (comfyui_dir / "comfy" / "cli_args.py").read_text()
    except OSError:
        return set()
    return {
        token.strip("\"'")
        for token in text.replace("(", " ").replace(",", " ").split()
        if token.startswith(('"--', "'--"))
    }


def kill_pid(pid: int, timeout: float = STOP_TIMEOUT) -> bool:
    """Stop a detached server by pid (its own process group). False if it was not running."""
    require_process_control("stopping a detached ComfyUI")
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)
    return True
