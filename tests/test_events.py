"""A prompt's WebSocket messages folded into what it did: pure, on recorded messages (the
shapes ComfyUI 0.3.75 sends, COMFYUI_API.md §2)."""

from __future__ import annotations

from comfytest.comfy.events import PromptEvents, failure
from comfytest.comfy.history import PromptRun
from comfytest.errors import ExecutionFailed, ServerError

PROMPT = {
    "4": {"class_type": "CheckpointLoaderSimple", "inputs": {}},
    "3": {"class_type": "KSampler", "inputs": {}, "_meta": {"title": "Sampler"}},
    "9": {"class_type": "SaveImage", "inputs": {}},
}
P = "prompt-1"
RECORDED = [
    (0.0, "execution_start", {"prompt_id": P, "timestamp": 1}),
    (0.0, "execution_cached", {"nodes": ["4"], "prompt_id": P, "timestamp": 1}),
    (0.1, "executing", {"node": "3", "display_node": "3", "prompt_id": P}),
    (0.2, "progress", {"value": 1, "max": 2, "prompt_id": P, "node": "3"}),
    (0.5, "progress", {"value": 2, "max": 2, "prompt_id": P, "node": "3"}),
    (0.6, "executing", {"node": "9", "display_node": "9", "prompt_id": P}),
    (0.7, "executed", {"node": "9", "output": {}, "prompt_id": P}),
    (0.7, "execution_success", {"prompt_id": P, "timestamp": 2}),
    (0.75, "executing", {"node": None, "prompt_id": P}),
]


def test_a_successful_prompt_is_folded_into_its_run() -> None:
    seen: list[tuple[str, int, int]] = []
    events = PromptEvents(PromptRun(P), 0.0, lambda *step: seen.append(step))
    ended = [events.feed(now, kind, data) for now, kind, data in RECORDED]
    assert ended == [False] * (len(RECORDED) - 1) + [True]
    run = events.run
    assert run.cached_nodes == ["4"]
    assert run.executed_nodes == ["3", "9"]
    assert run.node_seconds == {"3": 0.5, "9": 0.75 - 0.6}
    assert run.progress["3"] == (0.2, 1, 0.5, 2)
    assert seen == [("3", 1, 2), ("3", 2, 2)]
    assert failure(events, PROMPT, "http://s") is None
    assert events.where(PROMPT) == " at node 9 (SaveImage)"


def test_an_execution_error_names_the_node_and_keeps_the_server_traceback() -> None:
    events = PromptEvents(PromptRun(P), 0.0)
    events.feed(0.1, "executing", {"node": "3", "prompt_id": P})
    error = {
        "prompt_id": P,
        "node_id": "3",
        "node_type": "KSampler",
        "exception_type": "RuntimeError",
        "exception_message": "boom\n",
        "traceback": ['  File "nodes.py", line 1\n'],
    }
    events.feed(0.2, "execution_error", error)
    failed = failure(events, PROMPT, "http://s")
    assert isinstance(failed, ExecutionFailed)
    assert str(failed).splitlines()[:2] == [
        "ComfyUI failed while executing node 3 (KSampler 'Sampler'): RuntimeError: boom",
        "server traceback:",
    ]


def test_blocked_nodes_are_no_error_and_history_fills_in_a_missed_end() -> None:
    events = PromptEvents(PromptRun(P), 0.0)
    events.feed(0.1, "execution_error", {"exception_type": "ExecutionBlocked", "node_id": "3"})
    assert failure(events, PROMPT, "http://s") is None
    # The WebSocket dropped before the interruption came: /history recorded it.
    events.feed_history({"status": {"messages": [["execution_interrupted", {"node_id": "3"}]]}})
    failed = failure(events, PROMPT, "http://s")
    assert isinstance(failed, ServerError)
    assert "interrupted at node 3" in str(failed)
