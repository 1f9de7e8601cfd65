"""Images as comfytest reads and writes them: frames decoded one at a time, pixels-only PNGs,
and the amplified difference kept as evidence."""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from PIL import Image, ImageChops, ImageSequence

from comfytest.atomic import atomic_write

__all__ = [
    "DECODE_ERRORS",
    "Frames",
    "Unreadable",
    "difference_image",
    "png_bytes",
    "read_frames",
    "write_png",
]


class Unreadable(Exception):
    """An image that cannot be decoded; ``side`` is "actual" or "baseline"."""

    def __init__(self, side: str, reason: BaseException) -> None:
        self.side = side
        self.reason = reason
        super().__init__(f"{side} is not a readable image: {reason}")


#: What PIL raises on a truncated or corrupt file.
DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError)


class Frames:
    """The frames of an image file, a download, or decoded images, decoded one at a time.

    Judging walks two animations side by side, holding one frame of each rather than both
    animations; only writing a PNG (a new baseline, evidence) decodes every frame at once.
    A file that cannot be decoded raises ``Unreadable`` naming its ``side``."""

    def __init__(
        self, source: Path | bytes | Image.Image | list[Image.Image], side: str = "actual"
    ) -> None:
        self._source = [source] if isinstance(source, Image.Image) else source
        self.side = side
        self._count: int | None = None

    def __len__(self) -> int:
        if isinstance(self._source, list):
            return len(self._source)
        if self._count is None:
            with self._decoding(), self._open() as opened:
                self._count = int(getattr(opened, "n_frames", 1))
        return self._count

    def __iter__(self) -> Iterator[Image.Image]:
        if isinstance(self._source, list):
            yield from self._source
            return
        with self._decoding(), self._open() as opened:
            for frame in ImageSequence.Iterator(opened):
                frame.load()
                yield frame  # the same object, moved on to the next frame: copy to keep it

    def all(self) -> list[Image.Image]:
        return [frame.copy() for frame in self]

    def at(self, index: int) -> Image.Image:
        for position, frame in enumerate(self):
            if position == index:
                return frame.copy()
        raise IndexError(index)

    def _open(self) -> Image.Image:
        source = self._source
        assert not isinstance(source, list)
        return Image.open(io.BytesIO(source) if isinstance(source, bytes) else source)

    @contextlib.contextmanager
    def _decoding(self) -> Iterator[None]:
        try:
            yield
        except DECODE_ERRORS as exc:
            raise Unreadable(self.side, exc) from None


def read_frames(source: Path | bytes) -> list[Image.Image]:
    """Every frame of an image file or download (one for a still image), decoded."""
    with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as opened:
        return [frame.copy() for frame in ImageSequence.Iterator(opened)]


def difference_image(actual: Image.Image, baseline: Image.Image) -> Image.Image:
    """Per-pixel |actual - baseline|, scaled so the largest difference is white."""
    # In 8 bits through PIL: one image's worth of memory, however big the image.
    diff = ImageChops.difference(actual.convert("RGB"), baseline.convert("RGB"))
    extrema: Any = diff.getextrema()  # one (low, high) pair per band of an RGB image
    peak = max(int(high) for _low, high in extrema)
    return diff.point(lambda value: int(value * 255.0 / peak)) if peak else diff


def png_bytes(frames: Image.Image | list[Image.Image]) -> bytes:
    """Pixels only: a PNG (an APNG for several frames) with no text chunks, so equal pixels
    give equal bytes."""
    buffer = io.BytesIO()
    _save_png(frames, buffer)
    return buffer.getvalue()


def write_png(path: Path, frames: Image.Image | list[Image.Image]) -> None:
    """``png_bytes`` written atomically to ``path``, encoded straight into the file."""
    atomic_write(path, lambda handle: _save_png(frames, handle))


def _save_png(frames: Image.Image | list[Image.Image], handle: IO[bytes]) -> None:
    frames = frames if isinstance(frames, list) else [frames]
    extra: dict[str, Any] = (
        {"save_all": True, "append_images": frames[1:]} if len(frames) > 1 else {}
    )
    frames[0].save(handle, format="PNG", optimize=False, compress_level=9, **extra)
