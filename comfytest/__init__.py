"""comfytest: regression tests for ComfyUI workflows, as a pytest plugin.

Everything outside ``comfytest.plugin`` is a plain library that never imports pytest.

The public names load on first use (PEP 562): pytest imports this package in every run of
an environment where comfytest is installed, and most of those runs collect no case.
"""

import importlib
import typing

if typing.TYPE_CHECKING:  # the same names as _EXPORTS, for type checkers and editors
    from comfytest.cases.loader import Case, load_cases
    from comfytest.comfy.client import ComfyClient, OutputFile, PromptRun
    from comfytest.errors import (
        CaseError,
        CaseTimeout,
        ComfytestError,
        ExecutionFailed,
        InfrastructureError,
        OutputMismatch,
        PromptRejected,
        RuntimeSetupError,
        ServerError,
        ServerLost,
        WorkflowError,
    )
    from comfytest.judging.baselines import BaselineStore, Verdict
    from comfytest.judging.compare import Comparison, Tolerance, compare
    from comfytest.runner import CaseResult, Runner

__version__ = "0.1.0"

#: Public name -> the module that defines it.
_EXPORTS = {
    "BaselineStore": "comfytest.judging.baselines",
    "Case": "comfytest.cases.loader",
    "CaseError": "comfytest.errors",
    "CaseResult": "comfytest.runner",
    "CaseTimeout": "comfytest.errors",
    "ComfyClient": "comfytest.comfy.client",
    "ComfytestError": "comfytest.errors",
    "Comparison": "comfytest.judging.compare",
    "ExecutionFailed": "comfytest.errors",
    "InfrastructureError": "comfytest.errors",
    "OutputFile": "comfytest.comfy.client",
    "OutputMismatch": "comfytest.errors",
    "PromptRejected": "comfytest.errors",
    "PromptRun": "comfytest.comfy.client",
    "Runner": "comfytest.runner",
    "RuntimeSetupError": "comfytest.errors",
    "ServerError": "comfytest.errors",
    "ServerLost": "comfytest.errors",
    "Tolerance": "comfytest.judging.compare",
    "Verdict": "comfytest.judging.baselines",
    "WorkflowError": "comfytest.errors",
    "compare": "comfytest.judging.compare",
    "load_cases": "comfytest.cases.loader",
}

__all__ = [
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


def __getattr__(name: str) -> object:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'comfytest' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # once: later lookups do not come here
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
