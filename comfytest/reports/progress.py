"""Live sampler progress for long cases, from the WebSocket's ``progress`` messages."""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["LiveProgress"]

#: A case shows progress only once it has run this long: short cases stay one line each.
LONG_CASE_S = 2.0


class LiveProgress:
    """A ``ProgressCallback`` that writes a line per node at each quarter of its steps.

    A node's lines start once it has been reporting progress for ``after_s`` seconds, so
    short samplers (and server start-up time) write nothing."""

    def __init__(
        self,
        write: Callable[[str], None],
        *,
        after_s: float = LONG_CASE_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._write = write
        self._after_s = after_s
        self._clock = clock
        self._first: dict[str, tuple[float, int]] = {}
        self._shown: dict[str, int] = {}

    def __call__(self, node: str, value: int, maximum: int) -> None:
        now = self._clock()
        first = self._first.setdefault(node, (now, value))
        if maximum <= 0 or now - first[0] < self._after_s:
            return
        quarter = 4 * value // maximum
        if quarter <= self._shown.get(node, 0) and value < maximum:
            return
        if self._shown.get(node) == 4:
            return
        self._shown[node] = quarter
        elapsed = now - first[0]
        rate = f", {(value - first[1]) / elapsed:.1f} it/s" if elapsed > 0 else ""
        self._write(f"    node {node}: {value}/{maximum} ({100 * value // maximum}%){rate}")
