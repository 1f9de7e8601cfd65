"""Verdicts a reviewer can act on: a change within tolerance is visible, a lost output
fails, and the advice printed is safe and runnable (issue 15), against the real server."""

from __future__ import annotations

import json
import shlex
import shutil
from pathlib import Path

import pytest
from PIL import Image

from comfytest.runtime import ManagedServer

TWO_OUTPUTS = "workflow: workflows/upscale_two_outputs.json\nseed: 5\ncases:\n  - id: two\n"


def nudge(png: Path, values: int) -> None:
    """The baseline with ``values`` values moved by one level: hardware-sized noise."""
    with Image.open(png) as opened:
        image = opened.convert("RGB")
    pixels = image.load()
    assert pixels is not None
    for i in range(values):
        x, y = i % image.width, i // image.width
        r, g, b = pixels[x, y]  # type: ignore[misc]
        pixels[x, y] = (r + 1 if r < 255 else r - 1, g, b)
    image.save(png)


def test_a_pass_whose_pixels_changed_is_marked_everywhere(
    pytester: pytest.Pytester, project: Path, comfy: ManagedServer
) -> None:
    (project / "cases/t.yaml").write_text(TWO_OUTPUTS)
    url = ["--comfy-url", comfy.url, "-p", "no:cacheprovider"]
    pytester.runpytest(*url, "--comfy-update=missing").assert_outcomes(passed=1)
    folder = project / "baselines/t/two"
    first = sorted(folder.glob("*.png"))[0]
    nudge(first, 3)
    junit = project / "junit.xml"
    result = pytester.runpytest(*url, f"--junitxml={junit}", "--comfy-report=report.html")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["cases/t.yaml::two*passed: 1 changed within tolerance*"])
    (case,) = json.loads((project / ".comfytest/results/run.json").read_text())["cases"]
    assert case["changed_within_tolerance"] == [first.stem]
    assert f'name="comfytest_changed_within_tolerance" value="[&quot;{first.stem}&quot;]"' in (
        junit.read_text()
    )
    assert "changed within tolerance" in (project / "report.html").read_text()


def test_a_baseline_whose_output_is_no_longer_produced_fails_naming_it(
    pytester: pytest.Pytester, project: Path, comfy: ManagedServer
) -> None:
    (project / "cases/t.yaml").write_text(TWO_OUTPUTS)
    url = ["--comfy-url", comfy.url, "-p", "no:cacheprovider"]
    pytester.runpytest(*url, "--comfy-update=missing").assert_outcomes(passed=1)
    made = sorted(p.name for p in (project / "baselines/t/two").glob("*.png"))
    assert len(made) == 2
    workflow = project / "cases/workflows/upscale_two_outputs.json"
    graph = json.loads(workflow.read_text())
    saves = sorted(n for n, node in graph.items() if node["class_type"] == "SaveImage")
    removed = saves[-1]
    del graph[removed]
    workflow.write_text(json.dumps(graph))
    result = pytester.runpytest(*url)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            f"*two: output {removed} (* #0) was not produced",
            "  the workflow no longer produces this output, but its baseline is still there*",
        ]
    )
    result.stdout.no_fnmatch_line("*accept it:*")
    # An update run takes the new set of outputs; the lost baseline is left for --comfy-prune.
    kept = pytester.runpytest(*url, "--comfy-update=all")
    kept.assert_outcomes(passed=1)
    kept.stdout.fnmatch_lines(["baselines unused (--comfy-prune deletes them): 1"])
    assert sorted(p.name for p in (project / "baselines/t/two").glob("*.png")) == made
    pruned = pytester.runpytest(*url, "--comfy-update=all", "--comfy-prune")
    pruned.assert_outcomes(passed=1)
    pruned.stdout.fnmatch_lines([f"*baselines/t/two/{removed}-0.png*"])
    left = sorted(p.name for p in (project / "baselines/t/two").glob("*.png"))
    assert left == [name for name in made if not name.startswith(f"{removed}-")]


def test_the_printed_accept_command_is_complete_and_works_when_pasted(
    pytester: pytest.Pytester, project: Path, comfy: ManagedServer
) -> None:
    (project / "cases/t.yaml").write_text(TWO_OUTPUTS)
    result = pytester.runpytest(
        "--comfy-url", comfy.url, "--comfy-keep=all", "-p", "no:cacheprovider"
    )
    result.assert_outcomes(errors=1)
    # One command (under CI=true pytest repeats the whole message in its short summary).
    (line,) = {ln.strip() for ln in result.stdout.lines if "accept it: " in ln}
    command = shlex.split(line.split("accept it: ", 1)[1])
    assert command[:2] == ["pytest", "cases/t.yaml::two"]
    assert command[2:] == ["--comfy-url", comfy.url, "--comfy-keep=all", "--comfy-update=missing"]
    pytester.runpytest(*command[1:], "-p", "no:cacheprovider").assert_outcomes(passed=1)
    pytester.runpytest("--comfy-url", comfy.url, "-p", "no:cacheprovider").assert_outcomes(passed=1)


def test_a_corrupt_baseline_gets_no_accept_advice(
    pytester: pytest.Pytester, project: Path, comfy: ManagedServer
) -> None:
    (project / "cases/t.yaml").write_text(TWO_OUTPUTS)
    url = ["--comfy-url", comfy.url, "-p", "no:cacheprovider"]
    pytester.runpytest(*url, "--comfy-update=missing").assert_outcomes(passed=1)
    first = sorted((project / "baselines/t/two").glob("*.png"))[0]
    first.write_bytes(first.read_bytes()[:40])  # truncated, as a failed checkout leaves it
    broken = first.read_bytes()
    result = pytester.runpytest(*url)
    result.assert_outcomes(errors=1)  # a baseline problem, not a regression
    result.stdout.fnmatch_lines(["*has an unreadable baseline", "  the baseline is corrupt (*"])
    result.stdout.fnmatch_lines(["cases/t.yaml::two  error: 1 unreadable baseline*"])
    result.stdout.no_fnmatch_line("*accept it:*")
    pytester.runpytest(*url, "--comfy-update=changed").assert_outcomes(errors=1)
    assert first.read_bytes() == broken, "an update run does not write over it"
    shutil.rmtree(project / "baselines")
