"""Sweep cells: ids that are readable and distinct for any value, and the size limits."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
from PIL import Image

from comfytest.cases.cells import DIGEST_MARK, value_digest
from comfytest.cases.loader import load_cases
from comfytest.defaults import SWEEP_MAX_CELLS, SWEEP_WARN_CELLS
from comfytest.errors import CaseError, SweepSizeWarning
from comfytest.runtime import ManagedServer
from tests.test_cases import WORKFLOW

REPO = Path(__file__).resolve().parent.parent

PROMPTS = ["狐", "きつね", "лиса", "renard rusé", "🦊 fox", "한국", "a red fox", "a_red_fox"]


@pytest.fixture
def case_dir(tmp_path: Path) -> Path:
    (tmp_path / "wf.json").write_text(json.dumps(WORKFLOW, indent=2))
    return tmp_path


def sweep(case_dir: Path, axis: str, values: list[object], extra: str = "") -> Path:
    path = case_dir / "c.yaml"
    path.write_text(
        "workflow: wf.json\nseed: 1\ncases:\n  - id: t\n"
        f"    matrix:\n      {axis}: {json.dumps(values, ensure_ascii=False)}\n{extra}"
    )
    return path


def cells_by_value(path: Path) -> dict[str, str]:
    return {str(next(iter(c.values.values()))): c.cell for c in load_cases(path)}


def test_the_example_suites_cell_ids_are_its_baseline_folders() -> None:
    cases = load_cases(REPO / "cases/sweeps.yaml", REPO / "cases")
    folders = {
        p.relative_to(REPO / "baselines/sweeps").as_posix()
        for p in REPO.glob("baselines/sweeps/*/*")
    }
    assert {case.folder for case in cases} == folders
    assert all(DIGEST_MARK not in case.cell for case in cases), "ASCII ids carry no digest"


def test_unicode_values_get_distinct_readable_ids_that_follow_the_value(case_dir: Path) -> None:
    forward = cells_by_value(sweep(case_dir, "Positive.text", PROMPTS))
    assert len(set(forward.values())) == len(PROMPTS), forward
    readable = {
        "лиса": "lisa",
        "renard rusé": "renard_ruse",
        "きつね": "kitune",
        "🦊 fox": "fox_face_fox",
        "한국": "hangug",
        "狐": "u72d0",
    }
    for value, text in readable.items():
        assert forward[value] == f"Positive.text={text}{DIGEST_MARK}{value_digest(value)}"
    # A plain ASCII value keeps its id; the one written differently but shown alike is told
    # apart by its digest.
    assert forward["a_red_fox"] == "Positive.text=a_red_fox"
    assert (
        forward["a red fox"] == f"Positive.text=a_red_fox{DIGEST_MARK}{value_digest('a red fox')}"
    )
    backward = cells_by_value(sweep(case_dir, "Positive.text", PROMPTS[::-1]))
    assert backward == forward, "an id belongs to its value, not to its position"


def test_values_shown_alike_of_other_types_are_told_apart(case_dir: Path) -> None:
    path = sweep(case_dir, "KSampler.cfg", [3.0, 7.0])
    assert [c.cell for c in load_cases(path)] == ["KSampler.cfg=3.0", "KSampler.cfg=7.0"]
    seeds = case_dir / "s.yaml"
    seeds.write_text(
        "workflow: wf.json\ncases:\n  - id: t\n    zip:\n"
        "      Positive.text: ['5', '5']\n      seed: [1, 2]\n"
    )
    assert [c.cell for c in load_cases(seeds)] == [
        "Positive.text=5-seed=1",
        "Positive.text=5-seed=2",
    ], "a value repeated in a zip is one value"


def test_a_value_listed_twice_points_at_its_axis(case_dir: Path) -> None:
    with pytest.raises(CaseError) as excinfo:
        load_cases(sweep(case_dir, "KSampler.steps", [5, 6, 5]))
    assert excinfo.value.line == 6
    assert "cell KSampler.steps=5 twice: a value is listed twice" in str(excinfo.value)


def grid(case_dir: Path, size: int, extra: str = "") -> Path:
    path = case_dir / "c.yaml"
    path.write_text(
        "workflow: wf.json\nseed: 1\ncases:\n  - id: t\n"
        f"    matrix:\n      KSampler.steps: {list(range(1, size + 1))}\n"
        f"      KSampler.cfg: [1.0]\n{extra}"
    )
    return path


def test_a_big_sweep_is_warned_about_at_its_line(case_dir: Path) -> None:
    path = grid(case_dir, SWEEP_WARN_CELLS + 1)
    with pytest.warns(SweepSizeWarning, match=f"{SWEEP_WARN_CELLS + 1} cells") as caught:
        cases = load_cases(path)
    assert len(cases) == SWEEP_WARN_CELLS + 1
    assert (caught[0].filename, caught[0].lineno) == (str(path), 5)
    allowed = grid(case_dir, SWEEP_WARN_CELLS + 1, f"    max_cells: {SWEEP_WARN_CELLS + 1}\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(load_cases(allowed)) == SWEEP_WARN_CELLS + 1, "max_cells says it is meant"


def test_a_huge_sweep_is_refused_unless_max_cells_allows_it(case_dir: Path) -> None:
    size = SWEEP_MAX_CELLS + 1
    with pytest.raises(CaseError) as excinfo:
        load_cases(grid(case_dir, size))
    assert excinfo.value.line == 5
    assert f"max_cells: {size}" in str(excinfo.value)
    with pytest.raises(CaseError, match=f"more than its max_cells: {size - 1:,}"):
        load_cases(grid(case_dir, size, f"    max_cells: {size - 1}\n"))
    with pytest.raises(CaseError, match="max_cells: expected an integer >= 1"):
        load_cases(grid(case_dir, 2, "    max_cells: many\n"))
    assert len(load_cases(grid(case_dir, size, f"    max_cells: {size}\n"))) == size


def test_collecting_a_big_sweep_shows_the_warning_at_the_case_file(
    pytester: pytest.Pytester, project: Path
) -> None:
    steps = list(range(1, SWEEP_WARN_CELLS + 2))
    (project / "cases/big.yaml").write_text(
        f"workflow: workflows/txt2img.json\nseed: 1\ncases:\n  - id: big\n"
        f"    matrix:\n      KSampler.steps: {steps}\n"
    )
    # This suite makes warnings errors; a user's run shows them.
    warned = "default::comfytest.errors.SweepSizeWarning"
    result = pytester.runpytest("--collect-only", "-q", "-p", "no:cacheprovider", "-W", warned)
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(
        [f"*cases/big.yaml:5: SweepSizeWarning: big: the sweep has {len(steps)} cells*"]
    )


def test_a_baseline_follows_its_value_when_the_list_is_reordered(
    pytester: pytest.Pytester, project: Path, comfy: ManagedServer
) -> None:
    def write(prompts: list[str]) -> None:
        (project / "cases/fox.yaml").write_text(
            "workflow: workflows/txt2img.json\nseed: 42\ncases:\n  - id: fox\n"
            f"    matrix:\n      Positive.text: {json.dumps(prompts, ensure_ascii=False)}\n"
        )

    def run(*args: str) -> pytest.RunResult:
        return pytester.runpytest("--comfy-url", comfy.url, "-p", "no:cacheprovider", *args)

    write(["лиса", "狐"])
    run("--comfy-update=missing").assert_outcomes(passed=2)
    folders = sorted(p.name for p in (project / "baselines/fox/fox").iterdir())
    assert folders == sorted(
        f"Positive.text={t}+{value_digest(v)}" for t, v in (("lisa", "лиса"), ("u72d0", "狐"))
    )
    images = {Image.open(p).tobytes() for p in (project / "baselines/fox/fox").glob("*/*.png")}
    assert len(images) == 2, "the two prompts make different images: a swap would fail"
    write(["狐", "лиса"])
    reordered = run()
    reordered.assert_outcomes(passed=2)
