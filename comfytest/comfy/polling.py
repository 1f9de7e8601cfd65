"""Following a prompt without a WebSocket: polling, when the server refuses the WebSocket.

On Comfy Cloud the job-status route (``GET /api/job/{id}/status``) is polled until the job
is in a terminal state, then its outputs are read (``GET /api/jobs/{id}``); on a plain
ComfyUI ``/history/{id}`` is polled until the entry appears (it is written when the prompt
ends, COMFYUI_API.md §1.5). Polls start at ``FIRST_POLL`` seconds apart and double up to
``LAST_POLL``.

Without messages, the run knows only what the entry says: the cached nodes and the error
or interruption from its status messages; every other node of the prompt counts as
executed (so a run whose loaders were not cached is cold).

Plain library: no pytest here.
"""

from __future__ import annotations

import time
from typing import Any

from comfytest.comfy.api import JOB_DONE, history_entry
from comfytest.comfy.events import PromptEvents
from comfytest.comfy.http import Http
from comfytest.workflow.prompt import Prompt, node_sort_key

__all__ = ["FIRST_POLL", "LAST_POLL", "entry_of", "fill_events", "poll"]

FIRST_POLL = 0.05
LAST_POLL = 1.0


def entry_of(http: Http, prompt_id: str) -> dict[str, Any] | None:
    """The prompt's history entry, as plain ComfyUI gives it; None while it has none."""
    answer = http.get_json(http.api.entry_route(prompt_id))
    return history_entry(http.api, prompt_id, answer)


def poll(http: Http, prompt_id: str, deadline: float) -> dict[str, Any] | None:
    """The prompt's entry once it ended; None when ``deadline`` (monotonic) passed first."""
    wait = FIRST_POLL
    while True:
        if http.api.cloud:
            status = http.get_json(f"/api/job/{prompt_id}/status").get("status")
            entry = entry_of(http, prompt_id) if status in JOB_DONE else None
        else:
            entry = entry_of(http, prompt_id)
        if entry is not None:
            return entry
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return None
        time.sleep(min(wait, remaining))
        wait = min(wait * 2, LAST_POLL)


def fill_events(events: PromptEvents, prompt: Prompt, entry: dict[str, Any]) -> None:
    """What a polled run knows: cached nodes from the entry's ``execution_cached``, the
    others as executed (in node order)."""
    run = events.run
    for kind, data in (entry.get("status") or {}).get("messages") or []:
        if kind == "execution_cached" and not run.cached_nodes:
            run.cached_nodes = [str(node) for node in data.get("nodes", [])]
    if not run.executed_nodes:
        cached = set(run.cached_nodes)
        run.executed_nodes = sorted((n for n in prompt if n not in cached), key=node_sort_key)
