"""--comfy-reuse: a managed server started by one run, reused by the next, gone when idle."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from comfytest.runtime import Runtime
from comfytest.runtime.registry import running

from .test_runtime import home_of, wait_until_gone

FOX = "workflow: workflows/txt2img.json\nseed: 42\ncases:\n  - id: fox\n"


@pytest.fixture
def home(runtime: Runtime, tmp_path: Path) -> Iterator[Path]:
    """A comfytest home of this test's own (its servers/), with the installed runtimes."""
    own = tmp_path / "home"
    own.mkdir()
    for name in ("runtimes", "venvs"):
        (own / name).symlink_to(home_of(runtime) / name)
    yield own
    for state in running(own):  # whatever the test left running
        subprocess.run(
            [sys.executable, "-m", "comfytest.cli", "runtime", "stop", "--home", str(own)],
            check=False,
        )
        wait_until_gone([int(state["pid"])])


def reuse_run(pytester: pytest.Pytester, home: Path, *args: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess(
        "--comfy-reuse", f"--comfy-home={home}", "-p", "no:cacheprovider", *args
    )


def pids(home: Path) -> list[int]:
    return sorted(int(state["pid"]) for state in running(home))


def case_of(project: Path) -> dict[str, object]:
    record = json.loads((project / ".comfytest/results/run.json").read_text())
    case: dict[str, object] = record["cases"][0]
    return case


def test_a_reused_server_gives_the_same_verdicts_and_says_it_is_warm(
    pytester: pytest.Pytester, project: Path, home: Path
) -> None:
    (project / "cases/fox.yaml").write_text(FOX)
    first = reuse_run(pytester, home, "--comfy-update=missing")
    first.assert_outcomes(passed=1)
    first.stdout.fnmatch_lines(
        [
            "ComfyUI 0.3.75 at http://127.0.0.1:* (managed, reusable, ready in * s; it stays up "
            "900 s after the last run ('comfytest runtime stop' ends it))"
        ]
    )
    assert case_of(project)["timings"]["cold"] is True  # type: ignore[index]
    [pid] = pids(home)
    assert wait_until_gone([pid], within=0.5) == [pid], "it outlives the run"
    folder = Path(running(home)[0]["run_dir"])
    assert (folder / "object_info.json").is_file(), "its node definitions, for the next runs"

    again = reuse_run(pytester, home)
    again.assert_outcomes(passed=1)
    again.stdout.fnmatch_lines(
        [
            "ComfyUI 0.3.75 at http://127.0.0.1:* (managed, reused: started * s ago by an earlier "
            "run, models kept loaded; exits 900 s after the last run)"
        ]
    )
    assert pids(home) == [pid], "the same server"
    case = case_of(project)
    assert case["timings"]["cold"] is False, "its models were loaded: reported warm"  # type: ignore[index]
    assert case["outputs"] == {"9-0": "passed"}
    assert case["comparisons"]["9-0"]["max_pixel_diff"] == 0  # type: ignore[index]

    # Other server arguments are another server; this one exits by itself once idle, and
    # not while the run that holds it goes on (the run lasts longer than its timeout).
    other = reuse_run(
        pytester, home, "--comfy-server-arg=--dont-print-server", "--comfy-reuse-idle=1"
    )
    other.assert_outcomes(passed=1)
    other.stdout.fnmatch_lines(["* (managed, reusable, ready in * s; it stays up 1 s after *"])
    [new] = [p for p in pids(home) if p != pid]
    assert wait_until_gone([new], within=60) == [], "it exited once idle"
    assert pids(home) == [pid]
    folders = [p.name for p in (home / "servers").iterdir() if p.is_dir()]
    assert folders == [Path(running(home)[0]["run_dir"]).name], "its folder went with it"

    stopped = subprocess.run(
        [sys.executable, "-m", "comfytest.cli", "runtime", "stop", "--home", str(home)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert f"(pid {pid})" in stopped.stdout
    assert wait_until_gone([pid]) == []
    assert running(home) == []


def test_reuse_excludes_a_url_and_several_servers(pytester: pytest.Pytester, project: Path) -> None:
    (project / "cases/fox.yaml").write_text(FOX)
    url = pytester.runpytest("--comfy-reuse", "--comfy-url=http://127.0.0.1:9")
    url.stderr.fnmatch_lines(["ERROR: --comfy-url and --comfy-reuse exclude each other: pick one"])
    many = pytester.runpytest("--comfy-reuse", "--comfy-servers=2")
    many.stderr.fnmatch_lines(["ERROR: --comfy-reuse keeps one server for later runs; *"])
    idle = pytester.runpytest("--comfy-reuse", "--comfy-reuse-idle=soon")
    idle.stderr.fnmatch_lines(["ERROR: --comfy-reuse-idle=soon: expected a positive number *"])
