"""The noise floor: repeated runs with the cache defeated, and what they say."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from comfytest.judging.noise import summarize
from comfytest.runtime import ManagedServer

from .test_judging import nudge, scatter, texture


def test_bit_exact_runs_still_get_a_margin_for_other_machines() -> None:
    """Reruns on one machine say nothing about another CPU or a GPU: no exact suggestion."""
    spread = summarize("9-0", [texture(1), texture(1), texture(1)])
    assert spread.deterministic
    assert spread.suggested_tolerance() == {"pixel_threshold": 1, "max_diff_ratio": 0.001}
    assert "max_pixel_diff" not in spread.suggested_tolerance()
    reason = spread.reason()
    assert reason.startswith("reruns here are bit-exact, but that says nothing about another")
    assert "another x86-64 CPU moved 1-8 of 12,288 values" in reason
    assert spread.as_dict()["reason"] == reason


def test_runs_a_few_values_apart_get_the_default() -> None:
    spread = summarize("9-0", [texture(1), nudge(texture(1), 8), nudge(texture(1), 3)])
    assert not spread.deterministic
    assert spread.max_pixel_diff == 8
    assert spread.suggested_tolerance() == {"pixel_threshold": 1, "max_diff_ratio": 0.001}
    assert spread.reason().startswith("reruns here differ by up to 8 levels")
    assert spread.as_dict()["deterministic"] is False


def test_runs_beyond_the_pixel_limit_get_phash_above_the_spread() -> None:
    noisy = [texture(1), scatter(texture(1), 600, 3, seed=1), scatter(texture(1), 600, 3, seed=2)]
    spread = summarize("9-0", noisy)
    assert spread.max_diff_ratio == pytest.approx(600 / 12288)
    suggested = spread.suggested_tolerance()
    assert suggested == {"phash": max(2, spread.max_distances["phash"] + 2), "max_diff_ratio": None}
    assert "will not hold on another" in spread.reason()


def test_noise_floor_run_reports_every_output(
    pytester: pytest.Pytester, project: Path, comfy: ManagedServer
) -> None:
    (project / "cases/two.yaml").write_text(
        "workflow: workflows/upscale_two_outputs.json\nseed: 3\ncases:\n  - id: up\n"
    )
    result = pytester.runpytest(
        "--comfy-url", comfy.url, "--comfy-noise-floor=3", "-p", "no:cacheprovider"
    )
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        [
            "noise floor (each run against the first):",
            "  cases/two.yaml::up 12-0: 3 runs, deterministic; *",
            "    why: reruns here are bit-exact, but that says nothing about another CPU *",
            "  cases/two.yaml::up 9-0: 3 runs, deterministic; max phash 0, max pixel diff 0, *",
            "    why: reruns here are bit-exact, *",
        ]
    )
    saved = json.loads((project / ".comfytest/results/noise_floor.json").read_text())
    assert saved["cases/two.yaml::up 9-0"]["runs"] == 3
    suggested = saved["cases/two.yaml::up 9-0"]["suggested_tolerance"]
    assert suggested == {"pixel_threshold": 1, "max_diff_ratio": 0.001}, "a margin, not exact"
    assert "another x86-64 CPU" in saved["cases/two.yaml::up 9-0"]["reason"]
    assert not (project / "baselines").exists(), "a noise-floor run judges no baselines"
