"""The noise floor: how far repeated runs of the same prompt drift from each other.

Every run after the first is compared with the first, by every hash and pixel metric. A
server that reproduces pixels exactly is deterministic, and the suggested tolerance is
exact; otherwise the suggestion sits just above the spread that was measured.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from PIL import Image

from comfytest.judging.compare import HASHES, Tolerance, compare

__all__ = ["OutputNoise", "summarize"]

_EVERY = Tolerance(phash=0, dhash=0, whash=0, colorhash=0)


@dataclass(frozen=True)
class OutputNoise:
    """The spread of one output over repeated runs."""

    key: str
    runs: int
    max_distances: dict[str, int]
    max_pixel_diff: int
    min_psnr: float

    @property
    def deterministic(self) -> bool:
        return self.max_pixel_diff == 0

    def suggested_tolerance(self) -> dict[str, Any]:
        """A tolerance that would have passed every run, with a small margin."""
        if self.deterministic:
            return {"phash": 0, "max_pixel_diff": 0}
        return {
            "phash": self.max_distances.get("phash", 0) + 1,
            "max_pixel_diff": min(255, self.max_pixel_diff + math.ceil(self.max_pixel_diff / 4)),
            "min_psnr": math.floor(self.min_psnr - 1),
        }

    def as_dict(self) -> dict[str, Any]:
        return {
            "runs": self.runs,
            "deterministic": self.deterministic,
            "max_distances": self.max_distances,
            "max_pixel_diff": self.max_pixel_diff,
            "min_psnr": None if math.isinf(self.min_psnr) else round(self.min_psnr, 2),
            "suggested_tolerance": self.suggested_tolerance(),
        }


def summarize(key: str, images: Sequence[Image.Image]) -> OutputNoise:
    """Compare runs 2..N of one output with run 1."""
    first, rest = images[0], images[1:]
    comparisons = [compare(image, first, _EVERY) for image in rest]
    if any(c.size_mismatch for c in comparisons):
        return OutputNoise(key, len(images), dict.fromkeys(HASHES, 64), 255, 0.0)
    return OutputNoise(
        key,
        len(images),
        {name: max((c.distances.get(name, 0) for c in comparisons), default=0) for name in HASHES},
        max((c.max_pixel_diff for c in comparisons), default=0),
        min((c.psnr for c in comparisons), default=math.inf),
    )
