"""The public surface, and the rule that the library never imports pytest."""

from __future__ import annotations

import ast
import importlib
import pkgutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import comfytest


def test_public_api_is_pinned() -> None:
    assert sorted(comfytest.__all__) == [
        "BaselineStore",
        "Case",
        "CaseError",
        "CaseResult",
        "CaseTimeout",
        "ComfyClient",
        "ComfytestError",
        "Comparison",
        "ExecutionFailed",
        "InfrastructureError",
        "OutputFile",
        "OutputMismatch",
        "PromptRejected",
        "PromptRun",
        "Runner",
        "RuntimeSetupError",
        "ServerError",
        "ServerLost",
        "Tolerance",
        "Verdict",
        "WorkflowError",
        "__version__",
        "compare",
        "load_cases",
    ]
    for name in comfytest.__all__:
        assert hasattr(comfytest, name), name


SCRIPTS = "comfytest.runtime.scripts"


def test_every_public_name_is_exported_and_resolves() -> None:
    """Like httpx's test against ``vars()``: the names load lazily, so ``__all__`` is the lazy
    map plus ``__version__``, the imports type checkers read name the same objects, and once
    every name is resolved the package holds no public name that ``__all__`` lacks."""
    exports: dict[str, str] = comfytest._EXPORTS
    assert comfytest.__all__ == sorted([*exports, "__version__"])
    for name, module in exports.items():
        assert getattr(comfytest, name) is getattr(importlib.import_module(module), name), name
    public = {
        name
        for name, value in vars(comfytest).items()
        if not name.startswith("_") and not isinstance(value, ModuleType)
    }
    assert public == set(exports)
    assert {name for name in dir(comfytest) if not name.startswith("_")} >= public
    tree = ast.parse(Path(comfytest.__file__).read_text())
    typed = {
        alias.name: node.module
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
    }
    assert typed == exports  # the TYPE_CHECKING block names the same module for each name


def test_every_module_defines_what_its_all_names() -> None:
    modules = [
        importlib.import_module(module.name)
        for module in pkgutil.walk_packages(comfytest.__path__, "comfytest.")
        if not module.name.startswith(SCRIPTS)
    ]
    with_all = [module for module in modules if hasattr(module, "__all__")]
    assert len(with_all) > 30
    missing = [
        f"{module.__name__}.{name}"
        for module in with_all
        for name in module.__all__
        if not hasattr(module, name)
    ]
    assert missing == []
    duplicated = [m.__name__ for m in with_all if len(set(m.__all__)) != len(m.__all__)]
    assert duplicated == []


def test_the_library_does_not_import_pytest() -> None:
    """Every module outside comfytest.plugin imports without pytest, also indirectly (ruff's
    TID251 bans the direct imports)."""
    library = sorted(
        module.name
        for module in pkgutil.walk_packages(comfytest.__path__, "comfytest.")
        if module.name.split(".")[1] != "plugin" and not module.name.startswith(SCRIPTS)
    )
    assert {"comfytest.judging.baselines", "comfytest.runner", "comfytest.runtime.server"} <= set(
        library
    )
    code = (
        "import sys\n"
        + "".join(f"import {name}\n" for name in library)
        + "print(sorted(m for m in sys.modules if m == 'pytest' or m.startswith('_pytest')))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"
