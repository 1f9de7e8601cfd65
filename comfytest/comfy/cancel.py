"""Being a good guest on a server others use: stop only our own prompt, and count our
prompts in its queue.

``POST /interrupt`` stops whatever runs: ComfyUI before about 0.3.30 ignores the prompt id
in its body, and Comfy Cloud's stops every running job of the account (COMFYUI_API.md
§1.4; openapi-cloud.yaml). So the queue is read first: a prompt of ours that runs (alone)
is interrupted, one still waiting is deleted from the queue, and nothing else is touched.

Plain library: no pytest here.
"""

from __future__ import annotations

import time
from typing import Any

from comfytest.comfy.http import Http
from comfytest.errors import ServerBusy, ServerError

__all__ = ["ours_queued", "stop_prompt", "wait_for_slot"]

#: Seconds between two looks at the queue while waiting for a slot (doubling up to the last).
SLOT_POLLS = (0.05, 0.25)


def _ids(items: Any) -> list[str]:
    """The prompt ids of ``/queue`` items (``[number, prompt_id, …]`` on both dialects)."""
    if not isinstance(items, list):
        return []
    return [str(item[1]) for item in items if isinstance(item, list) and len(item) > 1]


def stop_prompt(http: Http, prompt_id: str) -> str:
    """Stop our prompt ``prompt_id`` without touching another one; says what was done.

    Best effort: failures are ignored (the server may be gone)."""
    try:
        queue = http.get_json("/queue")
    except ServerError:
        # Without the queue we cannot tell who runs: only ever delete, never interrupt.
        http.post_quietly("/queue", {"delete": [prompt_id]})
        return "it was removed from the queue if still there (the queue was unreadable)"
    running = _ids(queue.get("queue_running"))
    if prompt_id in running:
        if len(running) > 1:  # Comfy Cloud runs several jobs of one account at once
            return (
                "it was left running: interrupting it would stop the other running jobs "
                f"of this account ({len(running) - 1})"
            )
        http.post_quietly("/interrupt", {"prompt_id": prompt_id})
        return "it was interrupted"
    if prompt_id not in _ids(queue.get("queue_pending")):
        return "it had already ended"
    http.post_quietly("/queue", {"delete": [prompt_id]})
    # It may have started between the two requests: then it is the one running.
    try:
        running = _ids(http.get_json("/queue").get("queue_running"))
    except ServerError:
        running = []
    if running == [prompt_id]:
        http.post_quietly("/interrupt", {"prompt_id": prompt_id})
        return "it was interrupted as it started"
    return "it was removed from the queue before it ran"


def ours_queued(http: Http, run_id: str) -> int:
    """How many prompts of this run (all xdist workers: ``extra_data.comfytest_run``) the
    server has queued or running. On Comfy Cloud the queue holds only the account's jobs,
    whose items carry no ``extra_data``: all of them count."""
    queue = http.get_json("/queue")
    items = [
        item
        for key in ("queue_running", "queue_pending")
        for item in (queue.get(key) or [])
        if isinstance(item, list)
    ]
    if http.api.cloud:
        return len(items)
    return sum(
        1
        for item in items
        if len(item) > 3 and isinstance(item[3], dict) and item[3].get("comfytest_run") == run_id
    )


def wait_for_slot(http: Http, run_id: str, cap: int, wait: float) -> None:
    """Return once fewer than ``cap`` prompts of run ``run_id`` are on the server;
    ``ServerBusy`` when none ended within ``wait`` seconds (0: look once).

    Workers look at the queue independently, so two that look at the same moment may both
    submit: the cap can be passed by the workers that race, never by one worker."""
    deadline, pause = time.monotonic() + wait, SLOT_POLLS[0]
    while (count := ours_queued(http, run_id)) >= cap:
        if time.monotonic() + pause > deadline:
            raise ServerBusy(
                f"{count} prompts of this run are on the server, the most "
                f"--comfy-max-queued={cap} allows; none ended in {wait:g} s",
                http.url,
            )
        time.sleep(pause)
        pause = min(pause * 2, SLOT_POLLS[1])
