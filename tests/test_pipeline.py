"""Pipelining: the next case's prompt waits in ComfyUI's queue while the current case's
outputs download and are judged, so the server never idles between cases."""

from __future__ import annotations

import itertools
import json
import time
from pathlib import Path

import httpx
import pytest

from comfytest.runtime import ManagedServer

CASES = """\
workflow: workflows/txt2img.json
seed: 42
cases:
  - id: a
  - id: b
    inputs: {KSampler: {steps: 6}}
  - id: c
    inputs: {KSampler: {steps: 7}}
"""


def run(pytester: pytest.Pytester, comfy: ManagedServer, *args: str) -> pytest.RunResult:
    return pytester.runpytest(f"--comfy-url={comfy.url}", "-p", "no:cacheprovider", *args)


def history(comfy: ManagedServer, prompt_id: str) -> dict[str, object]:
    entry: dict[str, object] = httpx.get(f"{comfy.url}/history/{prompt_id}").json()[prompt_id]
    return entry


def stamps(entry: dict[str, object]) -> dict[str, int]:
    status = entry["status"]
    assert isinstance(status, dict)
    return {kind: data["timestamp"] for kind, data in status["messages"] if "timestamp" in data}


def queued_at(entry: dict[str, object]) -> int:
    prompt = entry["prompt"]
    assert isinstance(prompt, list)
    return int(prompt[3]["create_time"])


def test_each_next_prompt_is_queued_before_the_previous_one_ends(
    pytester: pytest.Pytester, project: Path, comfy: ManagedServer
) -> None:
    (project / "cases" / "t.yaml").write_text(CASES)
    run(pytester, comfy, "--comfy-update=missing").assert_outcomes(passed=3)
    result = run(pytester, comfy)
    result.assert_outcomes(passed=3)
    record = json.loads((project / ".comfytest/results/run.json").read_text())
    entries = [history(comfy, case["prompt_id"]) for case in record["cases"]]
    # By the server's own clock: b was queued before a finished, and c before b finished.
    for previous, following in itertools.pairwise(entries):
        assert queued_at(following) <= stamps(previous)["execution_success"]
    # ...and each case still reports its own execution and verdict.
    for case in record["cases"]:
        assert case["outputs"] == {"9-0": "passed"}
        assert case["timings"]["execution_s"] > 0


def test_a_case_that_may_be_skipped_is_not_queued_ahead(
    pytester: pytest.Pytester, project: Path, comfy: ManagedServer
) -> None:
    cases = CASES.replace("  - id: b\n", "  - id: b\n    marks: [{skip: {reason: not now}}]\n")
    (project / "cases" / "t.yaml").write_text(cases)
    result = run(pytester, comfy, "--comfy-update=missing")
    result.assert_outcomes(passed=2, skipped=1)
    record = json.loads((project / ".comfytest/results/run.json").read_text())
    ran = [case for case in record["cases"] if case["prompt_id"]]
    assert [case["id"].split("::")[1] for case in ran] == ["a", "c"]
    # Only the two cases that ran reached the server: nothing was queued for b.
    queued = httpx.get(f"{comfy.url}/history", params={"max_items": 2}).json()
    assert set(queued) == {case["prompt_id"] for case in ran}


def test_a_run_stopped_early_leaves_the_server_queue_empty(
    pytester: pytest.Pytester, project: Path, comfy: ManagedServer
) -> None:
    slow = CASES.replace("steps: 6", "steps: 400")
    (project / "cases" / "t.yaml").write_text(slow)
    # No baselines: a errors (a baseline problem), and -x stops the run while b waits (or
    # runs) behind it.
    result = run(pytester, comfy, "-x")
    result.assert_outcomes(errors=1)
    # The interrupt is applied by the server at its next step: wait for it (bounded).
    for _ in range(300):
        queue = httpx.get(f"{comfy.url}/queue").json()
        if not queue["queue_running"] and not queue["queue_pending"]:
            break
        time.sleep(0.1)
    assert queue == {"queue_running": [], "queue_pending": []}


def test_a_next_case_failing_preflight_still_reports_its_own_error(
    pytester: pytest.Pytester, project: Path, comfy: ManagedServer
) -> None:
    broken = CASES.replace(
        "    inputs: {KSampler: {steps: 6}}\n",
        "    inputs: {KSampler: {steps: 6, sampler_name: no_such_sampler}}\n",
    )
    (project / "cases" / "t.yaml").write_text(broken)
    result = run(pytester, comfy, "--comfy-update=missing")
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(["*no_such_sampler*"])
