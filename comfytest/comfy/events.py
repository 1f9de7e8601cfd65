"""One prompt's WebSocket messages folded into what it did: pure, no connection here.

``PromptEvents.feed(now, type, data)`` takes the messages of one prompt in the order they
arrived (COMFYUI_API.md §2) and records, on its ``PromptRun``: the nodes executed and how
long each took, sampler progress, the nodes served from the cache, and the execution error
or interruption that ended it. ``failure()`` turns those into the error a user reads.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from comfytest.comfy.history import PromptRun
from comfytest.errors import ComfytestError, ExecutionFailed, ServerError
from comfytest.workflow.prompt import Prompt, node_label

__all__ = ["ProgressCallback", "PromptEvents", "failure"]

#: ``on_progress(node_id, value, max)``: one ``progress`` message of the running prompt.
ProgressCallback = Callable[[str, int, int], None]


class PromptEvents:
    """The state of one followed prompt, fed one message at a time."""

    def __init__(
        self, run: PromptRun, started: float, on_progress: ProgressCallback | None = None
    ) -> None:
        self.run = run
        self.on_progress = on_progress
        #: The ``execution_error`` data, when a node raised.
        self.error: dict[str, Any] | None = None
        #: The ``execution_interrupted`` data, when the prompt was interrupted.
        self.interrupted: dict[str, Any] | None = None
        self._node_started = started

    def feed(self, now: float, kind: str, data: dict[str, Any]) -> bool:
        """Take one message (arrived at monotonic time ``now``); True when the prompt ended
        (``executing`` with ``node: null``)."""
        run = self.run
        if kind == "executing":
            if run.executed_nodes:
                run.node_seconds[run.executed_nodes[-1]] = now - self._node_started
            if data.get("node") is None:
                return True
            run.executed_nodes.append(str(data["node"]))
            self._node_started = now
        elif kind == "progress":
            node, value = str(data.get("node")), int(data.get("value", 0))
            first = run.progress.get(node)
            run.progress[node] = (
                (first[0], first[1], now, value) if first else (now, value, now, value)
            )
            if self.on_progress is not None:
                self.on_progress(node, value, int(data.get("max", 0)))
        elif kind == "execution_cached":
            run.cached_nodes = [str(node) for node in data.get("nodes", [])]
        elif kind == "execution_error":
            if data.get("exception_type") != "ExecutionBlocked":
                self.error = data
        elif kind == "execution_interrupted":
            self.interrupted = data
        return False

    def feed_history(self, entry: dict[str, Any] | None) -> None:
        """The terminal messages /history recorded, in case the WebSocket dropped before
        they came."""
        for kind, data in (entry or {}).get("status", {}).get("messages", []):
            if kind == "execution_error" and self.error is None:
                self.error = data
            elif kind == "execution_interrupted" and self.interrupted is None:
                self.interrupted = data

    def where(self, prompt: Prompt) -> str:
        """`` at node 3 (KSampler)``: the node the prompt reached, or nothing."""
        nodes = self.run.executed_nodes
        return f" at node {nodes[-1]} ({node_label(prompt, nodes[-1])[1]})" if nodes else ""


def failure(events: PromptEvents, prompt: Prompt, url: str) -> ComfytestError | None:
    """The error that ended the prompt, naming the node; None when it ran to its end."""
    error, interrupted = events.error, events.interrupted
    if error is not None:
        node_id = str(error.get("node_id"))
        class_type, title = node_label(prompt, node_id)
        return ExecutionFailed(
            node_id,
            str(error.get("node_type") or class_type),
            title,
            str(error.get("exception_type", "Exception")),
            str(error.get("exception_message", "")),
            error.get("traceback") or (),
        )
    if interrupted is not None:
        return ServerError(
            f"the prompt was interrupted at node {interrupted.get('node_id')}",
            url,
            events.run.prompt_id,
        )
    return None
