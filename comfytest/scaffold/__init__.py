"""``comfytest init``: the minimal layout of a project of one's own, never overwriting.

    pytest.ini              comfy_case_paths = cases (unless a pytest config exists)
    cases/example.yaml      one case of the workflow below
    workflows/txt2img.json  a 64x64 text-to-image workflow for the managed runtime's checkpoint
    baselines/              where the first --comfy-update=missing run writes the baselines

A file or folder that exists is kept as it is and said so; a pytest configuration that
exists is not touched: what to add to it is printed instead.
"""

from __future__ import annotations

import argparse
import configparser
import re
from pathlib import Path
from typing import Any

__all__ = ["add_init_command", "init_project"]

HERE = Path(__file__).parent

PYTEST_INI = """\
[pytest]
# comfytest: the YAML files under these folders are case files
comfy_case_paths = cases
"""

EXAMPLE_CASE = """\
# One case: a workflow, what to override in it, a seed. Each case is one pytest item,
# cases/example.yaml::fox. Paths are relative to this file.
workflow: ../workflows/txt2img.json
seed: 42
cases:
  - id: fox
    inputs:
      Positive: {text: "a watercolor fox"}   # a node by its title, then the input
"""


def pytest_config(root: Path) -> tuple[Path, bool] | None:
    """The file holding this folder's pytest configuration, and whether it already sets
    ``comfy_case_paths``; None when there is none (pytest's own order of precedence)."""
    ini = root / "pytest.ini"
    if ini.is_file():
        return ini, "comfy_case_paths" in ini.read_text(errors="replace")
    pyproject = root / "pyproject.toml"
    if pyproject.is_file():
        text = pyproject.read_text(errors="replace")
        if re.search(r"^\[tool\.pytest\.ini_options\]", text, re.MULTILINE):
            return pyproject, "comfy_case_paths" in text
    for name, section in (("tox.ini", "pytest"), ("setup.cfg", "tool:pytest")):
        path = root / name
        if not path.is_file():
            continue
        parser = configparser.ConfigParser(interpolation=None)
        try:
            parser.read(path)
        except configparser.Error:
            continue
        if parser.has_section(section):
            return path, parser.has_option(section, "comfy_case_paths")
    return None


def init_project(root: Path) -> list[str]:
    """Write the minimal layout into ``root``; one line per path: written, kept, or what to
    add to an existing pytest configuration."""
    lines: list[str] = []

    def write(relative: str, body: bytes) -> None:
        path = root / relative
        if path.exists():
            lines.append(f"kept {relative} (it exists)")
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(body)
        lines.append(f"wrote {relative}")

    found = pytest_config(root)
    if found is None:
        write("pytest.ini", PYTEST_INI.encode())
    else:
        path, has_paths = found
        if has_paths:
            lines.append(f"kept {path.name} (it sets comfy_case_paths)")
        else:
            where = "[tool.pytest.ini_options]" if path.name == "pyproject.toml" else "pytest"
            value = (
                'comfy_case_paths = ["cases"]'
                if path.suffix == ".toml"
                else ("comfy_case_paths = cases")
            )
            lines.append(f"kept {path.name}: add  {value}  to its {where} section")
    write("cases/example.yaml", EXAMPLE_CASE.encode())
    write("workflows/txt2img.json", (HERE / "txt2img.json").read_bytes())
    baselines = root / "baselines"
    if baselines.exists():
        lines.append("kept baselines/ (it exists)")
    else:
        baselines.mkdir(parents=True)
        lines.append("wrote baselines/")
    return lines


def add_init_command(commands: Any) -> None:
    p = commands.add_parser(
        "init", help="write the minimal layout of a comfytest project (never overwrites)"
    )
    p.add_argument("folder", nargs="?", type=Path, default=Path("."), help="where (default: here)")
    p.set_defaults(handler=_init)


def _init(args: argparse.Namespace) -> int:
    root: Path = args.folder
    root.mkdir(parents=True, exist_ok=True)
    for line in init_project(root):
        print(line)
    print(
        "next: comfytest runtime install, then: pytest --comfy-launch --comfy-update=missing "
        "(writes the baselines; later runs judge against them)"
    )
    return 0
