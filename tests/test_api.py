"""The public surface, and the rule that the library never imports pytest."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

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
