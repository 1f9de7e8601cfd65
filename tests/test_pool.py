"""A pool of ComfyUI servers under pytest-xdist: specs, tags, the binding rule, real servers."""

from __future__ import annotations

import json
import os
import re
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from comfytest.cases.loader import load_cases
from comfytest.comfy.pool import (
    ServerSpec,
    ServerSpecError,
    choose,
    home_index,
    no_match_reason,
    parse_spec,
)
from comfytest.errors import CaseError
from comfytest.plugin.nodes import SETTINGS_KEY
from comfytest.runtime import ManagedServer, Runtime, start_server

from .conftest import processes_mentioning, start_pytest, stop_mid_run

# -- specs, tags and the binding rule (no server) ------------------------------------------


def test_a_server_spec_is_a_url_and_tags() -> None:
    assert parse_spec("http://gpu1:8188/ gpu=h100 vram=80") == ServerSpec(
        "http://gpu1:8188", {"gpu": "h100", "vram": "80"}
    )
    assert parse_spec("https://comfy.example") == ServerSpec("https://comfy.example", {})


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("gpu=h100 http://gpu1:8188", "expected 'URL [key=value ...]'"),
        ("http://gpu1:8188 gpu", "tag: expected key=value"),
        ("http://gpu1:8188 gpu=h100 gpu=a100", "tag 'gpu' given twice"),
        ("   ", "empty server spec"),
    ],
)
def test_a_malformed_spec_says_what_is_expected(spec: str, message: str) -> None:
    with pytest.raises(ServerSpecError, match=re.escape(message)):
        parse_spec(spec)


def test_worker_k_binds_to_server_k_modulo_the_pool() -> None:
    assert [home_index(f"gw{k}", 2) for k in range(5)] == [0, 1, 0, 1, 0]
    assert home_index(None, 3) == 0, "without xdist: the first server"
    assert home_index("gw7", 1) == 0


def test_a_case_runs_at_home_when_the_tags_fit_else_on_the_first_that_fits() -> None:
    pool = [
        ServerSpec("http://a", {"gpu": "h100"}),
        ServerSpec("http://b", {"gpu": "a100"}),
        ServerSpec("http://c", {"gpu": "h100", "vram": "80"}),
    ]
    assert choose(pool, 1, {}) == 1
    assert choose(pool, 1, {"gpu": "h100"}) == 0
    assert choose(pool, 2, {"gpu": "h100"}) == 2
    assert choose(pool, 0, {"vram": 80}) == 2, "a number in YAML matches the tag's text"
    assert choose(pool, 0, {"gpu": "t4"}) is None
    assert choose(pool, 0, {"gpu": "h100"}, avoid={0}) == 2, "a lost server is avoided"
    assert choose(pool, 1, {"gpu": "a100"}, avoid={1}) == 1, "...unless it is the only fit"
    assert no_match_reason(pool[:2], {"gpu": "t4"}) == (
        "no server has the tags this case requires (gpu=t4); servers: "
        "http://a (gpu=h100); http://b (gpu=a100)"
    )


def test_server_urls_come_from_the_command_line_or_one_per_ini_line(
    pytester: pytest.Pytester, runtime: Runtime
) -> None:
    given = pytester.parseconfigure(
        "--comfy-url=http://a:8188 gpu=h100", "--comfy-url", "http://b:8188"
    )
    assert given.stash[SETTINGS_KEY].servers == (
        ServerSpec("http://a:8188", {"gpu": "h100"}),
        ServerSpec("http://b:8188", {}),
    )
    assert given.stash[SETTINGS_KEY].url == "http://a:8188"
    managed = pytester.parseconfigure(
        "--comfy-launch",
        "--comfy-servers=2",
        "--comfy-server-tag=gpu=cpu",
        f"--comfy-home={runtime.root.parent.parent}",
    )
    assert managed.stash[SETTINGS_KEY].server_count == 2
    assert managed.stash[SETTINGS_KEY].server_tags == (("gpu", "cpu"),)
    pytester.makeini("[pytest]\ncomfy_url =\n    http://a:8188 gpu=h100\n    http://b:8188\n")
    assert pytester.parseconfigure().stash[SETTINGS_KEY].servers == (
        ServerSpec("http://a:8188", {"gpu": "h100"}),
        ServerSpec("http://b:8188", {}),
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--comfy-url=gpu1:8188"], "expected 'URL [key=value ...]'"),
        (["--comfy-url=http://a:1", "--comfy-url=http://a:1 gpu=x"], "http://a:1 is given twice"),
        (["--comfy-url=http://a:1", "--comfy-servers=2"], "are for managed servers"),
        (["--comfy-launch", "--comfy-server-tag=gpu"], "expected key=value"),
    ],
)
def test_a_bad_pool_option_is_a_usage_error(
    pytester: pytest.Pytester, args: list[str], message: str
) -> None:
    result = pytester.runpytest(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    errors = [line for line in result.errlines if line.startswith("ERROR: ")]
    assert len(errors) == 1, result.errlines
    assert message in errors[0]


def test_server_requirements_layer_key_by_key(tmp_path: Path) -> None:
    (tmp_path / "w.json").write_text(
        '{"1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8}}}'
    )
    (tmp_path / "_defaults.yaml").write_text("server: {gpu: h100}\n")
    cases = tmp_path / "t.yaml"
    cases.write_text(
        "workflow: w.json\nserver: {vram: 80}\ncases:\n"
        "  - id: a\n"
        "  - id: b\n    server: {gpu: a100, fast: true}\n"
        "  - id: c\n    server: {gpu: null}\n"
    )
    found = {case.name: dict(case.server) for case in load_cases(cases, tmp_path)}
    assert found == {
        "a": {"gpu": "h100", "vram": 80},
        "b": {"gpu": "a100", "vram": 80, "fast": True},
        "c": {"vram": 80},
    }
    cases.write_text("workflow: w.json\ncases:\n  - id: a\n    server:\n      gpu: [h100]\n")
    with pytest.raises(CaseError, match=r"t.yaml:5: server.gpu: expected a string, number"):
        load_cases(cases)


# -- two real servers ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def second(runtime: Runtime, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ManagedServer]:
    """A second real server beside the session's ``comfy``: a pool of two."""
    server = start_server(runtime, tmp_path_factory.mktemp("second"), log=lambda message: None)
    yield server
    server.stop()


GRID = (
    "workflow: workflows/image_pipeline.json\ncases:\n"
    "  - id: grid\n    matrix: {Blur.blur_radius: [1, 2, 3], Resize.width: [64, 96]}\n"
    "    inputs:\n      LoadImage: {image: {file: inputs/pattern.png}}\n"
    "  - id: fox\n    workflow: workflows/txt2img.json\n    seed: 3\n"
)


def outcomes(result: pytest.RunResult) -> list[str]:
    """The short test summary lines (-rA), without xdist's worker prefix, sorted."""
    lines = [line.split(" - ")[0] for line in result.outlines]
    return sorted(
        line.replace("[gw0] ", "").replace("[gw1] ", "")
        for line in lines
        if line.startswith(("PASSED", "FAILED", "ERROR", "SKIPPED"))
    )


def baseline_files(root: Path) -> dict[str, bytes]:
    return {
        path.relative_to(root).as_posix(): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def test_two_servers_under_xdist_judge_and_write_like_serial(
    pytester: pytest.Pytester, project: Path, comfy: ManagedServer, second: ManagedServer
) -> None:
    cases = project / "cases/grid.yaml"
    cases.write_text(GRID)
    pool = (f"--comfy-url={comfy.url}", f"--comfy-url={second.url}", "-p", "no:cacheprovider")
    parallel = pytester.runpytest_subprocess(
        *pool, "-n", "2", "--comfy-update=missing", "--comfy-baselines=parallel"
    )
    parallel.assert_outcomes(passed=7)
    parallel.stdout.fnmatch_lines(["outputs: 7 created"])
    record = json.loads((project / ".comfytest/results/run.json").read_text())
    assert record["header"]["servers"] == sorted([comfy.url, second.url]), "both servers used"
    assert record["header"]["xdist_workers"] == 2

    serial = pytester.runpytest_subprocess(
        *pool, "-n", "0", "--comfy-update=missing", "--comfy-baselines=serial"
    )
    serial.assert_outcomes(passed=7)
    record = json.loads((project / ".comfytest/results/run.json").read_text())
    assert record["header"]["servers"] == [comfy.url], "without xdist: the first server"
    made = baseline_files(project / "parallel")
    assert len([name for name in made if name.endswith(".png")]) == 7
    assert made == baseline_files(project / "serial"), "byte-identical baselines"

    cases.write_text(GRID.replace("[1, 2, 3]", "[1, 2, 4]").replace("seed: 3", "seed: 4"))
    verdicts = [
        outcomes(pytester.runpytest_subprocess(*pool, "-rA", "--comfy-baselines=serial", *n))
        for n in (["-n", "0"], ["-n", "2"])
    ]
    assert verdicts[0] == verdicts[1], "the same verdicts with -n 0 and -n 2"
    assert sum(line.startswith(("FAILED", "ERROR ")) for line in verdicts[0]) == 3
    assert sum(line.startswith("PASSED") for line in verdicts[0]) == 4


def test_a_case_runs_only_on_a_server_with_its_tags(
    pytester: pytest.Pytester, project: Path, comfy: ManagedServer, second: ManagedServer
) -> None:
    (project / "cases/t.yaml").write_text(
        "workflow: workflows/image_pipeline.json\n"
        "inputs:\n  LoadImage: {image: {file: inputs/pattern.png}}\ncases:\n"
        "  - id: on-h100\n    server: {gpu: h100}\n"
        "  - id: on-h100-too\n    server: {gpu: h100}\n    inputs: {Blur: {blur_radius: 2}}\n"
        "  - id: on-t4\n    server: {gpu: t4}\n"
        "  - id: anywhere\n    inputs: {Blur: {blur_radius: 3}}\n"
    )
    result = pytester.runpytest_subprocess(
        f"--comfy-url={comfy.url} gpu=h100",
        f"--comfy-url={second.url} gpu=a100",
        "-n",
        "2",
        "--comfy-update=missing",
        "-rs",
        "-p",
        "no:cacheprovider",
    )
    result.assert_outcomes(passed=3, skipped=1)
    result.stdout.fnmatch_lines(
        [
            f"SKIPPED * no server has the tags this case requires (gpu=t4); servers: "
            f"{comfy.url} (gpu=h100); {second.url} (gpu=a100)"
        ]
    )
    record = json.loads((project / ".comfytest/results/run.json").read_text())
    cases = {case["id"].split("::")[1]: case for case in record["cases"]}
    assert cases["on-h100"]["server"] == comfy.url
    assert cases["on-h100-too"]["server"] == comfy.url, "whichever worker ran it"
    assert cases["on-t4"]["outcome"] == "skipped"
    assert "gpu=t4" in cases["on-t4"]["message"]


def test_managed_servers_shared_by_the_workers_are_all_stopped(
    pytester: pytest.Pytester, project: Path, runtime: Runtime
) -> None:
    (project / "cases/grid.yaml").write_text(GRID)
    result = pytester.runpytest_subprocess(
        "--comfy-launch",
        "--comfy-servers=2",
        "-n",
        "2",
        f"--comfy-home={runtime.root.parent.parent}",
        "--comfy-update=missing",
        "-p",
        "no:cacheprovider",
    )
    result.assert_outcomes(passed=7)
    result.stdout.fnmatch_lines(
        ["ComfyUI at http://127.0.0.1:* (managed, shared by the xdist workers, 2 started in *)"] * 2
    )
    record = json.loads((project / ".comfytest/results/run.json").read_text())
    assert len(record["header"]["servers"]) == 2, "each worker on its own of the two servers"
    assert processes_mentioning(str(project / ".comfytest" / "servers")) == [], "all stopped"


def test_a_case_whose_server_is_lost_runs_again_on_another(
    runtime: Runtime, project: Path, tmp_path: Path, comfy: ManagedServer
) -> None:
    # A dedicated server to kill; the session's server is the other one of the pool.
    doomed = start_server(runtime, tmp_path / "doomed", log=lambda message: None)
    (project / "cases/t.yaml").write_text(
        "workflow: workflows/txt2img.json\nseed: 1\ncases:\n"
        "  - id: a-before\n"
        "  - id: b-long\n    inputs: {KSampler: {steps: 300}}\n"
        "  - id: c-after\n"
        "  - id: d-only-on-the-lost-one\n    server: {only: doomed}\n"
    )
    log = project / "pytest.log"
    try:
        process = start_pytest(
            project,
            f"--comfy-url={doomed.url} only=doomed",  # home: the first server
            f"--comfy-url={comfy.url}",
            "--comfy-update=missing",
            "--comfy-timeout=600",  # the cases must not wait for this
            "-rE",
        )
        # b may start before a ends: wait for a's result, not only for b's prompt.
        stop_mid_run(
            process,
            project,
            doomed.url,
            300,
            "a-before PASSED",
            lambda: os.killpg(doomed.pid, signal.SIGKILL),
            hang_guard=300,
        )
    finally:
        doomed.stop()
    output = log.read_text()
    assert process.returncode == pytest.ExitCode.TESTS_FAILED, output
    assert "3 passed, 1 error" in output, output
    assert "Traceback" not in output
    assert "ERROR cases/t.yaml::d-only-on-the-lost-one - " in output
    assert f"retried on another server: cases/t.yaml::b-long ({doomed.url} lost" in output
    record = json.loads((project / ".comfytest/results/run.json").read_text())
    cases = {case["id"].split("::")[1]: case for case in record["cases"]}
    assert {name: (case["outcome"], case["server"]) for name, case in cases.items()} == {
        "a-before": ("passed", doomed.url),
        "b-long": ("passed", comfy.url),
        "c-after": ("passed", comfy.url),
        "d-only-on-the-lost-one": ("error", None),
    }
    assert cases["b-long"]["retried"]["lost"] == doomed.url
    assert cases["b-long"]["retried"]["on"] == comfy.url
    assert cases["b-long"]["retried"]["error"].startswith("ComfyUI went away while the prompt ran")
    assert cases["a-before"]["retried"] is None
    assert "still does not answer" in cases["d-only-on-the-lost-one"]["message"]
