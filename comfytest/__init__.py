"""comfytest: regression tests for ComfyUI workflows, as a pytest plugin.

Everything outside ``comfytest.plugin`` is a plain library that never imports pytest.
"""

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
