"""A hint for YAML files that look like case files but are not under ``comfy_case_paths``
(a project of one's own without the ini key, pytest run from the wrong folder)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from comfytest.plugin.settings import SETTINGS_KEY, Settings

__all__ = ["STRAY_KEY", "is_case_path", "looks_like_a_case_file", "stray_hint"]

#: YAML files collection saw outside comfy_case_paths that look like case files.
STRAY_KEY = pytest.StashKey[list[Path]]()
_CASES_KEY = re.compile(rb"^cases[ \t]*:", re.MULTILINE)


def is_case_path(path: Path, settings: Settings) -> bool:
    return any(path.is_relative_to(root) for root in settings.case_paths)


def looks_like_a_case_file(path: Path) -> bool:
    """A YAML file with a top-level ``cases:`` key (its first 64 KB read)."""
    if path.name == "_defaults.yaml":
        return False
    try:
        with path.open("rb") as handle:
            head = handle.read(1 << 16)
    except OSError:
        return False
    return _CASES_KEY.search(head) is not None


def stray_hint(paths: list[Path], config: pytest.Config) -> str:
    """Why these case-looking files are no case files, and what to do."""
    root = config.rootpath

    def shown(path: Path) -> str:
        return path.relative_to(root).as_posix() if path.is_relative_to(root) else str(path)

    settings = config.stash[SETTINGS_KEY]
    names = ", ".join(shown(p) for p in paths[:5]) + (
        f" and {len(paths) - 5} more" if len(paths) > 5 else ""
    )
    where = ", ".join(f"{shown(p)}/" for p in settings.case_paths)
    what = "looks like a case file" if len(paths) == 1 else "look like case files"
    ini = (
        f"set comfy_case_paths in {config.inipath.name}"
        if config.inipath is not None
        else f"no pytest.ini or pyproject.toml was found (rootdir {root}): run pytest from "
        "the project's root, or write one with comfy_case_paths ('comfytest init' does)"
    )
    return (
        f"comfytest: {names} {what} (a top-level 'cases:') but only YAML files under "
        f'comfy_case_paths ({where}) are case files: {ini}; see the README\'s "Your own repo"'
    )
