"""What installing comfytest costs a pytest run that collects no case: none of the case
machinery loads (benchmarks/plugin_import.py times it; this checks what is imported)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

#: Third-party modules the plugin may load only for a case file or a configured server.
HEAVY = ("numpy", "PIL", "imagehash", "scipy", "httpx", "httpcore", "websockets", "jinja2", "yaml")
#: comfytest's own modules that pull them in.
CASE_MACHINERY = (
    "comfytest.plugin.nodes",
    "comfytest.plugin.session",
    "comfytest.cases.loader",
    "comfytest.comfy.client",
    "comfytest.judging.baselines",
    "comfytest.runner",
    "comfytest.runtime",
)

DUMP_MODULES = """
import json, os, sys

def pytest_unconfigure(config):
    with open(os.environ["MODULES_FILE"], "w") as handle:
        json.dump(sorted(sys.modules), handle)
"""


def modules_after_run(root: Path, *args: str) -> set[str]:
    """The modules a fresh pytest process has imported when it ends (a conftest dumps them)."""
    (root / "conftest.py").write_text(DUMP_MODULES)
    (root / "pytest.ini").write_text("[pytest]\n")
    dump = root / "modules.json"
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
        cwd=root,
        env={**os.environ, "MODULES_FILE": str(dump)},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return set(json.loads(dump.read_text()))


def loaded(modules: set[str], names: tuple[str, ...]) -> list[str]:
    return [name for name in names if name in modules]


def test_a_run_without_case_files_loads_none_of_the_case_machinery(tmp_path: Path) -> None:
    (tmp_path / "test_one.py").write_text("def test_one():\n    assert 1 + 1 == 2\n")
    with_plugin = modules_after_run(tmp_path, "-q")
    without = modules_after_run(tmp_path, "-q", "-p", "no:comfytest")
    assert "comfytest.plugin" in with_plugin  # the plugin was loaded, and is light:
    assert loaded(with_plugin - without, HEAVY) == []  # (other plugins may import jinja2)
    assert loaded(with_plugin, CASE_MACHINERY) == []


def test_collecting_a_case_file_loads_it(tmp_path: Path) -> None:
    """The same check sees the machinery once a case file is collected (no server needed)."""
    cases = tmp_path / "cases"
    cases.mkdir()
    (cases / "workflow.json").write_text('{"1": {"class_type": "SaveImage", "inputs": {}}}')
    (cases / "one.yaml").write_text("workflow: workflow.json\ncases:\n  - id: a\n")
    modules = modules_after_run(
        tmp_path, "--collect-only", "-q", "--comfy-url=http://127.0.0.1:9", "cases"
    )
    assert loaded(modules, ("numpy", "PIL", "httpx", "yaml")) == ["numpy", "PIL", "httpx", "yaml"]
    assert "comfytest.plugin.nodes" in modules
