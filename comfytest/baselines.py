"""Where baselines live, the one lifecycle every output goes through, and atomic writes.

Layout: ``<baselines>/<case file>/<case id>[/<sweep cell>]/<node>-<index>.png`` (the
``folder`` of each call below), pixels only (the PNG
that ComfyUI wrote carries the prompt in text chunks; the baseline does not).

Lifecycle per output, by update mode:

===========  =================  ===============================  ==================
baseline     none (default)     missing                          changed / all
===========  =================  ===============================  ==================
absent       fail (missing)     create                           create
within tol.  pass               pass                             pass (all: rewrite
                                                                 if pixels differ)
beyond tol.  fail               fail                             update
===========  =================  ===============================  ==================
"""

from __future__ import annotations

import io
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from comfytest.compare import Comparison, Tolerance, compare

__all__ = ["UPDATE_MODES", "BaselineStore", "Verdict", "atomic_write"]

UPDATE_MODES = ("none", "missing", "changed", "all")


@dataclass(frozen=True)
class Verdict:
    """The outcome for one output. ``status`` is passed|failed|missing|created|updated."""

    key: str
    label: str
    status: str
    baseline: Path
    actual: Path | None = None
    comparison: Comparison | None = None
    problem: str = ""

    @property
    def ok(self) -> bool:
        return self.status in ("passed", "created", "updated")


class BaselineStore:
    """Baselines under ``root``; actual images of failing outputs kept under ``results``."""

    def __init__(self, root: Path, results: Path, update: str = "none") -> None:
        if update not in UPDATE_MODES:
            raise ValueError(f"update mode must be one of {', '.join(UPDATE_MODES)}")
        self.root = root
        self.results = results
        self.update = update

    def baseline_path(self, folder: str, key: str) -> Path:
        return self.root / folder / f"{key}.png"

    def judge(
        self,
        folder: str,
        key: str,
        label: str,
        actual: Image.Image,
        tolerance: Tolerance,
    ) -> Verdict:
        """Compare ``actual`` with its baseline and apply the update mode."""
        path = self.baseline_path(folder, key)
        if not path.exists():
            if self.update == "none":
                kept = self._keep_actual(folder, key, actual)
                return Verdict(key, label, "missing", path, kept)
            atomic_write(path, png_bytes(actual))
            return Verdict(key, label, "created", path)
        try:
            with Image.open(path) as opened:
                baseline = opened.copy()
        except (OSError, SyntaxError) as exc:
            if self.update in ("changed", "all"):
                atomic_write(path, png_bytes(actual))
                return Verdict(key, label, "updated", path)
            kept = self._keep_actual(folder, key, actual)
            return Verdict(key, label, "failed", path, kept, problem=f"baseline unreadable: {exc}")
        comparison = compare(actual, baseline, tolerance)
        rewrite = (self.update == "changed" and not comparison.passed) or (
            self.update == "all" and not comparison.identical
        )
        if rewrite:
            atomic_write(path, png_bytes(actual))
            return Verdict(key, label, "updated", path, comparison=comparison)
        if comparison.passed:
            return Verdict(key, label, "passed", path, comparison=comparison)
        kept = self._keep_actual(folder, key, actual)
        return Verdict(key, label, "failed", path, kept, comparison=comparison)

    def _keep_actual(self, folder: str, key: str, image: Image.Image) -> Path:
        path = self.results / folder / f"{key}.png"
        atomic_write(path, png_bytes(image))
        return path


def png_bytes(image: Image.Image) -> bytes:
    """Pixels only: a PNG with no text chunks, so equal pixels give equal bytes."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=False, compress_level=9)
    return buffer.getvalue()


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
