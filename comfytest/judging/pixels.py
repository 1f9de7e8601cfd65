"""Pixel differences of two decoded images of one size and mode, band by band of rows."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from PIL import Image, ImageChops

__all__ = ["BAND_VALUES", "pixel_differences"]

#: Values per band of rows when differencing pixels: memory stays bounded on big images.
BAND_VALUES = 1 << 20
#: Modes of 8 bits per band, differenced by PIL itself (mode "1" is 0/1 through numpy).
EIGHT_BIT_MODES = frozenset(
    {"L", "LA", "La", "P", "PA", "RGB", "RGBA", "RGBa", "RGBX", "CMYK", "YCbCr", "LAB", "HSV"}
)


def pixel_differences(
    actual: Image.Image, baseline: Image.Image, threshold: int
) -> tuple[int, float, float, int, int]:
    """Max, sum and sum of squares of |actual - baseline| over all values, their count, and
    how many differ by more than ``threshold``.

    Band by band of rows, so a 2048x2048 image needs a few MiB beside its pixels, not
    hundreds. The differences are counted in a histogram (exact, no widening): PIL's own
    for 8-bit images (``ImageChops.difference``, in C), numpy's for 16-bit ones."""
    width, height = actual.size
    row_values = width * len(actual.getbands())
    rows = max(1, BAND_VALUES // max(1, row_values))
    histogram: Any = None
    max_diff, total, squares, beyond = 0, 0.0, 0.0, 0
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
            beyond += int(np.count_nonzero(wide > threshold))
    if histogram is not None:
        levels = np.arange(histogram.size, dtype=np.int64)
        used = np.nonzero(histogram)[0]
        max_diff = max(max_diff, int(used[-1]) if used.size else 0)
        total += float((histogram * levels).sum())
        squares += float((histogram * levels * levels).sum())
        beyond += int(histogram[threshold + 1 :].sum())
    return max_diff, total, squares, count, beyond
