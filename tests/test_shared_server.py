"""Being a good guest on a server others use, against the real managed ComfyUI used as a
server given by --comfy-url (one comfytest does not manage): no /free, a timeout that stops
only our own prompt, and a cap on the prompts a run queues there. A second client plays the
other user."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from comfytest.cases.loader import Case, load_cases
from comfytest.comfy.client import ComfyClient
from comfytest.comfy.pool import ServerSpec
from comfytest.comfy.servers import Servers
from comfytest.errors import ServerBusy
from comfytest.judging.baselines import BaselineStore
from comfytest.runner import Runner
from comfytest.runtime import ManagedServer

REPO = Path(__file__).resolve().parent.parent


def fox() -> Case:
    (case,) = [c for c in load_cases(REPO / "cases/txt2img.yaml") if c.name == "fox"]
    return case


def txt2img(steps: int, seed: int) -> dict[str, Any]:
    prompt: dict[str, Any] = json.loads((REPO / "cases/workflows/txt2img.json").read_text())
    prompt["3"]["inputs"].update(steps=steps, seed=seed)
    return prompt


def queue(url: str) -> tuple[list[str], list[str]]:
    """The ids running and pending on the server."""
    found = httpx.get(f"{url}/queue", timeout=10).json()
    return (
        [item[1] for item in found["queue_running"]],
        [item[1] for item in found["queue_pending"]],
    )


def another_users_prompt(url: str, steps: int = 5000) -> str:
    """A long prompt of another client, running once this returns."""
    prompt_id = str(uuid.uuid4())
    body = {"prompt": txt2img(steps, 7), "client_id": "someone-else", "prompt_id": prompt_id}
    httpx.post(f"{url}/prompt", json=body, timeout=30).raise_for_status()
    deadline = time.monotonic() + 120  # a hang guard only
    while prompt_id not in queue(url)[0]:
        assert time.monotonic() < deadline, "the other user's prompt never started"
        time.sleep(0.05)
    return prompt_id


def end(url: str, prompt_id: str) -> None:
    """Stop the other user's prompt (the test is its owner) and wait for an idle server."""
    httpx.post(f"{url}/interrupt", json={"prompt_id": prompt_id}, timeout=10)
    deadline = time.monotonic() + 120
    while any(queue(url)):
        assert time.monotonic() < deadline, "the server did not become idle"
        time.sleep(0.05)


def test_only_a_managed_server_is_told_to_unload_its_models(
    comfy: ManagedServer, tmp_path: Path
) -> None:
    def first_run_cold(managed: bool) -> bool:
        store = BaselineStore(tmp_path / "baselines", tmp_path / "results", "missing")
        servers = Servers([ServerSpec(comfy.url)], managed_elsewhere=managed)
        runner = Runner(store, servers)
        try:
            return bool(runner.run_case(fox(), "t").timings["cold"])
        finally:
            runner.close()

    first_run_cold(managed=False)  # whatever ran before: now the model is loaded
    assert first_run_cold(managed=False) is False, "given by URL: models stay loaded"
    assert first_run_cold(managed=True) is True, "managed: /free, the model loads again"


def test_a_timeout_behind_another_users_prompt_removes_ours_and_never_interrupts_theirs(
    pytester: pytest.Pytester, project: Path, comfy: ManagedServer
) -> None:
    (project / "cases/t.yaml").write_text(
        "workflow: workflows/txt2img.json\nseed: 1\ncases:\n  - id: waits\n    timeout: 2\n"
    )
    theirs = another_users_prompt(comfy.url)
    try:
        result = pytester.runpytest("--comfy-url", comfy.url, "--comfy-update=missing")
        running, pending = queue(comfy.url)
    finally:
        end(comfy.url, theirs)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        ["timed out after 2 s; it was removed from the queue before it ran (http://*, prompt *)"]
    )
    assert running == [theirs], "the other user's prompt was not interrupted"
    assert pending == [], "ours left the queue"
    ours = json.loads((project / ".comfytest/results/run.json").read_text())["cases"][0]
    history = httpx.get(f"{comfy.url}/history/{ours['prompt_id']}", timeout=10).json()
    assert history == {}, "ours never ran"


def test_the_queue_cap_counts_the_prompts_of_this_run_only(comfy: ManagedServer) -> None:
    first, second = (ComfyClient(comfy.url, max_queued=1, run_id="run-a") for _ in range(2))
    other_run = ComfyClient(comfy.url, max_queued=1, run_id="run-b")
    try:
        long_id = first.submit(txt2img(5000, 11))
        with pytest.raises(ServerBusy) as busy:
            second.submit(txt2img(3, 12), slot_wait=0.3)
        assert str(busy.value).startswith(
            "1 prompts of this run are on the server, the most --comfy-max-queued=1 allows; "
            "none ended in 0.3 s"
        )
        other_id = other_run.submit(txt2img(3, 13))  # another run's cap is its own
        running, pending = queue(comfy.url)
        assert other_id in running + pending
        other_run.cancel(other_id)
        first.cancel(long_id)
        quick = txt2img(3, 14)
        run = second.run(quick, queued=second.submit(quick, slot_wait=60))
        assert run.outputs, "once the slot was free, the prompt ran"
    finally:
        for client in (first, second, other_run):
            client.close()
