"""Judge an image against its baseline: pixel differences, perceptual hashes, PSNR.

Pixels are compared after decoding, never PNG bytes (ComfyUI embeds the prompt in the file).

The default verdict counts values (one channel of one pixel) that differ by more than
``pixel_threshold`` levels, and allows at most ``max_diff_ratio`` of all values beyond it:
like Playwright's per-pixel ``threshold`` with ``maxDiffPixelRatio``, but in plain levels,
because a small real change to a diffusion workflow moves many values by a few levels,
where a screenshot's anti-aliasing moves a few pixels by a lot. ``benchmarks/verdicts.py``
measures both sides on real runs; the defaults below come from it.

Hashes (imagehash): ``phash`` (DCT; the GPU profile), ``dhash`` (gradients), ``whash``
(Haar wavelets) and ``colorhash`` (hue/saturation histogram). Each is computed only when its
tolerance is set; its distance is the Hamming distance in bits. Further pixel metrics: max
and mean absolute difference (0-255) and PSNR (dB).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from PIL import Image

from comfytest.judging.hashes import DEFAULT_HASH_SIZE, HASHES, from_hex
from comfytest.judging.pixels import pixel_differences

__all__ = [
    "DEFAULT_HASH_SIZE",
    "DEFAULT_MAX_DIFF_RATIO",
    "DEFAULT_PHASH_TOLERANCE",
    "DEFAULT_PIXEL_THRESHOLD",
    "GPU_PROFILE",
    "HASHES",
    "Comparison",
    "FrameSource",
    "Tolerance",
    "compare",
    "compare_frames",
]

#: Levels a value may differ by and still count as unchanged: another x86-64 CPU moves a few
#: values of the committed baselines by 1 level.
DEFAULT_PIXEL_THRESHOLD = 1
#: Fraction of values allowed beyond ``pixel_threshold``. The smallest real changes measured
#: (benchmarks/verdicts.py) put 0.6 % (a 3x3 patch of the input edited) to 1.4 % (blur sigma
#: + 0.1) of the values beyond 1 level, most put 10 % or more; +-2 levels in 0.1 % passes.
DEFAULT_MAX_DIFF_RATIO = 0.001
#: Bits of pHash distance allowed by the GPU profile. On the tiny SD1.5 model another seed
#: moves the hash 24-30 bits and one prompt word 4-8, but one step, cfg + 0.5 or another
#: sampler 0-4: pHash tolerates a GPU's noise and misses small changes.
DEFAULT_PHASH_TOLERANCE = 2
#: ``tolerance: gpu``, for a server that does not reproduce pixels: pHash only, no pixel limit.
GPU_PROFILE: dict[str, Any] = {"phash": DEFAULT_PHASH_TOLERANCE, "max_diff_ratio": None}
#: Named tolerances a case file can give instead of a mapping.
PROFILES: dict[str, dict[str, Any]] = {"gpu": GPU_PROFILE}


@dataclass(frozen=True)
class Tolerance:
    """How far an output may drift from its baseline and still pass.

    A hash tolerance of ``None`` means that hash is not computed; ``max_diff_ratio`` of
    ``None`` turns the default pixel limit off. ``outputs`` holds overrides for single
    outputs, by key (``"12-0"``) or node id (``"12"``).
    """

    pixel_threshold: int = DEFAULT_PIXEL_THRESHOLD
    max_diff_ratio: float | None = DEFAULT_MAX_DIFF_RATIO
    phash: int | None = None
    dhash: int | None = None
    whash: int | None = None
    colorhash: int | None = None
    hash_size: int = DEFAULT_HASH_SIZE
    max_pixel_diff: int | None = None
    mean_pixel_diff: float | None = None
    min_psnr: float | None = None
    #: For text outputs: a regular expression the whole text must match, instead of a baseline.
    regex: str | None = None
    outputs: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def for_output(self, key: str) -> Tolerance:
        """The tolerance for output ``key`` ("<node>-<index>"), overrides applied."""
        node = key.rsplit("-", 1)[0]
        override = self.outputs.get(key) or self.outputs.get(node)
        return dataclasses.replace(self, **override, outputs={}) if override else self

    def hashes(self) -> dict[str, int]:
        """The hashes to compute, with their allowed distance."""
        return {name: limit for name in HASHES if (limit := getattr(self, name)) is not None}


@dataclass(frozen=True)
class Comparison:
    """The evidence for one output; ``passed`` is the verdict under its tolerance."""

    tolerance: Tolerance
    size_mismatch: str | None = None
    distances: Mapping[str, int] = field(default_factory=dict)
    max_pixel_diff: int = 0  # a float image's rounded up, so any difference shows
    mean_pixel_diff: float = 0.0
    psnr: float = math.inf
    #: Values (one channel of one pixel) beyond ``tolerance.pixel_threshold``, of ``values``.
    values_beyond: int = 0
    values: int = 0
    #: For animations: how many frames, and which frame this evidence is about.
    frames: int = 1
    frame: int | None = None

    @property
    def phash_distance(self) -> int:
        return self.distances.get("phash", 0)

    @property
    def identical(self) -> bool:
        return self.size_mismatch is None and self.max_pixel_diff == 0

    @property
    def diff_ratio(self) -> float:
        """The fraction of values beyond ``pixel_threshold`` levels."""
        return self.values_beyond / self.values if self.values else 0.0

    def _beyond(self) -> str:
        threshold = self.tolerance.pixel_threshold
        return (
            f"{self.values_beyond} of {self.values} values ({self.diff_ratio:.3%}) differ by "
            f"more than {threshold} level{'s' if threshold != 1 else ''}"
        )

    def failures(self) -> list[str]:
        """What is beyond tolerance, one phrase each."""
        if self.size_mismatch:
            return [self.size_mismatch]
        tol = self.tolerance
        found = []
        if tol.max_diff_ratio is not None and self.diff_ratio > tol.max_diff_ratio:
            found.append(f"{self._beyond()}, > {tol.max_diff_ratio:.2%} allowed")
        found += [
            f"{name} distance {self.distances[name]} > {limit} allowed"
            for name, limit in tol.hashes().items()
            if self.distances.get(name, 0) > limit
        ]
        if tol.max_pixel_diff is not None and self.max_pixel_diff > tol.max_pixel_diff:
            found.append(f"max pixel diff {self.max_pixel_diff} > {tol.max_pixel_diff} allowed")
        if tol.mean_pixel_diff is not None and self.mean_pixel_diff > tol.mean_pixel_diff:
            found.append(
                f"mean pixel diff {self.mean_pixel_diff:.3f} > {tol.mean_pixel_diff} allowed"
            )
        if tol.min_psnr is not None and self.psnr < tol.min_psnr:
            found.append(f"PSNR {self.psnr:.1f} dB < {tol.min_psnr} dB required")
        return found

    @property
    def passed(self) -> bool:
        return not self.failures()

    def describe(self) -> str:
        """One line of evidence: every measure, its limit when one is set."""
        if self.size_mismatch:
            return self.size_mismatch
        if self.identical:
            return "pixels identical" + (f" in all {self.frames} frames" if self.frames > 1 else "")
        tol = self.tolerance
        parts = [] if self.frame is None else [f"frame {self.frame} of {self.frames}"]
        if tol.max_diff_ratio is not None:
            beyond = self.diff_ratio > tol.max_diff_ratio
            parts.append(
                f"{self._beyond()} ({'>' if beyond else '<='} {tol.max_diff_ratio:.2%} allowed)"
            )
        for name, limit in tol.hashes().items():
            distance = self.distances.get(name, 0)
            parts.append(
                f"{name} distance {distance} {'>' if distance > limit else '<='} {limit} allowed"
            )
        parts.append(f"max pixel diff {self.max_pixel_diff}{_allowed(tol.max_pixel_diff)}")
        parts.append(f"mean pixel diff {self.mean_pixel_diff:.3f}{_allowed(tol.mean_pixel_diff)}")
        required = "" if tol.min_psnr is None else f" (required >= {tol.min_psnr})"
        parts.append(f"PSNR {self.psnr:.1f} dB{required}")
        return "; ".join(parts)

    def measures(self) -> list[dict[str, Any]]:
        """Each measure that has a limit: name, value, limit, whether it passes, and how close
        it is to its limit (``used``: 0 is identical, above 1 fails)."""
        tol = self.tolerance
        found: list[dict[str, Any]] = []

        def add(name: str, value: float, limit: float, passed: bool, used: float) -> None:
            found.append(
                {"name": name, "value": value, "limit": limit, "passed": passed, "used": used}
            )

        if tol.max_diff_ratio is not None:
            ratio, allowed = self.diff_ratio, tol.max_diff_ratio
            passed = ratio <= allowed  # the verdict's own comparison, before rounding
            add("max_diff_ratio", round(ratio, 6), allowed, passed, _used(ratio, allowed))
        for name, limit in tol.hashes().items():
            distance = self.distances.get(name, 0)
            add(name, distance, limit, distance <= limit, _used(distance, limit))
        if tol.max_pixel_diff is not None:
            value, limit = self.max_pixel_diff, tol.max_pixel_diff
            add("max_pixel_diff", value, limit, value <= limit, _used(value, limit))
        if tol.mean_pixel_diff is not None:
            mean, allowed = round(self.mean_pixel_diff, 4), tol.mean_pixel_diff
            add("mean_pixel_diff", mean, allowed, mean <= allowed, _used(mean, allowed))
        if tol.min_psnr is not None and not math.isinf(self.psnr):
            psnr, floor = round(self.psnr, 2), tol.min_psnr
            add("min_psnr", psnr, floor, psnr >= floor, _used(floor, psnr))
        return found

    def as_dict(self) -> dict[str, Any]:
        """Plain numbers for reports (JSON-safe: an infinite PSNR is null)."""
        return {
            "measures": [] if self.size_mismatch else self.measures(),
            **{f"{name}_distance": value for name, value in self.distances.items()},
            "max_pixel_diff": self.max_pixel_diff,
            "mean_pixel_diff": round(self.mean_pixel_diff, 4),
            "psnr": None if math.isinf(self.psnr) else round(self.psnr, 2),
            "pixel_threshold": self.tolerance.pixel_threshold,
            "values_beyond": self.values_beyond,
            "values": self.values,
            "size_mismatch": self.size_mismatch,
            "frames": self.frames,
            "frame": self.frame,
        }


def _used(value: float, limit: float) -> float:
    """How much of its limit a measure uses: 0.5 is half-way, above 1 is beyond."""
    if limit > 0:
        return round(value / limit, 4)
    return 0.0 if value <= 0 else 1.0 + value  # a zero limit: any difference is beyond it


def _allowed(limit: float | None) -> str:
    return "" if limit is None else f" (allowed {limit})"


class FrameSource(Protocol):
    """Frames that can be counted and walked one at a time (a list, or ``Frames``)."""

    def __len__(self) -> int: ...

    def __iter__(self) -> Iterator[Image.Image]: ...


def compare(
    actual: Image.Image,
    baseline: Image.Image,
    tolerance: Tolerance,
    stored_phash: Callable[[], str | None] | None = None,
) -> Comparison:
    """Compare two decoded images under ``tolerance``.

    ``stored_phash``, when given, returns the baseline's 64-bit pHash as recorded beside it
    (hex), or None: asked only when the pixels differ, it saves hashing the baseline again."""
    if actual.size != baseline.size or actual.mode != baseline.mode:
        return Comparison(
            tolerance,
            size_mismatch=(
                f"size/mode differ: actual {actual.size[0]}x{actual.size[1]} {actual.mode}, "
                f"baseline {baseline.size[0]}x{baseline.size[1]} {baseline.mode}"
            ),
        )
    max_diff, total, squares, count, beyond = pixel_differences(
        actual, baseline, tolerance.pixel_threshold
    )
    if max_diff == 0:
        hashes = dict.fromkeys(tolerance.hashes(), 0)
        return Comparison(tolerance, distances=hashes, values=count)
    distances = {}
    for name in tolerance.hashes():
        known = None
        if name == "phash" and tolerance.hash_size == DEFAULT_HASH_SIZE and stored_phash:
            known = stored_phash()
        theirs = from_hex(known) if known else HASHES[name](baseline, tolerance.hash_size)
        distances[name] = int(HASHES[name](actual, tolerance.hash_size) - theirs)
    return Comparison(
        tolerance,
        distances=distances,
        max_pixel_diff=max_diff,
        mean_pixel_diff=total / count,
        psnr=10 * math.log10(255**2 / (squares / count)),
        values_beyond=beyond,
        values=count,
    )


def compare_frames(
    actual: FrameSource,
    baseline: FrameSource,
    tolerance: Tolerance,
    stored_phash: Callable[[int], str | None] | None = None,
) -> Comparison:
    """Compare animations frame by frame, holding one frame of each at a time; the evidence
    is the first failing frame's, else the most different frame's.

    A different frame count is its own verdict. A single frame is plain ``compare``;
    ``stored_phash(frame)`` is ``compare``'s, per frame."""
    count = len(actual)
    if count != len(baseline):
        return Comparison(
            tolerance,
            size_mismatch=f"frame count differs: actual {count}, baseline {len(baseline)}",
            frames=count,
        )
    chosen: tuple[int, Comparison] | None = None
    for index, (a, b) in enumerate(zip(actual, baseline, strict=False)):
        stored = functools.partial(stored_phash, index) if stored_phash else None
        result = compare(a, b, tolerance, stored)
        if count == 1:
            return result
        if chosen is None or result.max_pixel_diff > chosen[1].max_pixel_diff:
            chosen = (index, result)
        if not result.passed:
            chosen = (index, result)
            break
    if chosen is None:
        return Comparison(tolerance, size_mismatch="no frames to compare", frames=0)
    worst, found = chosen
    if found.identical:
        return dataclasses.replace(found, frames=count)
    return dataclasses.replace(found, frames=count, frame=worst)
