"""Judge an image against its baseline: perceptual hash distances plus pixel metrics.

Pixels are compared after decoding, never PNG bytes (ComfyUI embeds the prompt in the file).

Hashes (imagehash): ``phash`` (DCT, the default verdict), ``dhash`` (gradients), ``whash``
(Haar wavelets) and ``colorhash`` (hue/saturation histogram). Each is computed only when its
tolerance is set; its distance is the Hamming distance in bits. Pixel metrics: max and mean
absolute difference (0-255) and PSNR (dB). ``benchmarks/hash_sensitivity.py`` measures what
each one sees on the tiny SD1.5 model; the defaults below come from it.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import imagehash
import numpy as np
from PIL import Image, ImageChops

__all__ = [
    "DEFAULT_HASH_SIZE",
    "DEFAULT_PHASH_TOLERANCE",
    "HASHES",
    "Comparison",
    "FrameSource",
    "Tolerance",
    "compare",
    "compare_frames",
]

#: 8x8 = 64-bit hashes, imagehash's default.
DEFAULT_HASH_SIZE = 8
#: Bits of pHash distance allowed by default. On the tiny SD1.5 model a different seed moves
#: the hash 26-38 bits, another prompt 10-18, cfg 7 -> 1 6-16, but steps 20 -> 19 only 0-2;
#: a deterministic CPU server reproduces 0. Add ``max_pixel_diff`` to see small changes.
DEFAULT_PHASH_TOLERANCE = 2

#: Values per band of rows when differencing pixels: memory stays bounded on big images.
BAND_VALUES = 1 << 20
#: Modes of 8 bits per band, differenced by PIL itself (mode "1" is 0/1 through numpy).
EIGHT_BIT_MODES = frozenset(
    {"L", "LA", "La", "P", "PA", "RGB", "RGBA", "RGBa", "RGBX", "CMYK", "YCbCr", "LAB", "HSV"}
)

HashFunction = Callable[[Image.Image, int], Any]
HASHES: dict[str, HashFunction] = {
    "phash": lambda image, size: imagehash.phash(image, hash_size=size),
    "dhash": lambda image, size: imagehash.dhash(image, hash_size=size),
    "whash": lambda image, size: imagehash.whash(image, hash_size=size),
    # colorhash's size is its bits per histogram bin, not a grid: 3 is imagehash's default.
    "colorhash": lambda image, size: imagehash.colorhash(image, binbits=3),
}


@dataclass(frozen=True)
class Tolerance:
    """How far an output may drift from its baseline and still pass.

    A hash tolerance of ``None`` means that hash is not computed. ``outputs`` holds
    overrides for single outputs, by key (``"12-0"``) or node id (``"12"``).
    """

    phash: int | None = DEFAULT_PHASH_TOLERANCE
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
    #: For animations: how many frames, and which frame this evidence is about.
    frames: int = 1
    frame: int | None = None

    @property
    def phash_distance(self) -> int:
        return self.distances.get("phash", 0)

    @property
    def identical(self) -> bool:
        return self.size_mismatch is None and self.max_pixel_diff == 0

    def failures(self) -> list[str]:
        """What is beyond tolerance, one phrase each."""
        if self.size_mismatch:
            return [self.size_mismatch]
        tol = self.tolerance
        found = [
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
    # Band by band of rows, so a 2048x2048 image needs a few MiB beside its pixels, not
    # hundreds: numpy sees one band of each image at a time.
    max_diff, total, squares, count = _pixel_differences(actual, baseline)
    if max_diff == 0:
        return Comparison(tolerance, distances=dict.fromkeys(tolerance.hashes(), 0))
    distances = {}
    for name in tolerance.hashes():
        known = None
        if name == "phash" and tolerance.hash_size == DEFAULT_HASH_SIZE and stored_phash:
            known = stored_phash()
        theirs = _from_hex(known) if known else HASHES[name](baseline, tolerance.hash_size)
        distances[name] = int(HASHES[name](actual, tolerance.hash_size) - theirs)
    return Comparison(
        tolerance,
        distances=distances,
        max_pixel_diff=max_diff,
        mean_pixel_diff=total / count,
        psnr=10 * math.log10(255**2 / (squares / count)),
    )


def _from_hex(text: str) -> imagehash.ImageHash:
    """A 64-bit hash from its hex form; ``imagehash.hex_to_hash``'s result, 8x faster."""
    bits = np.unpackbits(np.frombuffer(bytes.fromhex(text), np.uint8))
    return imagehash.ImageHash(bits.astype(bool).reshape(DEFAULT_HASH_SIZE, DEFAULT_HASH_SIZE))


def _pixel_differences(actual: Image.Image, baseline: Image.Image) -> tuple[int, float, float, int]:
    """Max, sum and sum of squares of |actual - baseline| over all values, and their count.

    Band by band of rows, so a 2048x2048 image needs a few MiB beside its pixels, not
    hundreds. The differences are counted in a histogram (exact, no widening): PIL's own
    for 8-bit images (``ImageChops.difference``, in C), numpy's for 16-bit ones."""
    width, height = actual.size
    row_values = width * len(actual.getbands())
    rows = max(1, BAND_VALUES // max(1, row_values))
    histogram: Any = None
    max_diff, total, squares = 0, 0.0, 0.0
    count = row_values * height
    for top in range(0, height, rows):
        whole = top == 0 and rows >= height
        box = (0, top, width, min(height, top + rows))
        a_band, b_band = (image if whole else image.crop(box) for image in (actual, baseline))
        if a_band.mode in EIGHT_BIT_MODES:
            difference = ImageChops.difference(a_band, b_band)
            if difference.getbbox(alpha_only=False):  # None: all zero, nothing to count
                counts = np.asarray(difference.histogram(), np.int64)
                found = counts.reshape(-1, 256).sum(axis=0)  # one row per band
                histogram = found if histogram is None else histogram + found
            continue
        a, b = np.asarray(a_band).reshape(-1), np.asarray(b_band).reshape(-1)
        if a.dtype == np.uint16 and a.dtype == b.dtype:
            diff = np.maximum(a, b)
            diff -= np.minimum(a, b)
            found = np.bincount(diff, minlength=1 << 16)
            histogram = found if histogram is None else histogram + found
            continue
        wide = np.abs(a.astype(np.float64) - b)  # 32-bit, float and 1-bit images: rare
        if wide.size:
            max_diff = max(max_diff, math.ceil(float(wide.max())))  # 0.25 apart: not equal
            total += float(wide.sum())
            squares += float(np.square(wide).sum())
    if histogram is not None:
        levels = np.arange(histogram.size, dtype=np.int64)
        used = np.nonzero(histogram)[0]
        max_diff = max(max_diff, int(used[-1]) if used.size else 0)
        total += float((histogram * levels).sum())
        squares += float((histogram * levels * levels).sum())
    return max_diff, total, squares, count


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
