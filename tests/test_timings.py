"""Timings per case, repeats, and the results JSON of a run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from comfytest.cases.reference import preference
from comfytest.reports.history import (
    append_history,
    load_history,
    run_summary,
    runs_until,
    trend_lines,
    trends,
)
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
    record = json.loads((project / ".comfytest/results/run.json").read_text())
    # The verdicts below must not hang on this machine's load: the saved run is made far
    # slower (a pass whatever the load), then far faster (a failure whatever the load).
    record["cases"][0]["timings"]["repeats"].update(median_s=1000.0, iqr_s=0.0)
    saved.write_text(json.dumps(record))

    again = pytester.runpytest("--comfy-url", comfy.url, f"--comfy-compare={saved}")
    again.assert_outcomes(passed=1)
    again.stdout.fnmatch_lines(
        [f"timings against {saved}:", "  cases/t.yaml::p: * s vs 1000.000 s saved: *x"]
    )

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
        "    matrix: {steps: [2, 4, 8], cfg: [2.0, 6.0]}\n    reference: {steps: 8}\n"
    )
    result = pytester.runpytest("--comfy-url", comfy.url, "--comfy-update=missing")
    result.assert_outcomes(passed=6)
    report = project / ".comfytest/results/s/grid/sweep"
    result.stdout.fnmatch_lines([f"sweep report: {report}/ (grid.png, chart.png, table.md)"])
    table = (report / "table.md").read_text().splitlines()
    # It names the steps only: of its cells, the default rule takes the highest cfg.
    assert table[2] == (
        "reference: steps=8, cfg=6.0 (named by the case, then the most steps, then the "
        "highest values)"
    )
    rows = [line.split(" | ") for line in table[6:]]
    assert [(r[0].strip("| "), r[1]) for r in rows] == [
        ("2", "2.0"),
        ("2", "6.0"),
        ("4", "2.0"),
        ("4", "6.0"),
        ("8", "2.0"),
        ("8", "6.0"),
    ]
    assert rows[-1][3:] == ["0", "0.0", "inf", "passed (reference) |"], "at distance 0"
    assert all(row[-1] == "passed |" for row in rows[:-1]), "each cell's verdict"
    sweep = json.loads((project / ".comfytest/results/run.json").read_text())["sweeps"][0]
    assert sweep["axes"] == ["steps", "cfg"]
    assert sweep["reference"] == {"steps": 8, "cfg": 6.0}
    assert [c["verdict"] for c in sweep["cells"]] == ["passed"] * 6
    assert sweep["cells"][0]["case"] == "cases/s.yaml::grid[steps=2-cfg=2.0]"
    assert int(rows[1][3]) > 0, "2 steps look different from 8"
    with Image.open(report / "grid.png") as grid:
        assert grid.width >= 120 + 2 * 128, "2 columns"
        assert grid.height >= 3 * 128, "3 rows"
    with Image.open(report / "chart.png") as chart:
        assert chart.width > 300


@pytest.mark.parametrize(
    ("reference", "line", "message"),
    [
        ("{steps: 5}", 7, "reference: steps=5 is not one of the values of steps (2, 4)"),
        (
            "{stpes: 4}",
            7,
            "reference: 'stpes' is not an axis of this sweep (its axes: steps, prompt, seed); "
            "did you mean 'steps'?",
        ),
        ("\n      steps: 4\n      seed: 9", 9, "reference: seed=9 is not one of the values*"),
        ("{prompt: a, seed: 2}", 7, "reference: {'prompt': 'a', 'seed': 2} is not a cell*"),
        ("steps=4", 7, "reference: expected a mapping of axis -> value, e.g. {steps: 20}*"),
    ],
    ids=["value", "axis", "line-of-its-key", "zipped", "not-a-mapping"],
)
def test_sweep_reference_is_checked_at_its_file_and_line(
    pytester: pytest.Pytester, project: Path, reference: str, line: int, message: str
) -> None:
    (project / "cases/s.yaml").write_text(
        "workflow: workflows/txt2img.json\nseed: 3\ncases:\n  - id: grid\n"
        "    matrix: {steps: [2, 4]}\n    zip: {prompt: [a, b], seed: [1, 2]}\n"
        f"    reference: {reference}\n"
    )
    result = pytester.runpytest("--comfy-url=http://127.0.0.1:9", "--collect-only")
    result.stdout.fnmatch_lines([f"*s.yaml:{line}: {message}"])
    assert "Traceback" not in result.stdout.str()


def test_sweep_reference_by_default_is_the_most_steps_then_the_highest_values() -> None:
    """Chosen from the values, never from measured times: the same cell on every run."""
    grid = [{"steps": s, "cfg": c} for s in (5, 10) for c in (3.0, 7.0)]
    assert grid[preference(grid, {})[0]] == {"steps": 10, "cfg": 7.0}
    assert grid[preference(grid, {"cfg": 3.0})[0]] == {"steps": 10, "cfg": 3.0}
    # Steps first wherever the axis is written; values that are not all numbers rank by
    # their place in the list, the last one highest.
    cells = [{"sampler": n, "KSampler.steps": s} for n in ("euler", "dpm", "ddim") for s in (8, 4)]
    assert cells[preference(cells, {})[0]] == {"sampler": "ddim", "KSampler.steps": 8}
    assert preference(cells, {}) == preference(list(cells), {}), "deterministic"


def test_history_keeps_the_last_runs_and_compares_like_with_like(tmp_path: Path) -> None:
    def record(i: int, workers: int = 0) -> dict[str, Any]:
        timings = {"execution_s": 1.0 + i, "cold": i == 0}
        return {
            "header": {"run_id": f"r{i}", "started": f"2025-01-0{i + 1}", "xdist_workers": workers},
            "cases": [{"id": "c", "outcome": "passed", "timings": timings}],
        }

    (tmp_path / "history.jsonl").write_text("not a run\n")
    for i in range(5):
        append_history(tmp_path, record(i), keep=3)
    runs = load_history(tmp_path)
    assert [run["run_id"] for run in runs] == ["r2", "r3", "r4"], "bounded, oldest dropped"
    assert [p["seconds"] for p in trends(runs)["c"]] == [3.0, 4.0, 5.0]
    # A report rendered again later shows the runs up to its own only.
    assert [run["run_id"] for run in runs_until(runs, record(3))] == ["r2", "r3"]
    # Another xdist worker count is not compared with.
    mixed = [*runs, run_summary(record(5, workers=2))]
    assert [p["seconds"] for p in trends(mixed)["c"]] == [6.0]
    lines = trend_lines(mixed, "h")
    assert "3 run(s) with another xdist worker count left out" in lines[0]
    assert len(lines) == 1, "one run of two workers is no trend yet"
