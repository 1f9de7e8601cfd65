"""Comparison and the baseline lifecycle, on images made in code."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import imagehash
import numpy as np
import pytest
from PIL import Image

from comfytest.atomic import atomic_write
from comfytest.judging.baselines import BaselineStore
from comfytest.judging.compare import GPU_PROFILE, Tolerance, compare
from comfytest.judging.manifest import write_manifest


def texture(seed: int, size: tuple[int, int] = (64, 64)) -> Image.Image:
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (size[1] // 8, size[0] // 8, 3), dtype=np.uint8)
    return Image.fromarray(base).resize(size, Image.Resampling.BICUBIC)


def nudge(image: Image.Image, amount: int) -> Image.Image:
    pixels = np.asarray(image, dtype=np.int16).copy()
    value = int(pixels[0, 0, 0])
    pixels[0, 0, 0] = value + amount if value + amount <= 255 else value - amount
    return Image.fromarray(pixels.astype(np.uint8))


def scatter(image: Image.Image, count: int, levels: int, seed: int = 0) -> Image.Image:
    """``image`` with ``count`` random values moved by +-``levels``: simulated hardware noise."""
    values = np.asarray(image, dtype=np.int16).copy()
    flat = values.reshape(-1)
    where = np.random.default_rng(seed).choice(flat.size, size=count, replace=False)
    flat[where] = np.where(flat[where] + levels <= 255, flat[where] + levels, flat[where] - levels)
    return Image.fromarray(values.astype(np.uint8))


def test_identical_pixels_are_reported_as_identical() -> None:
    result = compare(texture(1), texture(1), Tolerance())
    assert result.identical
    assert result.passed
    assert result.describe() == "pixels identical"


def test_unrelated_images_are_far_apart() -> None:
    result = compare(texture(1), texture(2), Tolerance())
    assert not result.passed
    assert result.values == 64 * 64 * 3
    assert result.values_beyond > 10000
    assert result.failures() == [
        f"{result.values_beyond} of 12288 values ({result.diff_ratio:.3%}) differ by more than "
        "1 level, > 0.10% allowed"
    ]
    gpu = compare(texture(1), texture(2), Tolerance(**GPU_PROFILE))
    assert gpu.phash_distance > 10
    assert gpu.failures() == [f"phash distance {gpu.phash_distance} > 2 allowed"]


def test_the_default_passes_hardware_noise_and_fails_a_change_spread_over_the_image() -> None:
    """+-1 level anywhere, and +-2 in up to 0.1 % of the values, is noise (another CPU moves
    a few values by 1 level); +-2 in 0.5 % of them is beyond the default."""
    base = texture(1)
    for noisy in (scatter(base, 1229, 1), scatter(base, 8, 2), scatter(base, 12, 2)):
        result = compare(noisy, base, Tolerance())
        assert result.passed, result.describe()
        assert not result.identical
    spread = compare(scatter(base, 62, 2), base, Tolerance())
    assert not spread.passed
    assert spread.failures() == [
        "62 of 12288 values (0.505%) differ by more than 1 level, > 0.10% allowed"
    ]
    assert spread.describe().startswith(
        "62 of 12288 values (0.505%) differ by more than 1 level (> 0.10% allowed); "
        "max pixel diff 2; mean pixel diff 0.010; PSNR"
    )
    assert spread.measures()[0] == {
        "name": "max_diff_ratio",
        "value": 0.005046,
        "limit": 0.001,
        "passed": False,
        "used": 5.0456,
    }
    looser = Tolerance(pixel_threshold=2)
    assert compare(scatter(base, 62, 2), base, looser).passed, "2 levels is now within"


def test_one_value_changed_passes_the_default_but_not_an_exact_tolerance() -> None:
    changed = nudge(texture(1), 40)
    loose = compare(changed, texture(1), Tolerance())
    assert loose.passed
    assert not loose.identical
    assert loose.max_pixel_diff == 40
    strict = compare(changed, texture(1), Tolerance(max_pixel_diff=0))
    assert not strict.passed
    assert "max pixel diff 40 (allowed 0)" in strict.describe()


@pytest.mark.parametrize("mode", ["L", "LA", "RGB", "RGBA", "I;16", "I", "F"])
@pytest.mark.parametrize("band_values", [1 << 20, 500])
def test_pixel_metrics_are_exact_in_every_mode(
    mode: str, band_values: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Max, mean and PSNR equal a plain numpy computation over all values, whether the
    differences are counted by PIL (8 bits), by numpy (16 bits) or widened (32 bits),
    in one band of rows or many."""
    monkeypatch.setattr(sys.modules["comfytest.judging.pixels"], "BAND_VALUES", band_values)
    one, other = (texture(seed, (48, 40)).convert(mode) for seed in (1, 2))
    if mode == "I;16":  # use the high bits too
        one, other = (Image.fromarray(np.asarray(i, np.uint16) * 257) for i in (one, other))
    assert one.mode == mode
    a, b = (np.asarray(image).astype(np.float64) for image in (one, other))
    diff = np.abs(a - b)
    result = compare(one, other, Tolerance())
    assert result.max_pixel_diff == math.ceil(diff.max()) > 0  # float images: rounded up
    assert result.mean_pixel_diff == pytest.approx(diff.mean())
    assert result.psnr == pytest.approx(10 * np.log10(255**2 / np.square(diff).mean()))
    assert result.values == diff.size
    assert result.values_beyond == np.count_nonzero(diff > 1)
    assert compare(one, one.copy(), Tolerance()).identical


def test_float_images_a_fraction_apart_are_not_identical() -> None:
    one = Image.fromarray(np.zeros((8, 8), np.float32))
    other = Image.fromarray(np.full((8, 8), 0.25, np.float32))
    result = compare(one, other, Tolerance(phash=None, max_pixel_diff=0))
    assert not result.identical
    assert result.mean_pixel_diff == pytest.approx(0.25)
    assert not result.passed, "max_pixel_diff 0 allows no difference at all"


def test_size_mismatch_is_its_own_verdict() -> None:
    result = compare(texture(1, (64, 64)), texture(1, (64, 32)), Tolerance(phash=64))
    assert not result.passed
    assert result.describe() == "size/mode differ: actual 64x64 RGB, baseline 64x32 RGB"


def store(tmp_path: Path, update: str) -> BaselineStore:
    return BaselineStore(tmp_path / "baselines", tmp_path / "results", update)


def judge(s: BaselineStore, image: Image.Image) -> str:
    return s.judge("suite/case", "9-0", "9 (SaveImage #0)", image, Tolerance()).status


def test_lifecycle(tmp_path: Path) -> None:
    baseline = tmp_path / "baselines" / "suite" / "case" / "9-0.png"
    kept = tmp_path / "results" / "suite" / "case" / "9-0.png"
    assert judge(store(tmp_path, "none"), texture(1)) == "missing"
    assert kept.is_file()
    assert not baseline.exists()
    assert judge(store(tmp_path, "missing"), texture(1)) == "created"
    assert baseline.is_file()
    assert judge(store(tmp_path, "none"), texture(1)) == "passed"
    assert judge(store(tmp_path, "missing"), texture(2)) == "failed", "missing never rewrites"
    assert judge(store(tmp_path, "none"), texture(2)) == "failed"
    assert np.array_equal(np.asarray(Image.open(kept)), np.asarray(texture(2)))
    assert judge(store(tmp_path, "changed"), texture(2)) == "updated"
    assert judge(store(tmp_path, "none"), texture(2)) == "passed"
    before = baseline.read_bytes()
    assert judge(store(tmp_path, "changed"), nudge(texture(2), 1)) == "passed"
    assert baseline.read_bytes() == before, "changed rewrites only outputs beyond tolerance"
    assert judge(store(tmp_path, "all"), nudge(texture(2), 1)) == "updated"
    assert baseline.read_bytes() != before
    assert judge(store(tmp_path, "all"), nudge(texture(2), 1)) == "passed"


def test_the_manifest_pHash_is_used_only_for_the_bytes_it_describes(tmp_path: Path) -> None:
    """A differing output is hashed once, not twice, when the manifest's pHash belongs to the
    baseline PNG as it is on disk; a baseline replaced by hand is hashed afresh."""
    assert judge(store(tmp_path, "missing"), texture(1)) == "created"
    write_manifest(tmp_path / "baselines", "suite/case", {})
    manifest = tmp_path / "baselines" / "suite" / "case" / "manifest.json"
    recorded = json.loads(manifest.read_text())
    fresh = imagehash.phash(texture(1))
    assert recorded["outputs"]["9-0"]["phash"] == str(fresh)
    # Seen through a recorded hash with every bit flipped, the distance says it was used.
    flipped = imagehash.ImageHash(~fresh.hash)
    recorded["outputs"]["9-0"]["phash"] = str(flipped)
    manifest.write_text(json.dumps(recorded))

    def distance() -> int:
        found = store(tmp_path, "none").judge(
            "suite/case", "9-0", "9", nudge(texture(1), 60), Tolerance(phash=64)
        )
        assert found.comparison is not None
        return found.comparison.phash_distance

    changed = imagehash.phash(nudge(texture(1), 60))
    assert distance() == changed - flipped
    assert judge(store(tmp_path, "none"), texture(1)) == "passed", "identical: no hash asked"
    # The same pixels in other bytes (a PNG saved elsewhere): the record no longer applies.
    texture(1).save(tmp_path / "baselines" / "suite" / "case" / "9-0.png", compress_level=1)
    assert distance() == changed - fresh


def test_baselines_hold_pixels_only(tmp_path: Path) -> None:
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_text("prompt", '{"3": {}}')
    source = tmp_path / "comfy.png"
    texture(3).save(source, pnginfo=info)
    with Image.open(source) as opened:
        judge(store(tmp_path, "missing"), opened.copy())
    with Image.open(tmp_path / "baselines" / "suite" / "case" / "9-0.png") as saved:
        assert "prompt" not in saved.info


def test_a_corrupt_baseline_fails_with_its_path(tmp_path: Path) -> None:
    s = store(tmp_path, "none")
    path = s.baseline_path("suite/case", "9-0")
    atomic_write(path, b"\x89PNG\r\n\x1a\n truncated")
    verdict = s.judge("suite/case", "9-0", "9", texture(1), Tolerance())
    assert verdict.status == "failed"
    assert verdict.problem.startswith("the baseline is corrupt")
    assert f"git checkout -- {path}" in verdict.problem
    assert verdict.baseline_corrupt
    assert not verdict.acceptable
    assert verdict.baseline == path


@pytest.mark.parametrize("update", ["none", "changed", "all"])
def test_a_git_lfs_pointer_is_named_and_never_written_over(tmp_path: Path, update: str) -> None:
    s = store(tmp_path, update)
    path = s.baseline_path("suite/case", "9-0")
    pointer = b"version https://git-lfs.github.com/spec/v1\noid sha256:ab\nsize 12\n"
    atomic_write(path, pointer)
    verdict = s.judge("suite/case", "9-0", "9", texture(1), Tolerance())
    assert verdict.status == "failed"
    assert verdict.problem.startswith("the baseline is a Git LFS pointer, not the image")
    assert "git lfs pull" in verdict.problem
    assert not verdict.acceptable
    assert path.read_bytes() == pointer, "an update run leaves it as it is"


def test_atomic_write_leaves_old_content_when_interrupted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "b" / "x.png"
    atomic_write(path, b"old")

    def boom(src: str, dst: str) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr("os.replace", boom)
    with pytest.raises(KeyboardInterrupt):
        atomic_write(path, b"new")
    assert path.read_bytes() == b"old"
    assert [p.name for p in path.parent.iterdir()] == ["x.png"], "no temp file left behind"


def test_unknown_update_mode_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="none, missing, changed, all"):
        store(tmp_path, "sometimes")


def test_failing_output_keeps_actual_baseline_copy_and_amplified_diff(tmp_path: Path) -> None:
    s = store(tmp_path, "missing")
    assert judge(s, texture(1)) == "created"
    changed = nudge(texture(1), 3)
    verdict = store(tmp_path, "none").judge(
        "suite/case", "9-0", "9", changed, Tolerance(max_pixel_diff=0)
    )
    assert verdict.status == "failed"
    results = tmp_path / "results" / "suite" / "case"
    assert verdict.actual == results / "9-0.png"
    assert verdict.diff == results / "9-0.diff.png"
    with Image.open(results / "9-0.baseline.png") as copy, Image.open(verdict.diff) as diff:
        assert np.array_equal(np.asarray(copy), np.asarray(texture(1)))
        pixels = np.asarray(diff)
        assert pixels.max() == 255, "a 3-level difference is amplified to white"
        assert np.count_nonzero(pixels) == 1, "only the changed pixel lights up"
    # The next passing run removes the evidence of the old failure.
    assert judge(store(tmp_path, "none"), texture(1)) == "passed"
    assert list(results.iterdir()) == []


def test_keep_all_keeps_evidence_for_passing_outputs(tmp_path: Path) -> None:
    judge(store(tmp_path, "missing"), texture(1))
    s = BaselineStore(tmp_path / "baselines", tmp_path / "results", "none", keep="all")
    verdict = s.judge("suite/case", "9-0", "9", texture(1), Tolerance())
    assert verdict.status == "passed"
    names = sorted(p.name for p in (tmp_path / "results" / "suite" / "case").iterdir())
    assert names == ["9-0.baseline.png", "9-0.diff.png", "9-0.png"]


def test_every_hash_can_be_judged_and_reported() -> None:
    tolerance = Tolerance(
        max_diff_ratio=None, phash=64, dhash=0, whash=64, colorhash=64, min_psnr=90.0
    )
    result = compare(texture(1), texture(2), tolerance)
    assert set(result.distances) == {"phash", "dhash", "whash", "colorhash"}
    assert result.distances["dhash"] > 0
    assert result.failures() == [
        f"dhash distance {result.distances['dhash']} > 0 allowed",
        f"PSNR {result.psnr:.1f} dB < 90.0 dB required",
    ]
    off = compare(
        texture(1), texture(2), Tolerance(phash=None, max_diff_ratio=None, max_pixel_diff=255)
    )
    assert off.distances == {}, "phash: null turns the hash off"
    assert off.passed


def test_per_output_tolerance_by_key_or_node() -> None:
    tolerance = Tolerance(phash=2, outputs={"12": {"phash": 30}, "12-1": {"phash": 5}})
    assert tolerance.for_output("9-0").phash == 2
    assert tolerance.for_output("12-0").phash == 30
    assert tolerance.for_output("12-1").phash == 5
    assert tolerance.for_output("12-0").outputs == {}
