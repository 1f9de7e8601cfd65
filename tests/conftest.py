"""One real, managed ComfyUI for the whole test session, and a project folder per test."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

# Loaded once here: pytester's in-process runs drop modules imported during a run, and numpy's
# extension modules cannot be loaded twice in one process (imagehash.phash imports this lazily).
import scipy.fftpack  # noqa: F401

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
