"""Faults against the real server: timeouts, restarts, an unreachable URL, a killed server."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import threading
import time
from pathlib import Path

import httpx
import pytest

from comfytest.cases.loader import Case, load_cases
from comfytest.judging.baselines import BaselineStore
from comfytest.runner import Runner
from comfytest.runtime import ManagedServer, Runtime, start_server

from .conftest import start_pytest, stop_mid_run

REPO = Path(__file__).resolve().parent.parent


def fox() -> Case:
    (case,) = [c for c in load_cases(REPO / "cases/txt2img.yaml") if c.name == "fox"]
    return case


def test_a_case_past_its_timeout_is_interrupted_and_the_next_runs(
    pytester: pytest.Pytester, project: Path, comfy: ManagedServer
) -> None:
    (project / "cases/t.yaml").write_text(
        "workflow: workflows/txt2img.json\nseed: 1\ncases:\n"
        "  - id: endless\n    timeout: 3\n    inputs: {KSampler: {steps: 5000}}\n"
        "  - id: quick\n"
    )
    result = pytester.runpytest("--comfy-url", comfy.url, "--comfy-update=missing")
    result.assert_outcomes(passed=1, errors=1)  # a timeout: a broken workflow, not a regression
    result.stdout.fnmatch_lines(
        # The node it stopped at depends on the machine's load (a model load may take 3 s).
        # Ours was the running prompt: interrupted (the queue was read first).
        ["timed out after 3 s at node * (*); it was interrupted (http://127.0.0.1:*, prompt *)"]
    )
    assert "Traceback" not in result.stdout.str()


def test_a_restarted_server_is_picked_up_again(runtime: Runtime, tmp_path: Path) -> None:
    first = start_server(runtime, tmp_path / "a", log=lambda message: None)
    port = first.port
    store = BaselineStore(tmp_path / "baselines", tmp_path / "results", "missing")
    runner = Runner(store, url=first.url)
    try:
        assert [v.status for v in runner.run_case(fox(), "t").verdicts] == ["created"]
        first.stop()
        second = start_server(runtime, tmp_path / "b", port=port, log=lambda message: None)
        try:
            again = runner.run_case(fox(), "t")  # same Runner, same URL, a new server
            assert [v.status for v in again.verdicts] == ["passed"]
        finally:
            second.stop()
    finally:
        runner.close()
        first.stop()


def test_unreachable_server_is_one_usage_error(pytester: pytest.Pytester, project: Path) -> None:
    (project / "cases/t.yaml").write_text(
        "workflow: workflows/txt2img.json\nseed: 1\ncases:\n  - id: a\n  - id: b\n"
    )
    result = pytester.runpytest("--comfy-url", "http://127.0.0.1:9")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: ComfyUI is not reachable at http://127.0.0.1:9*"])
    assert "Traceback" not in result.stdout.str() + result.stderr.str()


def test_cli_flag_allows_paths_outside_the_project(
    pytester: pytest.Pytester, project: Path
) -> None:
    outside = project.parent / f"{project.name}-outside.json"
    outside.write_text((REPO / "cases/workflows/txt2img.json").read_text())
    (project / "cases/t.yaml").write_text(
        f"workflow: ../../{outside.name}\nseed: 1\ncases:\n  - id: a\n"
    )
    refused = pytester.runpytest("--comfy-url=http://127.0.0.1:9", "--collect-only")
    refused.stdout.fnmatch_lines([f"*t.yaml:1: workflow {outside} is outside the project*"])
    allowed = pytester.runpytest(
        "--comfy-url=http://127.0.0.1:9", "--collect-only", "--comfy-allow-outside"
    )
    allowed.stdout.fnmatch_lines(["*1 test collected*"])


def test_a_websocket_dropped_mid_case_still_gives_the_right_verdict(
    comfy: ManagedServer, tmp_path: Path
) -> None:
    # The fault is injected on our side (the real server cannot be made to drop it): the
    # client's socket is closed while the prompt samples.
    case = dataclasses.replace(
        fox(),
        workflow={
            **fox().workflow,
            "3": {**fox().workflow["3"], "inputs": {**fox().workflow["3"]["inputs"], "steps": 150}},
        },
    )
    store = BaselineStore(tmp_path / "baselines", tmp_path / "results", "missing")
    runner = Runner(store, url=comfy.url)
    try:
        assert [v.status for v in runner.run_case(case, "t").verdicts] == ["created"]
        client = runner.servers.client(runner.servers.home)
        first_socket = client._socket.current
        assert first_socket is not None
        client.free()  # so the sampler runs again rather than coming from the cache
        timer = threading.Timer(1.0, first_socket.close)
        timer.start()
        dropped = runner.run_case(case, "t")
        timer.join()
        assert client._socket.current is not first_socket, "a fresh socket replaced the dropped one"
        assert [v.status for v in dropped.verdicts] == ["passed"], "the same pixels, judged"
        assert dropped.run.execution_s is not None
        assert dropped.run.execution_s > 1.0, "the socket closed while the prompt ran"
    finally:
        runner.close()


def test_a_server_killed_mid_run_errors_its_cases_as_infrastructure(
    runtime: Runtime, project: Path, tmp_path: Path
) -> None:
    # A dedicated server, so that killing it leaves the session's server alone.
    server = start_server(runtime, tmp_path / "doomed", log=lambda message: None)
    (project / "cases/t.yaml").write_text(
        "workflow: workflows/txt2img.json\nseed: 1\ncases:\n"
        "  - id: a-before\n"
        "  - id: b-endless\n    inputs: {KSampler: {steps: 5000}}\n"
        "  - id: c-after\n"
        "  - id: d-after\n"
    )
    log = project / "pytest.log"
    try:
        process = start_pytest(
            project,
            f"--comfy-url={server.url}",
            "--comfy-update=missing",
            "--comfy-timeout=600",  # the cases must not wait for this
            "-rE",
        )
        # b may start before a ends: wait for a's result, not only for b's prompt.
        stop_mid_run(
            process,
            project,
            server.url,
            5000,
            "a-before PASSED",
            lambda: os.killpg(server.pid, signal.SIGKILL),
            hang_guard=120,
        )
    finally:
        server.stop()
    output = log.read_text()
    assert process.returncode == pytest.ExitCode.TESTS_FAILED, output
    assert "1 passed, 3 errors" in output, output
    assert "Traceback" not in output
    assert "ERROR cases/t.yaml::b-endless - " in output
    assert "ERROR cases/t.yaml::d-after - " in output
    assert "not tested: 3 case(s) errored because no server could run them: lost" in output
    record = json.loads((project / ".comfytest/results/run.json").read_text())
    cases = {case["id"].split("::")[1]: case for case in record["cases"]}
    assert {name: case["outcome"] for name, case in cases.items()} == {
        "a-before": "passed",
        "b-endless": "error",
        "c-after": "error",
        "d-after": "error",
    }
    assert cases["b-endless"]["message"].startswith(
        "ComfyUI went away while the prompt ran at node 3 (KSampler): the WebSocket closed "
        "and the server no longer answers"
    )
    for later in ("c-after", "d-after"):
        assert "still does not answer: this case was not run" in cases[later]["message"]


def test_closing_a_client_cancels_the_prompt_it_queued_and_never_followed(
    comfy: ManagedServer, tmp_path: Path
) -> None:
    """Ctrl-C or SIGTERM between two cases: the next case's prompt, queued ahead, is not
    being followed yet. Closing the run (pytest's unconfigure) interrupts it on the server."""
    store = BaselineStore(tmp_path / "baselines", tmp_path / "results")
    runner = Runner(store, url=comfy.url)
    prompt = runner.prepare(fox()).prompt
    prompt["3"]["inputs"]["steps"] = 5000
    prompt_id = runner.servers.client(runner.servers.home).submit(prompt)
    deadline = time.monotonic() + 300  # hang guards only
    while time.monotonic() < deadline:
        running = httpx.get(f"{comfy.url}/queue", timeout=10).json()["queue_running"]
        if any(item[1] == prompt_id for item in running):
            break
        time.sleep(0.1)
    runner.close()
    entry = None
    while entry is None and time.monotonic() < deadline + 300:
        entry = httpx.get(f"{comfy.url}/history/{prompt_id}", timeout=10).json().get(prompt_id)
        time.sleep(0.2)
    assert entry is not None
    assert [kind for kind, _ in entry["status"]["messages"]][-1] == "execution_interrupted"
