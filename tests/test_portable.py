"""Windows, simulated on Linux: with ``fcntl`` (and the other POSIX-only modules and os
functions) gone, everything but the managed runtime imports, and a case runs against a
running server (``--comfy-url``) to a passing verdict. No real Windows machine is tested."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from comfytest.runtime import ManagedServer

#: Run first in a fresh interpreter: what Windows lacks is unimportable or absent.
WINDOWS_LIKE = """\
import os, signal, sys
for name in ("fcntl", "termios", "resource", "pwd", "grp"):
    sys.modules[name] = None  # import raises ImportError
for name in ("fchmod", "fchown", "killpg", "getpgid", "setsid", "setpgid"):
    if hasattr(os, name):
        delattr(os, name)
del signal.SIGKILL
"""

IMPORT_ALL = """
import pkgutil, comfytest
from pathlib import Path
names = [m.name for m in pkgutil.walk_packages(comfytest.__path__, "comfytest.")
         if not m.name.startswith("comfytest.runtime.scripts")]
for name in names:
    __import__(name)
for name in comfytest.__all__:
    getattr(comfytest, name)
print("imported", len(names))
from comfytest.errors import RuntimeSetupError
from comfytest.runtime import find_runtime, install, kill_pid, start_server
for call in (lambda: install(home=Path(sys.argv[1])), lambda: kill_pid(2**22 + 1),
             lambda: start_server(find_runtime(), Path(sys.argv[1]) / "run")):
    try:
        call()
    except RuntimeSetupError as exc:
        print("refused:", exc)
assert sys.modules["fcntl"] is None
"""

RUN_PYTEST = """
import pytest
code = pytest.main(sys.argv[1:])
assert sys.modules["fcntl"] is None  # nothing got it some other way
sys.exit(code)
"""


def windows_like(code: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", WINDOWS_LIKE + code, *args],
        cwd=cwd,
        env={**os.environ, "PYTHONWARNINGS": "error"},
        capture_output=True,
        text=True,
        check=False,
        timeout=600,  # a hang guard only
    )


def test_everything_but_the_managed_runtime_imports_without_fcntl(tmp_path: Path) -> None:
    result = windows_like(IMPORT_ALL, str(tmp_path), cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("imported ")
    assert int(lines[0].split()[1]) > 40
    needs = "the managed ComfyUI runtime needs Linux or macOS (file locks, process groups)"
    assert lines[1:] == [
        f"refused: installing the managed runtime: {needs}; on Windows start ComfyUI yourself "
        "and pass --comfy-url URL",
        f"refused: stopping a detached ComfyUI: {needs}; on Windows start ComfyUI yourself and "
        "pass --comfy-url URL",
        f"refused: starting a managed ComfyUI: {needs}; on Windows start ComfyUI yourself and "
        "pass --comfy-url URL",
    ]
    assert not (tmp_path / "runtimes").exists()
    assert not (tmp_path / "run").exists()


def test_a_case_passes_against_a_running_server_without_fcntl(
    project: Path, comfy: ManagedServer
) -> None:
    (project / "cases" / "portable.yaml").write_text(
        "workflow: workflows/txt2img.json\nseed: 7\ncases:\n  - id: a\n"
    )
    args = ["-p", "no:cacheprovider", f"--comfy-url={comfy.url}", "cases/portable.yaml"]
    created = windows_like(RUN_PYTEST, *args, "--comfy-update=missing", cwd=project)
    assert created.returncode == 0, created.stdout + created.stderr
    assert "outputs: 1 created" in created.stdout
    assert sorted(p.name for p in (project / "baselines" / "portable" / "a").iterdir()) == [
        "9-0.png",
        "manifest.json",
    ]
    judged = windows_like(RUN_PYTEST, *args, cwd=project)
    assert judged.returncode == 0, judged.stdout + judged.stderr
    assert "1 passed" in judged.stdout
    assert "outputs: 1 passed" in judged.stdout
