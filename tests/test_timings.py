"""Timings per case, repeats, and the results JSON of a run."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from PIL import Image

from comfytest.runner.result import spread
from comfytest.runtime import ManagedServer


def test_spread_reports_median_min_max_and_iqr() -> None:
    result = spread([1.0, 2.0, 3.0, 4.0, 100.0])
    assert result["n"] == 5
    assert result["median_s"] == 3.0
    assert (result["min_s"], result["max_s"]) == (1.0, 100.0)
    assert result["iqr_s"] == pytest.approx(52.0 - 1.5)  # quartiles, "exclusive" method
    assert spread([])["n"] == 0


def test_timings_repeats_and_the_run_record(
    pytester: pytest.Pytester, project: Path, comfy: ManagedServer
) -> None:
    (project / "cases/t.yaml").write_text(
        "workflow: workflows/txt2img.json\nseed: 1\ncases:\n"
        "  - id: first\n  - id: bench\n    repeat: 3\n    warmup: 1\n"
        "    inputs: {KSampler: {steps: 8}}\n"
    )
    # comfytest unloads models only on a server it manages: here, as the server's owner,
    # the test does it, so the first case has to load its model.
    httpx.post(f"{comfy.url}/free", json={"unload_models": True, "free_memory": True})
    result = pytester.runpytest(
        "--comfy-url",
        comfy.url,
        "--comfy-update=missing",
        "-p",
        "no:cacheprovider",
        "-p",
        "no:randomly",
    )
    result.assert_outcomes(passed=2)
    record = json.loads((project / ".comfytest/results/run.json").read_text())
    header = record["header"]
    assert header["servers"] == [comfy.url]
    assert header["xdist_workers"] == 0
    assert header["environment"]["comfyui_version"] == "0.3.75"
    first, bench = sorted(record["cases"], key=lambda c: c["id"].endswith("bench"))
    assert first["stop"] <= bench["start"], "each case says when it ran"
    assert bench["stop"] - bench["start"] == pytest.approx(bench["duration_s"], abs=0.01)
    assert first["timings"]["cold"] is True, "the first run after /free loads the model"
    assert bench["timings"]["cold"] is False, "later runs find it loaded"
    timings = bench["timings"]
    assert timings["queue_wait_s"] >= 0
    assert timings["execution_s"] > 0
    assert set(timings["nodes_s"]) >= {"3", "8", "9"}, "sampler, decode and save were timed"
    assert timings["iterations_per_s"]["3"] > 0, "sampler speed from progress messages"
    repeats = timings["repeats"]
    assert repeats["n"] == 3
    assert repeats["warmup"] == 1
    assert repeats["min_s"] <= repeats["median_s"] <= repeats["max_s"]
    assert all(run > 0 for run in repeats["runs_s"])
    assert bench["cached_nodes"] == ["4"], "every repeat samples afresh; only the loader is kept"
    assert first["outputs"] == {"9-0": "created"}


def test_compare_with_a_saved_run(
    pytester: pytest.Pytester, project: Path, comfy: ManagedServer
) -> None:
    # Sampling takes long enough (and 5 repeats are enough) that the server's periodic
    # garbage-collection stall (~170 ms every 10 s) cannot make the spread exceed the median.
    (project / "cases/t.yaml").write_text(
        "workflow: workflows/txt2img.json\nseed: 1\n"
        "cases:\n  - id: p\n    repeat: 5\n    inputs: {KSampler: {steps: 8}}\n"
    )
    pytester.runpytest("--comfy-url", comfy.url, "--comfy-update=missing").assert_outcomes(passed=1)
    saved = project / "saved.json"
    saved.write_text((project / ".comfytest/results/run.json").read_text())

    again = pytester.runpytest("--comfy-url", comfy.url, f"--comfy-compare={saved}")
    again.assert_outcomes(passed=1)
    again.stdout.fnmatch_lines(
        [f"timings against {saved}:", "  cases/t.yaml::p: * s vs * s saved: *x"]
    )

    record = json.loads(saved.read_text())
    record["cases"][0]["timings"]["repeats"].update(median_s=0.0001, iqr_s=0.0)
    saved.write_text(json.dumps(record))
    slow = pytester.runpytest(
        "--comfy-url", comfy.url, f"--comfy-compare={saved}", "--comfy-slower-than=1.5"
    )
    slow.assert_outcomes(failed=1)
    slow.stdout.fnmatch_lines(
        ["p: slower than the saved run: * s vs 0.000 s saved: *x, limit 1.5x + * s spread"]
    )

    parallel = pytester.runpytest_subprocess(
        "--comfy-url", comfy.url, "-n", "2", f"--comfy-compare={saved}", "--comfy-slower-than=1.5"
    )
    parallel.assert_outcomes(passed=1)
    parallel.stdout.fnmatch_lines(
        [
            "timings not compared with *: no common timed cases, or it ran with another number of xdist workers"
        ]
    )


def test_sweep_report_grid_chart_and_table(
    pytester: pytest.Pytester, project: Path, comfy: ManagedServer
) -> None:
    (project / "cases/s.yaml").write_text(
        "workflow: workflows/txt2img.json\nseed: 3\ncases:\n  - id: grid\n"
        "    matrix: {steps: [2, 4, 8], cfg: [2.0, 6.0]}\n    reference: {steps: 8, cfg: 6.0}\n"
    )
    result = pytester.runpytest("--comfy-url", comfy.url, "--comfy-update=missing")
    result.assert_outcomes(passed=6)
    report = project / ".comfytest/results/s/grid/sweep"
    result.stdout.fnmatch_lines([f"sweep report: {report}/ (grid.png, chart.png, table.md)"])
    table = (report / "table.md").read_text().splitlines()
    assert table[2] == "reference: steps=8, cfg=6.0"
    rows = [line.split(" | ") for line in table[6:]]
    assert [(r[0].strip("| "), r[1]) for r in rows] == [
        ("2", "2.0"),
        ("2", "6.0"),
        ("4", "2.0"),
        ("4", "6.0"),
        ("8", "2.0"),
        ("8", "6.0"),
    ]
    assert rows[-1][3:] == ["0", "0.0", "inf |"], "the reference is at distance 0"
    assert int(rows[1][3]) > 0, "2 steps look different from 8"
    with Image.open(report / "grid.png") as grid:
        assert grid.width >= 120 + 2 * 128, "2 columns"
        assert grid.height >= 3 * 128, "3 rows"
    with Image.open(report / "chart.png") as chart:
        assert chart.width > 300


def test_sweep_reference_must_be_a_cell(pytester: pytest.Pytester, project: Path) -> None:
    (project / "cases/s.yaml").write_text(
        "workflow: workflows/txt2img.json\nseed: 3\ncases:\n  - id: grid\n"
        "    matrix: {steps: [2, 4]}\n    reference: {steps: 5}\n"
    )
    result = pytester.runpytest("--comfy-url=http://127.0.0.1:9", "--collect-only")
    result.stdout.fnmatch_lines(["*s.yaml:6: reference: {'steps': 5} is not a cell of this sweep"])
