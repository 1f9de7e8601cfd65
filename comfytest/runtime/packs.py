"""Custom node packs in a managed runtime: snapshot them, install their requirements, check
that each one imports.

A pack is a local folder (a node developer's checkout) copied into the runtime's own
``custom_nodes/``, with its git commit (when it is a git checkout), a digest of its files and
its version (pyproject.toml or ``__version__``) recorded in runtime.json; or a requirement
installed from PyPI or a wheel file (``comfytest.runtime.pypi_packs``).

Its requirements (requirements.txt, else pyproject's ``[project] dependencies``) go into a
thin venv of the runtime's own: a venv without packages of its own that sees the base
runtime venv's site-packages through a ``.pth`` file, with only the packs' requirements
installed on top (pip sees torch and the rest as installed, so nothing big is reinstalled).
The user's own environment is never touched.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from comfytest.errors import RuntimeSetupError
from comfytest.runtime.config import load_toml
from comfytest.runtime.pypi_packs import REQUIREMENT, file_digest, loader_name
from comfytest.runtime.tree import git_head, run_step

__all__ = [
    "PackSource",
    "check_imports",
    "copy_pack",
    "pack_requirements",
    "thin_venv",
]

#: Folders of a checkout that are not part of the pack's content.
SKIPPED = (".git", "__pycache__", ".venv", "venv", ".mypy_cache", ".pytest_cache", ".ruff_cache")


@dataclass(frozen=True)
class PackSource:
    """A ``--custom-node`` argument: a local folder (``path``), or a requirement that ships
    a node pack (``requirement``: a PyPI requirement, or a wheel file's absolute path)."""

    path: Path | None = None
    requirement: str | None = None

    @classmethod
    def parse(cls, text: str, base: Path | None = None) -> PackSource:
        path = Path(text).expanduser()
        if not path.is_absolute() and base is not None:
            path = base / path
        if path.is_dir():
            return cls(path.resolve())
        if path.is_file() and path.suffix == ".whl":
            return cls(requirement=str(path.resolve()))
        if REQUIREMENT.fullmatch(text.strip()):
            return cls(requirement=text.strip())
        raise RuntimeSetupError(f"--custom-node {text}: no such folder")

    @property
    def name(self) -> str:
        """Its folder's name under the runtime's ``custom_nodes/``."""
        return self.path.name if self.path else loader_name(str(self.requirement))

    def wanted(self) -> tuple[str, str]:
        """(source, digest) as runtime.json records them, to tell whether it changed."""
        if self.path is not None:
            return str(self.path), content_digest(self.path)
        requirement = str(self.requirement)
        if requirement.endswith(".whl"):
            return f"pypi:{requirement}", f"{requirement}@{file_digest(Path(requirement))}"
        return f"pypi:{requirement}", requirement


def copy_pack(source: PackSource, custom_nodes: Path) -> dict[str, Any]:
    """Copy the pack into ``custom_nodes``; what runtime.json records about it."""
    folder = source.path
    assert folder is not None, "a requirement is installed by pypi_packs.install_loader"
    if not any(folder.glob("*.py")):
        raise RuntimeSetupError(
            f"--custom-node {folder}: not a ComfyUI node pack (no __init__.py or other "
            "Python file at its top level)"
        )
    target = custom_nodes / folder.name
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(folder, target, ignore=shutil.ignore_patterns(*SKIPPED, "*.pyc"))
    return {
        "name": folder.name,
        "source": str(folder),
        "version": _version(folder),
        "commit": _git_commit(folder),
        "digest": content_digest(target),
        "requirements": pack_requirements(folder),
    }


def content_digest(folder: Path) -> str:
    """sha256 over the pack's file names and bytes, in sorted order (first 16 hex digits)."""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        relative = path.relative_to(folder)
        if any(part in SKIPPED for part in relative.parts) or path.suffix == ".pyc":
            continue
        digest.update(relative.as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()[:16]


def pack_requirements(folder: Path) -> list[str]:
    """requirements.txt's requirements, else pyproject.toml's ``[project] dependencies``."""
    listed = folder / "requirements.txt"
    if listed.is_file():
        lines = (line.split("#", 1)[0].strip() for line in listed.read_text().splitlines())
        return [line for line in lines if line and not line.startswith("-")]
    project = _pyproject(folder).get("project", {})
    dependencies = project.get("dependencies", []) if isinstance(project, dict) else []
    return [str(d) for d in dependencies]


def thin_venv(home: Path, base_python: Path, requirements: Sequence[str], log: Any) -> Path:
    """A venv seeing ``base_python``'s site-packages, with ``requirements`` installed on top;
    the base interpreter itself when there is nothing to add."""
    wanted = sorted(set(requirements))
    if not wanted:
        return base_python
    key = "\n".join([str(base_python), *wanted])
    venv = home / "venvs" / f"packs-{hashlib.sha256(key.encode()).hexdigest()[:12]}"
    python = venv / ("Scripts/python.exe" if sys.platform == "win32" else "bin/python")
    marker = venv / ".comfytest-complete"
    if marker.is_file() and python.exists():
        return python
    shutil.rmtree(venv, ignore_errors=True)
    log(f"creating the packs' venv {venv} over {base_python}: {' '.join(wanted)}")
    run_step([str(base_python), "-m", "venv", "--without-pip", str(venv)], "python -m venv")
    base_sites = _site_packages(base_python)
    (Path(_site_packages(python)[0]) / "_comfytest_base.pth").write_text(
        "\n".join(base_sites) + "\n"
    )
    run_step(
        [
            str(base_python),
            "-m",
            "pip",
            "--python",
            str(python),
            "install",
            "--quiet",
            "--disable-pip-version-check",
            *wanted,
        ],
        f"installing the node packs' requirements ({' '.join(wanted)})",
    )
    marker.write_text(key + "\n")
    return python


def check_imports(packs: Sequence[dict[str, Any]], log_text: str) -> None:
    """A RuntimeSetupError naming each pack ComfyUI's start-up log says failed to import,
    with its import error."""
    failed = []
    for pack in packs:
        name = str(pack["name"])
        pattern = re.compile(rf"Cannot import \S*{re.escape(name)} module for custom nodes: (.*)")
        found = pattern.search(log_text) or (
            re.search(rf"IMPORT FAILED\)?:? \S*{re.escape(name)}\b", log_text)
        )
        if found:
            error = found.group(1) if found.groups() else "see the log"
            failed.append(f"node pack {name} ({pack['source']}) failed to import: {error}")
    if failed:
        raise RuntimeSetupError("\n".join(failed))


def _site_packages(python: Path) -> list[str]:
    probe = subprocess.run(
        [str(python), "-c", "import site; print('\\n'.join(site.getsitepackages()))"],
        capture_output=True,
        text=True,
        check=False,
    )
    if probe.returncode != 0:
        raise RuntimeSetupError(f"{python}: cannot list its site-packages: {probe.stderr[-500:]}")
    return [line for line in probe.stdout.splitlines() if line.strip()]


def _version(folder: Path) -> str | None:
    project = _pyproject(folder).get("project", {})
    if isinstance(project, dict) and project.get("version"):
        return str(project["version"])
    init = folder / "__init__.py"
    text = init.read_text(errors="replace") if init.is_file() else ""
    found = re.search(r"^__version__\s*=\s*[\"']([^\"']+)[\"']", text, re.MULTILINE)
    return found.group(1) if found else None


def _pyproject(folder: Path) -> dict[str, Any]:
    path = folder / "pyproject.toml"
    return load_toml(path) if path.is_file() else {}


def _git_commit(folder: Path) -> str | None:
    """The pack's commit, with "+dirty" when its folder has local changes."""
    head = git_head(folder)
    if head is None:
        return None
    dirty = subprocess.run(
        ["git", "-C", str(folder), "status", "--porcelain", "--", "."],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    return head + ("+dirty" if dirty else "")
