"""What one prompt produced, read from its /history entry: output files, texts, and the
server's own timestamps; and ComfyUI's validation answer turned into an error naming nodes.

Names that come from the server are checked here before anything uses them to build a
local path.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from comfytest.errors import NodeProblem, PromptRejected, ServerError
from comfytest.workflow.prompt import Prompt, node_label, node_sort_key

__all__ = ["OutputFile", "PromptRun", "TextOutput", "read_history", "rejection"]

#: A node id that can become part of a local file name (``<node>-<index>.png``).
SAFE_NODE_ID = re.compile(r"[A-Za-z0-9_.:-]+")


@dataclass(frozen=True)
class OutputFile:
    """One file a node produced, as /history lists it."""

    node_id: str
    index: int
    kind: str  # the UI key: "images", "gifs", ...
    filename: str
    subfolder: str
    type: str

    @property
    def key(self) -> str:
        return f"{self.node_id}-{self.index}"


@dataclass(frozen=True)
class TextOutput:
    """One text a node showed (e.g. PreviewAny), as /history lists it."""

    node_id: str
    index: int
    text: str

    @property
    def key(self) -> str:
        return f"{self.node_id}-t{self.index}"


@dataclass
class PromptRun:
    """What happened to one prompt: its outputs and the server's own timestamps."""

    prompt_id: str
    outputs: list[OutputFile] = field(default_factory=list)
    texts: list[TextOutput] = field(default_factory=list)
    cached_nodes: list[str] = field(default_factory=list)
    executed_nodes: list[str] = field(default_factory=list)
    create_time_ms: int | None = None
    start_ms: int | None = None
    end_ms: int | None = None
    submitted_at: float = 0.0
    finished_at: float = 0.0
    #: Seconds per executed node, from the client's arrival times of ``executing`` messages.
    node_seconds: dict[str, float] = field(default_factory=dict)
    #: (first time, first value, last time, last value) of each node's ``progress`` messages.
    progress: dict[str, tuple[float, int, float, int]] = field(default_factory=dict)

    @property
    def execution_s(self) -> float | None:
        """Server time from ``execution_start`` to the terminal message."""
        if self.start_ms is None or self.end_ms is None:
            return None
        return (self.end_ms - self.start_ms) / 1000

    @property
    def queue_wait_s(self) -> float | None:
        """Server time from accepting the prompt to starting it."""
        if self.create_time_ms is None or self.start_ms is None:
            return None
        return max(0.0, (self.start_ms - self.create_time_ms) / 1000)

    def iterations_per_second(self) -> dict[str, float]:
        """Per node that reported progress (a sampler's steps): iterations per second."""
        rates = {}
        for node, (t0, v0, t1, v1) in self.progress.items():
            if t1 > t0 and v1 > v0:
                rates[node] = (v1 - v0) / (t1 - t0)
        return rates


def rejection(answer: dict[str, Any], prompt: Prompt) -> PromptRejected:
    error = answer.get("error") or {}
    summary = (
        str(error.get("message") or "validation failed") if isinstance(error, dict) else str(error)
    )
    details = error.get("details") if isinstance(error, dict) else None
    if details:
        summary = f"{summary}: {details}"
    problems = []
    for node_id, info in (answer.get("node_errors") or {}).items():
        class_type, title = node_label(prompt, str(node_id))
        class_type = str(info.get("class_type") or class_type)
        for err in info.get("errors", []):
            text = str(err.get("message", "error"))
            if err.get("details"):
                text = f"{text}: {err['details']}"
            problems.append(NodeProblem(str(node_id), class_type, title, text))
    if not answer.get("node_errors") and not error:
        summary = "validation failed"
    if answer.get("node_errors") and not (isinstance(error, dict) and error):
        summary = "some outputs failed validation and were dropped"
    return PromptRejected(summary, problems)


def read_history(entry: dict[str, Any], run: PromptRun, prompt: Prompt, url: str) -> None:
    """Outputs and timestamps from a /history entry. Names that could reach outside a folder
    (a node id that is not a plain name, a file name with a path in it) are refused."""
    for node_id, ui in (entry.get("outputs") or {}).items():
        if not SAFE_NODE_ID.fullmatch(str(node_id)):
            raise ServerError(
                f"/history lists outputs of a node named {str(node_id)!r}: not a node id; "
                "nothing was downloaded",
                url,
                run.prompt_id,
            )
        for items in (ui or {}).values():
            for item in items if isinstance(items, list) else ():
                if isinstance(item, dict) and "filename" in item:
                    _check_file_name(item, node_id, prompt, url, run.prompt_id)
    prompt_info = entry.get("prompt") or []
    if len(prompt_info) > 3 and isinstance(prompt_info[3], dict):
        run.create_time_ms = prompt_info[3].get("create_time")
    for kind, data in entry.get("status", {}).get("messages", []):
        if kind == "execution_start":
            run.start_ms = data.get("timestamp")
        elif kind in ("execution_success", "execution_error", "execution_interrupted"):
            run.end_ms = data.get("timestamp")
    for node_id in sorted(entry.get("outputs", {}), key=node_sort_key):
        ui = entry["outputs"][node_id]
        index = 0
        for kind, items in ui.items():
            if not isinstance(items, list):
                continue
            if kind == "text":
                run.texts += [
                    TextOutput(str(node_id), i, str(text)) for i, text in enumerate(items)
                ]
                continue
            for item in items:
                if isinstance(item, dict) and "filename" in item:
                    run.outputs.append(
                        OutputFile(
                            node_id=str(node_id),
                            index=index,
                            kind=kind,
                            filename=str(item["filename"]),
                            subfolder=str(item.get("subfolder", "")),
                            type=str(item.get("type", "output")),
                        )
                    )
                    index += 1


def _check_file_name(
    item: dict[str, Any], node_id: str, prompt: Prompt, url: str, prompt_id: str
) -> None:
    """A file name the server reported must be a plain name, its subfolder relative."""
    name, subfolder = str(item["filename"]), str(item.get("subfolder", ""))
    parts = subfolder.replace("\\", "/").split("/")
    if (
        not name
        or name in (".", "..")
        or any(c in name for c in "/\\\0")
        or subfolder.startswith(("/", "\\"))
        or ".." in parts
        or "\0" in subfolder
        or re.match(r"[A-Za-z]:", subfolder)
    ):
        raise ServerError(
            f"/history reports an unsafe file for node {node_id} "
            f"({node_label(prompt, str(node_id))[1]}): filename {name!r}, subfolder "
            f"{subfolder!r}; nothing was downloaded",
            url,
            prompt_id,
        )
