"""Every error comfytest raises on purpose, and the tree they form. No other module
defines one (a test checks that every exception class in the package is drawn here).

Each one carries its context (file and line, URL, prompt id, node id) and renders
itself as the message a user should read: no traceback is needed to act on it.

    ComfytestError
    ├── CaseError              a case file is wrong: file:line and what to do
    ├── WorkflowError          a workflow file is unreadable or not API format
    ├── OverrideError          an override names a node or input the workflow lacks
    │                          (reported as a CaseError at the YAML line)
    ├── ConversionError        a UI-format workflow cannot be converted (names the node)
    ├── PreflightFailed        the workflow cannot run on this server; nothing was queued
    ├── ServerSpecError        a --comfy-url spec or tag is malformed (a usage error)
    ├── ServerError            talking to ComfyUI failed (the server, not the workflow)
    │   ├── CaseTimeout        a prompt did not finish in time (it was stopped if ours)
    │   ├── ServerBusy         HTTP 429 / 503 past the retry budget (also Infrastructure)
    │   └── ServerLost         the server stopped answering (also an InfrastructureError)
    ├── InfrastructureError    the case could not be tested at all: a pytest *error*, not a
    │   │                      failure, and ``"outcome": "error"`` in results/run.json
    │   ├── RuntimeSetupError  the managed ComfyUI could not be installed or started
    │   ├── ServerBusy
    │   └── ServerLost
    ├── PromptRejected         ComfyUI refused the prompt (HTTP 400 or node_errors)
    ├── ExecutionFailed        a node raised while the prompt ran (execution_error)
    ├── OutputMismatch         outputs differ from their baselines, or a baseline is missing
    ├── BaselineError          a case's baselines folder is another case file's, or cannot
    │                          be written (names the path and the cause)
    └── TooSlow                slower than a saved run by more than threshold and spread

Warnings, shown by pytest at collection: ``SweepSizeWarning`` (a sweep of more cells than
comfytest.defaults.SWEEP_WARN_CELLS that does not set ``max_cells``).

Signals caught where they are raised, never shown to a user: ``Unreadable``
(comfytest.judging.images: bytes that are no image), ``AlignmentError``
(comfytest.workflow.convert.widgets: widget values that do not line up) and
comfytest.comfy.socket's private ``_Dropped`` (a WebSocket lost mid-prompt, reconnected).

Bugs in comfytest itself are never wrapped: they keep their Python traceback.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "ERROR_KINDS",
    "FAILURE_KINDS",
    "BaselineError",
    "CaseError",
    "CaseTimeout",
    "ComfytestError",
    "ConversionError",
    "ExecutionFailed",
    "InfrastructureError",
    "NodeProblem",
    "OutputMismatch",
    "OverrideError",
    "PreflightFailed",
    "Problem",
    "PromptRejected",
    "RuntimeSetupError",
    "ServerBusy",
    "ServerError",
    "ServerLost",
    "ServerSpecError",
    "SweepSizeWarning",
    "TooSlow",
    "WorkflowError",
    "kind_of",
]


class ComfytestError(Exception):
    """Base of every error comfytest raises on purpose; str() is the user-facing message."""


class CaseError(ComfytestError):
    """A case file is malformed: points at the file and, when known, the 1-based line."""

    def __init__(self, message: str, path: Path | str, line: int | None = None) -> None:
        self.message = message
        self.path = Path(path)
        self.line = line
        where = f"{self.path}:{line}" if line is not None else str(self.path)
        super().__init__(f"{where}: {message}")


class WorkflowError(ComfytestError):
    """A workflow file cannot be used (unreadable, bad JSON, wrong format)."""

    def __init__(self, message: str, path: Path | str, line: int | None = None) -> None:
        self.message = message
        self.path = Path(path)
        self.line = line
        where = f"{self.path}:{line}" if line is not None else str(self.path)
        super().__init__(f"{where}: {message}")


class ServerError(ComfytestError):
    """The ComfyUI server could not be reached or answered something unusable."""

    def __init__(
        self, message: str, url: str = "", prompt_id: str | None = None, *, status: int = 0
    ) -> None:
        self.message = message
        self.url = url
        self.prompt_id = prompt_id
        #: The HTTP status the server answered, when that was the trouble (else 0).
        self.status = status
        context = ", ".join(
            part for part in (url, f"prompt {prompt_id}" if prompt_id else "") if part
        )
        super().__init__(f"{message} ({context})" if context else message)


class CaseTimeout(ServerError):
    """A prompt ran past its timeout; comfytest interrupted it when it was the running
    prompt, else removed it from the queue (its message says which)."""


class InfrastructureError(ComfytestError):
    """The case could not be tested: says nothing about the workflow, so it is no regression.

    The plugin reports it as a pytest error (``E``) rather than a failure (``F``)."""


class RuntimeSetupError(InfrastructureError):
    """Installing, starting or stopping the managed ComfyUI failed: nothing could be tested."""


class ServerLost(ServerError, InfrastructureError):
    """The server stopped answering (killed, crashed, network gone) during or before a case.

    Raised after one quick reachability check; later cases of the run check once more and
    fail fast with this same error instead of waiting out their timeouts."""


class ServerBusy(ServerError, InfrastructureError):
    """The server kept answering HTTP 429 (too many requests, a full queue) or 503 for
    longer than the retry budget: nothing says the workflow is wrong."""


@dataclass(frozen=True)
class NodeProblem:
    """One node's complaint, as ComfyUI reported it."""

    node_id: str
    class_type: str
    title: str
    message: str

    def describe(self) -> str:
        title = f" {self.title!r}" if self.title and self.title != self.class_type else ""
        return f"node {self.node_id} ({self.class_type}{title}): {self.message}"


class PromptRejected(ComfytestError):
    """ComfyUI's validation refused the prompt, or dropped some of its outputs."""

    def __init__(self, summary: str, problems: Sequence[NodeProblem] = ()) -> None:
        self.summary = summary
        self.problems = tuple(problems)
        lines = [f"ComfyUI rejected the prompt: {summary}"]
        lines += [f"  {problem.describe()}" for problem in self.problems]
        super().__init__("\n".join(lines))


class ExecutionFailed(ComfytestError):
    """A node raised while the prompt ran; carries the server's traceback."""

    def __init__(
        self,
        node_id: str,
        class_type: str,
        title: str,
        exception_type: str,
        exception_message: str,
        traceback: Sequence[str] = (),
    ) -> None:
        self.node_id = node_id
        self.class_type = class_type
        self.title = title
        self.exception_type = exception_type
        self.exception_message = exception_message.strip()
        self.traceback = tuple(traceback)
        problem = NodeProblem(
            node_id, class_type, title, f"{exception_type}: {self.exception_message}"
        )
        lines = [f"ComfyUI failed while executing {problem.describe()}"]
        if self.traceback:
            lines.append("server traceback:")
            lines += [
                "  " + line for chunk in self.traceback for line in chunk.rstrip().splitlines()
            ]
        super().__init__("\n".join(lines))


class OutputMismatch(ComfytestError):
    """One or more outputs differ from their baselines, or have none.

    ``kind`` says which (see ``kind_of``): "regression" when an output differs or was not
    produced, "baseline" when baselines are missing or unreadable, "broken" when the server
    sent no judgeable output."""

    def __init__(self, lines: Sequence[str], kind: str = "regression") -> None:
        self.lines = tuple(lines)
        self.kind = kind
        super().__init__("\n".join(self.lines))


class BaselineError(ComfytestError):
    """A case's baselines cannot be used: its folder belongs to another case file (its
    manifest says so), or a baseline cannot be written (the path and the OS's reason)."""


class TooSlow(ComfytestError):
    """The case ran slower than the saved run allows (``--comfy-slower-than``)."""


class OverrideError(ComfytestError):
    """An override names a node or an input the workflow does not have."""


class ConversionError(ComfytestError):
    """A UI workflow cannot be converted; names the node (id, type, title) and the problem."""

    def __init__(
        self, message: str, node_id: str = "", class_type: str = "", title: str = ""
    ) -> None:
        self.message = message
        self.node_id = node_id
        self.class_type = class_type
        self.title = title
        if node_id:
            message = NodeProblem(node_id, class_type, title, message).describe()
        super().__init__(message)


@dataclass(frozen=True)
class Problem:
    """One thing wrong with one node, in words a ComfyUI user acts on."""

    node_id: str
    class_type: str
    title: str
    kind: str
    message: str

    def describe(self) -> str:
        title = f" {self.title!r}" if self.title != self.class_type else ""
        return f"node {self.node_id} ({self.class_type}{title}): {self.message}"


class PreflightFailed(ComfytestError):
    """The workflow cannot run on this server; nothing was queued."""

    def __init__(self, problems: list[Problem], url: str = "") -> None:
        self.problems = problems
        self.url = url
        first = problems[0].describe() if problems else "no problem given"
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        kinds = sorted({p.kind.replace("_", " ") for p in problems})
        lines = [f"preflight: {first}{more}"]
        lines.append(
            f"  the workflow cannot run{f' on {url}' if url else ''} ({', '.join(kinds)}):"
        )
        lines += [f"  {problem.describe()}" for problem in problems]
        super().__init__("\n".join(lines))


class ServerSpecError(ComfytestError):
    """A server spec or tag is malformed (the plugin turns it into a usage error)."""


#: What kind of failure a case had: each is told apart in the terminal, JUnit and run.json.
#: A regression (or a slower run) is a pytest *failure*; the others are pytest *errors*:
#: the case said nothing about the workflow's outputs.
FAILURE_KINDS = {
    "regression": "an output differs from its baseline, or was not produced",
    "slower": "slower than the saved run",
    "broken": "the workflow cannot run: preflight, validation, an execution error, a timeout",
    "infrastructure": "the server is unreachable, was lost, or could not start",
    "baseline": "a baseline is missing, corrupt or a Git LFS pointer, or cannot be written",
}
#: The kinds reported as pytest errors (JUnit <error>) rather than failures.
ERROR_KINDS = ("broken", "infrastructure", "baseline")


def kind_of(exc: BaseException) -> str | None:
    """The failure kind of an error comfytest raised on purpose; None for anything else
    (a bug in comfytest, which keeps its traceback and stays a plain failure)."""
    if isinstance(exc, OutputMismatch):
        return exc.kind
    if isinstance(exc, TooSlow):
        return "slower"
    if isinstance(exc, BaselineError):
        return "baseline"
    if isinstance(exc, CaseTimeout):
        return "broken"
    if isinstance(exc, (InfrastructureError, ServerError)):
        return "infrastructure"
    if isinstance(exc, ComfytestError):
        return "broken"  # preflight, a rejected prompt, an execution error, a case mistake
    return None


class SweepSizeWarning(UserWarning):
    """A sweep expands into more cells than comfytest.defaults.SWEEP_WARN_CELLS."""
