"""One real, managed ComfyUI for the whole test session, and a project folder per test."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

# httpx imports httpcore lazily and maps its exceptions by class: imported first inside an
# in-process run, httpcore would be dropped and loaded again, and a refused connection would
# escape as a raw httpcore.ConnectError.
import httpcore  # noqa: F401
import httpx
import pytest

# Loaded once here: pytester's in-process runs drop modules imported during a run, and numpy's
# extension modules cannot be loaded twice in one process (imagehash.phash imports this lazily).
import scipy.fftpack  # noqa: F401
import yaml  # noqa: F401

# The plugin loads the case machinery only when a case file is collected; inside an
# in-process run that import would be dropped at its end and redone by the next run, which
# PyYAML's loader registry does not survive. Loaded once here instead.
import comfytest.plugin.nodes
import comfytest.plugin.session  # noqa: F401
from comfytest.runtime import ManagedServer, Runtime, install, start_server

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def runtime() -> Runtime:
    """The default runtime; installs it when missing (a no-op when present)."""
    return install(log=lambda message: None)


@pytest.fixture(scope="session")
def comfy(runtime: Runtime, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ManagedServer]:
    server = start_server(runtime, tmp_path_factory.mktemp("comfy"), log=lambda message: None)
    yield server
    server.stop()


@pytest.fixture
def project(pytester: pytest.Pytester) -> Path:
    """A user project: the example workflows and input image under cases/."""
    cases = pytester.path / "cases"
    shutil.copytree(REPO / "cases" / "workflows", cases / "workflows")
    shutil.copytree(REPO / "cases" / "inputs", cases / "inputs")
    # The outer session already imported the plugin, so the inner one cannot rewrite it.
    pytester.makeini("[pytest]\nfilterwarnings =\n    ignore::pytest.PytestAssertRewriteWarning\n")
    return pytester.path


def processes_mentioning(text: str) -> list[int]:
    """Pids whose command line contains ``text`` (Linux /proc)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmdline:
            pids.append(int(entry.name))
    return pids


def wait_for_running(url: str, steps: int, pytest_process: subprocess.Popen[bytes]) -> None:
    """Until the server executes a prompt with a KSampler of ``steps`` (polling GET /queue:
    another client's progress has no event we could wait on)."""
    deadline = time.monotonic() + 300  # a hang guard only
    while time.monotonic() < deadline:
        assert pytest_process.poll() is None, "pytest ended before the long case ran"
        running = httpx.get(f"{url}/queue", timeout=10).json()["queue_running"]
        if any(
            node["inputs"].get("steps") == steps for item in running for node in item[2].values()
        ):
            return
        time.sleep(0.1)
    pytest.fail(f"no prompt with {steps} steps started on {url}")


def wait_for_result(log: Path, line: str, process: subprocess.Popen[bytes]) -> None:
    """Until pytest has reported ``line`` (e.g. "b-second PASSED"). The next case's prompt
    is queued ahead and may start before the previous case is judged, so a running prompt
    alone does not mean the cases before it are done."""
    deadline = time.monotonic() + 300  # a hang guard only
    while time.monotonic() < deadline:
        assert process.poll() is None, "pytest ended before reporting " + line
        if line in log.read_text(errors="replace"):
            return
        time.sleep(0.1)
    pytest.fail(f"pytest never reported {line!r}")


def start_pytest(
    project: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """pytest on ``project`` in the background, verbose and unbuffered into pytest.log (so
    ``wait_for_result`` sees each result as it is reported); ``env`` adds variables."""
    with (project / "pytest.log").open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "pytest", "-v", "-p", "no:cacheprovider", *args],
            cwd=project,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
        )


def stop_mid_run(
    process: subprocess.Popen[bytes],
    project: Path,
    url: str,
    steps: int,
    reported: str,
    act: Callable[[], None],
    hang_guard: float,
) -> None:
    """For a run from ``start_pytest``: once ``url`` runs the prompt of ``steps`` steps and
    pytest has reported ``reported``, ``act()`` (kill the server, signal pytest), then wait
    up to ``hang_guard`` s for the run to end on its own. A run still going is killed."""
    try:
        wait_for_running(url, steps, process)
        wait_for_result(project / "pytest.log", reported, process)
        act()
        process.wait(hang_guard)
    finally:
        if process.poll() is None:
            process.kill()


def snapshot(root: Path) -> dict[str, str]:
    """{path under ``root``: sha256} of every file in the tree (baselines, manifests and
    anything else): equal snapshots mean nothing was written, changed or deleted."""
    return {
        path.relative_to(root).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }
