"""The noise floor: repeated runs with the cache defeated, and what they say."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from comfytest.judging.noise import summarize
from comfytest.runtime import ManagedServer

from .test_judging import nudge, texture


def test_identical_runs_are_deterministic_and_suggest_exact_tolerance() -> None:
    spread = summarize("9-0", [texture(1), texture(1), texture(1)])
    assert spread.deterministic
    assert spread.suggested_tolerance() == {"phash": 0, "max_pixel_diff": 0}


def test_drifting_runs_are_flagged_and_get_a_tolerance_above_the_spread() -> None:
    spread = summarize("9-0", [texture(1), nudge(texture(1), 8), nudge(texture(1), 3)])
    assert not spread.deterministic
    assert spread.max_pixel_diff == 8
    assert spread.suggested_tolerance()["max_pixel_diff"] == 10
    assert spread.suggested_tolerance()["min_psnr"] < spread.min_psnr
    assert spread.as_dict()["deterministic"] is False


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
            "  cases/two.yaml::up 9-0: 3 runs, deterministic; max phash 0, max pixel diff 0, *",
        ]
    )
    saved = json.loads((project / ".comfytest/results/noise_floor.json").read_text())
    assert saved["cases/two.yaml::up 9-0"]["runs"] == 3
    assert not (project / "baselines").exists(), "a noise-floor run judges no baselines"
