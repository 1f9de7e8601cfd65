"""Stand-in models: small random-weight files that take the place of a user's real models.

A case maps the model names its workflow uses to a family (``stand_in:
{sd_xl_base_1.0.safetensors: sdxl}``); the prompt then names the family's stand-in for
that loader input instead (``comfytest.cases.standin``). The files live in the runtime's
``standins/`` folder (laid out as a ``models/`` folder), which a managed server is given as
extra model folders only when the run's cases map a model to a family:

    checkpoints/comfytest-sdxl-tiny.safetensors   SDXL (~945 MB: its two text encoders)
    checkpoints/comfytest-sd2-tiny.safetensors    SD2.x (~373 MB: OpenCLIP ViT-H)
    vae/comfytest-<family>-vae.safetensors         the family's TAESD (~4.9 MB)
    loras/comfytest-<family>-lora.safetensors      a rank-4 LoRA (~22 kB)

SD1.5's checkpoint is the runtime's own ``models/checkpoints/comfytest-sd15-tiny``.

The SDXL and SD2 checkpoints take 15-45 s to write on two CPU cores, so they are written
on first need (``ensure``: before a managed server starts for cases that map to them, or
with ``comfytest runtime standins``), not at install. Same seed, same bytes.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from comfytest.cases.standin import FAMILIES, FOLDERS, stand_in_file
from comfytest.runtime.install import (
    SCRIPTS,
    Log,
    Runtime,
    locked,
    stderr_log,
)
from comfytest.runtime.tree import run_step

__all__ = ["FAMILIES", "ensure", "stand_in_files", "stand_in_root"]

SEED = 0


def stand_in_files(families: Iterable[str]) -> list[tuple[str, str, str]]:
    """(family, kind, models folder/file name) for every stand-in of ``families``."""
    return [
        (family, kind, f"{folder}/{stand_in_file(family, kind)}")
        for family in sorted(set(families))
        for kind, folder in FOLDERS.items()
    ]


def stand_in_root(runtime: Runtime) -> Path:
    """Where a runtime keeps its stand-ins: beside its tree, not in ``ComfyUI/models``, so
    a server lists them only when a run maps a model to them (``model_dirs``)."""
    return runtime.root / "standins"


def ensure(
    runtime: Runtime,
    families: Iterable[str],
    *,
    models: Path | None = None,
    log: Log = stderr_log,
) -> dict[str, list[str]]:
    """Write the stand-ins of ``families`` missing from ``models`` (``stand_in_root`` by
    default; the layout of a ComfyUI ``models/`` folder) with the runtime's Python, and
    return the folders to give a server (kind -> folders). Takes the install lock, so
    parallel workers write each file once. SD1.5's checkpoint is the runtime's own."""
    models = models or stand_in_root(runtime)
    wanted = [
        (family, kind, models / rel)
        for family, kind, rel in stand_in_files(families)
        if not (family == "sd15" and kind == "checkpoint")
    ]
    missing = [item for item in wanted if not item[2].is_file()]
    if missing:
        with locked(runtime.root.parent.parent / "install.lock"):  # <home>/runtimes/<name>
            for family, kind, out in missing:
                if out.is_file():
                    continue  # another process wrote it while this one waited
                log(f"writing the {family} stand-in {kind} {out.name} (seed {SEED}), once")
                write_stand_in(runtime.python, runtime.comfyui_dir, family, kind, out)
    folders = sorted({out.parent.name for *_, out in wanted})
    return {folder: [str(models / folder)] for folder in folders}


def write_stand_in(
    python: Path, comfyui_dir: Path, family: str, kind: str, out: Path, seed: int = SEED
) -> None:
    """Run make_standin.py with ``python`` (a venv that can import ComfyUI)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    command = [
        str(python),
        str(SCRIPTS / "make_standin.py"),
        "--comfyui",
        str(comfyui_dir),
        "--family",
        family,
        "--kind",
        kind,
        "--out",
        str(out),
        "--seed",
        str(seed),
    ]
    run_step(command, f"writing the {family} stand-in")
