"""Stand-in models: small random-weight files that take the place of a user's real models.

A case maps the model names its workflow uses to a family (``stand_in:
{sd_xl_base_1.0.safetensors: sdxl}``); the prompt then names the family's stand-in for
that loader input instead (``comfytest.cases.standin``). The files live in the runtime's
``ComfyUI/models/`` folders:

    checkpoints/comfytest-sdxl-tiny.safetensors   SDXL (~945 MB: its two text encoders)
    checkpoints/comfytest-sd2-tiny.safetensors    SD2.x (~373 MB: OpenCLIP ViT-H)
    checkpoints/comfytest-sd15-tiny.safetensors   SD1.5 (written at install, never here)
    vae/comfytest-<family>-vae.safetensors         the family's TAESD (~4.9 MB)
    loras/comfytest-<family>-lora.safetensors      a rank-4 LoRA (~22 kB)

The SDXL and SD2 checkpoints take 15-45 s to write on two CPU cores, so they are written
on first need (``ensure``: before a managed server starts for cases that map to them, or
with ``comfytest runtime standins``), not at install. Same seed, same bytes.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterable
from pathlib import Path

from comfytest.errors import RuntimeSetupError
from comfytest.runtime.install import (
    CHECKPOINT_NAME,
    SCRIPTS,
    Log,
    Runtime,
    locked,
    stderr_log,
)

__all__ = ["FAMILIES", "LOADER_INPUTS", "ensure", "stand_in_file", "stand_in_files"]

#: The families a model name can be mapped to.
FAMILIES = ("sd15", "sd2", "sdxl")
#: Loader input -> (models folder, what the stand-in is) for the inputs that have one.
LOADER_INPUTS = {
    "ckpt_name": ("checkpoints", "checkpoint"),
    "vae_name": ("vae", "vae"),
    "lora_name": ("loras", "lora"),
}
SEED = 0
_SUFFIX = {"checkpoint": "tiny", "vae": "vae", "lora": "lora"}


def stand_in_file(family: str, kind: str) -> str:
    """The file name of ``family``'s stand-in of ``kind`` (checkpoint, vae, lora)."""
    if family == "sd15" and kind == "checkpoint":
        return CHECKPOINT_NAME
    return f"comfytest-{family}-{_SUFFIX[kind]}.safetensors"


def stand_in_files(families: Iterable[str]) -> list[tuple[str, str, str]]:
    """(family, kind, models folder/file name) for every stand-in of ``families``."""
    return [
        (family, kind, f"{folder}/{stand_in_file(family, kind)}")
        for family in sorted(set(families))
        for folder, kind in LOADER_INPUTS.values()
    ]


def ensure(
    runtime: Runtime,
    families: Iterable[str],
    *,
    models: Path | None = None,
    log: Log = stderr_log,
) -> list[Path]:
    """Write the stand-ins of ``families`` that are missing from ``models`` (the runtime's
    ``ComfyUI/models`` by default), with the runtime's Python; returns the files written.
    Takes the install lock, so parallel workers write each file once."""
    models = models or runtime.comfyui_dir / "models"
    wanted = [
        (family, kind, models / rel)
        for family, kind, rel in stand_in_files(families)
        if not (models / rel).is_file()
    ]
    if not wanted:
        return []
    written = []
    with locked(runtime.root.parent.parent / "install.lock"):  # <home>/runtimes/<name>
        for family, kind, out in wanted:
            if out.is_file():
                continue  # another process wrote it while this one waited
            if family == "sd15" and kind == "checkpoint":
                raise RuntimeSetupError(f"{out} is missing: run 'comfytest runtime install'")
            log(f"writing the {family} stand-in {kind} {out.name} (seed {SEED}), once")
            write_stand_in(runtime.python, runtime.comfyui_dir, family, kind, out)
            written.append(out)
    return written


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
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeSetupError(f"writing the {family} stand-in failed:\n{result.stderr[-3000:]}")
