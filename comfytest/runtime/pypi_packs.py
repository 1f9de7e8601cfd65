"""Node packs installed from PyPI (or from a wheel file) into a named runtime.

A pack published to PyPI is a distribution whose package holds ``NODE_CLASS_MAPPINGS``;
the registry's convention names it with an entry point in the group
``comfyui_legacy.custom_nodes`` (``module = module``). ComfyUI 0.3.x loads custom nodes
only from ``custom_nodes/``, so the requirement is installed into the runtime's own venv
(``packs.thin_venv``, its dependencies resolved by pip) and a small loader folder,
``custom_nodes/pypi-<name>/``, imports the installed package and hands ComfyUI its mappings.
The folder's name cannot be imported by Python, so it never shadows the package.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
from pathlib import Path
from typing import Any

from comfytest.errors import RuntimeSetupError

__all__ = ["ENTRY_POINTS", "REQUIREMENT", "install_loader", "loader_name", "requirement_name"]

#: The entry point group that names a distribution's node pack modules.
ENTRY_POINTS = "comfyui_legacy.custom_nodes"
#: What a ``--custom-node`` requirement looks like: ``name``, ``name==1.2``, ``name>=1,<2``.
REQUIREMENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*(\[[^\]]*\])?\s*([=<>!~].*)?")

#: Run in the runtime's interpreter: the installed distribution, its version, its pack
#: modules (entry points, else top-level packages defining NODE_CLASS_MAPPINGS) and a digest
#: of its RECORD (which lists every installed file's hash).
_PROBE = r"""
import hashlib, json, sys
import importlib.metadata as md
import importlib.util
dist = md.distribution(sys.argv[1])
modules = [ep.value.split(":")[0] for ep in dist.entry_points if ep.group == sys.argv[2]]
if not modules:
    top = (dist.read_text("top_level.txt") or "").split()
    inits = [str(f) for f in dist.files or [] if str(f).count("/") == 1]
    top = top or sorted(f.split("/")[0] for f in inits if f.endswith("/__init__.py"))
    for name in top:
        spec = importlib.util.find_spec(name)
        origin = spec.origin if spec else None
        if origin and "NODE_CLASS_MAPPINGS" in open(origin, errors="replace").read():
            modules.append(name)
record = dist.read_text("RECORD") or ""
print(json.dumps({
    "name": dist.metadata["Name"],
    "version": dist.version,
    "modules": modules,
    "digest": hashlib.sha256(record.encode()).hexdigest()[:16],
}))
"""

_LOADER = '''"""Written by comfytest: loads the node pack {name} {version}, installed from PyPI
({requested}) into this runtime's venv. Edit nothing here: install the runtime again."""

import importlib
import os

NODE_CLASS_MAPPINGS = {{}}
NODE_DISPLAY_NAME_MAPPINGS = {{}}
for _module in {modules!r}:
    _pack = importlib.import_module(_module)
    NODE_CLASS_MAPPINGS.update(getattr(_pack, "NODE_CLASS_MAPPINGS", {{}}))
    NODE_DISPLAY_NAME_MAPPINGS.update(getattr(_pack, "NODE_DISPLAY_NAME_MAPPINGS", {{}}))
    if getattr(_pack, "WEB_DIRECTORY", None):
        WEB_DIRECTORY = os.path.join(os.path.dirname(_pack.__file__), _pack.WEB_DIRECTORY)
'''


def requirement_name(requirement: str) -> str:
    """The distribution a requirement (or a wheel file's name) names."""
    if requirement.endswith(".whl"):
        return Path(requirement).name.split("-", 1)[0]
    found = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", requirement)
    return found.group(0) if found else requirement


def loader_name(requirement: str) -> str:
    """The loader folder's name: ``pypi-`` and the normalized distribution name."""
    return "pypi-" + re.sub(r"[-_.]+", "-", requirement_name(requirement)).lower()


def install_loader(python: Path, requirement: str, custom_nodes: Path) -> dict[str, Any]:
    """Write the loader of an installed requirement; what runtime.json records of it."""
    name = requirement_name(requirement)
    probe = subprocess.run(
        [str(python), "-c", _PROBE, name, ENTRY_POINTS],
        capture_output=True,
        text=True,
        check=False,
    )
    if probe.returncode != 0:
        tail = probe.stderr.strip().splitlines()[-1:] or ["no output"]
        raise RuntimeSetupError(
            f"--custom-node {requirement}: installed, but its distribution {name} cannot be "
            f"read: {tail[0]}"
        )
    found = json.loads(probe.stdout)
    if not found["modules"]:
        raise RuntimeSetupError(
            f"--custom-node {requirement}: {found['name']} {found['version']} ships no node "
            f"pack (no {ENTRY_POINTS} entry point, and no top-level package defines "
            "NODE_CLASS_MAPPINGS)"
        )
    folder = custom_nodes / loader_name(requirement)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "__init__.py").write_text(
        _LOADER.format(
            name=found["name"],
            version=found["version"],
            requested=requirement,
            modules=found["modules"],
        )
    )
    return {
        "name": folder.name,
        "source": f"pypi:{requirement}",
        "requested": requirement,
        "distribution": found["name"],
        "modules": found["modules"],
        "version": found["version"],
        "commit": None,
        "digest": found["digest"],
        "requirements": [requirement],
    }


def file_digest(path: Path) -> str:
    """A wheel file's sha256 (first 16 hex digits): a rebuilt wheel installs afresh."""
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]
