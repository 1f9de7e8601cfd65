"""Faults against the real server: timeouts, restarts, an unreachable URL."""

from __future__ import annotations

import dataclasses
import threading
from pathlib import Path

import pytest

from comfytest.baselines import BaselineStore
from comfytest.cases import Case, load_cases
from comfytest.runner import Runner
from comfytest.runtime import ManagedServer, Runtime, start_server

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
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        ["timed out after 3 s at node 3 (KSampler) (http://127.0.0.1:*, prompt *)"]
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
        prompt={
            **fox().prompt,
            "3": {**fox().prompt["3"], "inputs": {**fox().prompt["3"]["inputs"], "steps": 150}},
        },
    )
    store = BaselineStore(tmp_path / "baselines", tmp_path / "results", "missing")
    runner = Runner(store, url=comfy.url)
    try:
        assert [v.status for v in runner.run_case(case, "t").verdicts] == ["created"]
        client = runner.client()
        first_socket = client._ws
        assert first_socket is not None
        client.free()  # so the sampler runs again rather than coming from the cache
        timer = threading.Timer(1.0, first_socket.close)
        timer.start()
        dropped = runner.run_case(case, "t")
        timer.join()
        assert client._ws is not first_socket, "a fresh socket replaced the dropped one"
        assert [v.status for v in dropped.verdicts] == ["passed"], "the same pixels, judged"
        assert dropped.run.execution_s is not None
        assert dropped.run.execution_s > 1.0, "the socket closed while the prompt ran"
    finally:
        runner.close()
