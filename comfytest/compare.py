"""Judge an image against its baseline: perceptual hash distance plus pixel metrics.

Pixels are compared after decoding, never PNG bytes (ComfyUI embeds the prompt in the file).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import imagehash
import numpy as np
from PIL import Image

__all__ = ["DEFAULT_HASH_SIZE", "DEFAULT_PHASH_TOLERANCE", "Comparison", "Tolerance", "compare"]

#: 8x8 = 64-bit pHash, imagehash's default.
DEFAULT_HASH_SIZE = 8
#: Bits of pHash distance allowed by default. On the tiny SD1.5 model a different seed moves
#: the hash ~26 bits, another prompt ~14, cfg 7 -> 1 ~16, but steps 20 -> 19 only ~2; a
#: deterministic CPU server reproduces 0. Tighten with ``max_pixel_diff`` to see small changes.
DEFAULT_PHASH_TOLERANCE = 2


@dataclass(frozen=True)
class Tolerance:
    """How far an output may drift from its baseline and still pass."""

    phash: int = DEFAULT_PHASH_TOLERANCE
    hash_size: int = DEFAULT_HASH_SIZE
    max_pixel_diff: int | None = None
    mean_pixel_diff: float | None = None


@dataclass(frozen=True)
class Comparison:
    """The evidence for one output; ``passed`` is the verdict under its tolerance."""

    tolerance: Tolerance
    size_mismatch: str | None = None
    phash_distance: int = 0
    max_pixel_diff: int = 0
    mean_pixel_diff: float = 0.0
    psnr: float = math.inf

    @property
    def identical(self) -> bool:
        return self.size_mismatch is None and self.max_pixel_diff == 0

    @property
    def passed(self) -> bool:
        tol = self.tolerance
        return (
            self.size_mismatch is None
            and self.phash_distance <= tol.phash
            and (tol.max_pixel_diff is None or self.max_pixel_diff <= tol.max_pixel_diff)
            and (tol.mean_pixel_diff is None or self.mean_pixel_diff <= tol.mean_pixel_diff)
        )

    def describe(self) -> str:
        """One line of evidence, e.g. ``phash distance 14 > 2 allowed; max pixel diff 68``."""
        if self.size_mismatch:
            return self.size_mismatch
        if self.identical:
            return "pixels identical"
        tol = self.tolerance
        op = ">" if self.phash_distance > tol.phash else "<="
        parts = [f"phash distance {self.phash_distance} {op} {tol.phash} allowed"]
        max_allowed = "" if tol.max_pixel_diff is None else f" (allowed {tol.max_pixel_diff})"
        parts.append(f"max pixel diff {self.max_pixel_diff}{max_allowed}")
        mean_allowed = "" if tol.mean_pixel_diff is None else f" (allowed {tol.mean_pixel_diff})"
        parts.append(f"mean pixel diff {self.mean_pixel_diff:.3f}{mean_allowed}")
        parts.append(f"PSNR {self.psnr:.1f} dB")
        return "; ".join(parts)


def compare(actual: Image.Image, baseline: Image.Image, tolerance: Tolerance) -> Comparison:
    """Compare two decoded images under ``tolerance``."""
    if actual.size != baseline.size or actual.mode != baseline.mode:
        return Comparison(
            tolerance,
            size_mismatch=(
                f"size/mode differ: actual {actual.size[0]}x{actual.size[1]} {actual.mode}, "
                f"baseline {baseline.size[0]}x{baseline.size[1]} {baseline.mode}"
            ),
        )
    a = np.asarray(actual, dtype=np.int16)
    b = np.asarray(baseline, dtype=np.int16)
    diff = np.abs(a - b)
    max_diff = int(diff.max()) if diff.size else 0
    if max_diff == 0:
        return Comparison(tolerance)
    mse = float(np.mean(diff.astype(np.float64) ** 2))
    psnr = 10 * math.log10(255**2 / mse) if mse else math.inf
    distance = imagehash.phash(actual, hash_size=tolerance.hash_size) - imagehash.phash(
        baseline, hash_size=tolerance.hash_size
    )
    return Comparison(
        tolerance,
        phash_distance=int(distance),
        max_pixel_diff=max_diff,
        mean_pixel_diff=float(diff.mean()),
        psnr=psnr,
    )
