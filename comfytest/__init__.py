"""comfytest: regression tests for ComfyUI workflows, as a pytest plugin.

The library (everything but the plugin layer: ``plugin``, ``nodes``, ``settings``,
``session`` and ``_xdist``) never imports pytest.
"""

from comfytest.baselines import BaselineStore, Verdict
from comfytest.cases import Case, load_cases
from comfytest.client import ComfyClient, OutputFile, PromptRun
from comfytest.compare import Comparison, Tolerance, compare
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
