"""Process helpers shared by the runtime and the baseline store, and the one check that the
managed runtime's process control (file locks, process groups) exists on this platform."""

from __future__ import annotations

import importlib
import os
import sys

from comfytest.errors import RuntimeSetupError

__all__ = ["pid_alive", "require_process_control"]


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists (one we may not signal counts)."""
    if sys.platform == "win32":
        # os.kill(pid, 0) sends CTRL_C_EVENT there: with no safe probe, every pid may be alive.
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def require_process_control(what: str) -> None:
    """Raise RuntimeSetupError where the managed runtime cannot run (Windows: no ``fcntl``
    locks, no process groups); everything against a ``--comfy-url`` server works there."""
    try:
        importlib.import_module("fcntl")
    except ImportError:
        locks = False
    else:
        locks = True
    if not locks or not hasattr(os, "killpg"):
        raise RuntimeSetupError(
            f"{what}: the managed ComfyUI runtime needs Linux or macOS (file locks, process "
            "groups); on Windows start ComfyUI yourself and pass --comfy-url URL"
        )
