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

import hashlib
import io
import json
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import imagehash
import numpy as np
from PIL import Image, ImageSequence

from comfytest.compare import Comparison, Tolerance, compare_frames

__all__ = [
    "KEEP_MODES",
    "MANIFEST",
    "PENDING_MANIFEST",
    "UPDATE_MODES",
    "BaselineStore",
    "Verdict",
    "atomic_write",
    "delete_baselines",
    "difference_image",
    "read_frames",
    "read_manifest",
    "unused_baselines",
    "write_manifest",
]

UPDATE_MODES = ("none", "missing", "changed", "all")
#: Which outputs keep their evidence (actual, baseline copy, diff) under the results folder.
KEEP_MODES = ("failed", "all")


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
    diff: Path | None = None

    @property
    def ok(self) -> bool:
        return self.status in ("passed", "created", "updated")

    def evidence(self) -> dict[str, Any]:
        """Where a reviewer finds this output's files: the baseline, and when kept, the
        actual output, the copy of the baseline it was judged against, and the difference."""
        copy = self.actual.with_name(f"{self.key}.baseline.png") if self.actual else None
        return {
            "label": self.label,
            "status": self.status,
            "problem": self.problem,
            "baseline": str(self.baseline),
            "actual": str(self.actual) if self.actual else None,
            "baseline_copy": str(copy) if copy and copy.exists() else None,
            "diff": str(self.diff) if self.diff and self.diff.exists() else None,
        }


class BaselineStore:
    """Baselines under ``root``; evidence for failing outputs kept under ``results``.

    For each kept output ``<key>``: ``<key>.png`` (actual), ``<key>.baseline.png`` (a copy of
    the baseline) and ``<key>.diff.png`` (the difference, amplified so the largest is white).
    ``keep="all"`` keeps them for passing outputs too.
    """

    def __init__(
        self, root: Path, results: Path, update: str = "none", keep: str = "failed"
    ) -> None:
        if update not in UPDATE_MODES:
            raise ValueError(f"update mode must be one of {', '.join(UPDATE_MODES)}")
        if keep not in KEEP_MODES:
            raise ValueError(f"keep must be one of {', '.join(KEEP_MODES)}")
        self.root = root
        self.results = results
        self.update = update
        self.keep = keep

    def baseline_path(self, folder: str, key: str) -> Path:
        return self.root / folder / f"{key}.png"

    def judge(
        self,
        folder: str,
        key: str,
        label: str,
        actual: Image.Image | list[Image.Image],
        tolerance: Tolerance,
    ) -> Verdict:
        """Compare an image (or an animation's frames) with its baseline; apply the mode."""
        frames = actual if isinstance(actual, list) else [actual]
        path = self.baseline_path(folder, key)
        if not path.exists():
            if self.update == "none":
                return Verdict(key, label, "missing", path, self._keep(folder, key, frames))
            atomic_write(path, png_bytes(frames))
            return Verdict(key, label, "created", path, self._keep(folder, key, frames, ok=True))
        try:
            baseline = read_frames(path)
        except (OSError, SyntaxError) as exc:
            if self.update in ("changed", "all"):
                atomic_write(path, png_bytes(frames))
                return Verdict(key, label, "updated", path)
            kept = self._keep(folder, key, frames)
            return Verdict(key, label, "failed", path, kept, problem=f"baseline unreadable: {exc}")
        comparison = compare_frames(frames, baseline, tolerance)
        rewrite = (self.update == "changed" and not comparison.passed) or (
            self.update == "all" and not comparison.identical
        )
        status = "updated" if rewrite else "passed" if comparison.passed else "failed"
        kept = self._keep(folder, key, frames, baseline, comparison.frame, ok=status != "failed")
        if rewrite:
            atomic_write(path, png_bytes(frames))
        diff = (
            self.results / folder / f"{key}.diff.png"
            if kept and comparison.size_mismatch is None
            else None
        )
        return Verdict(key, label, status, path, kept, comparison, diff=diff)

    def judge_text(
        self, folder: str, key: str, label: str, text: str, tolerance: Tolerance
    ) -> Verdict:
        """A text output: matched by ``tolerance.regex``, else equal to its ``.txt`` baseline."""
        path = self.root / folder / f"{key}.txt"
        kept_path = self.results / folder / f"{key}.txt"
        if tolerance.regex is not None:
            ok = re.fullmatch(tolerance.regex, text, re.DOTALL) is not None
            problem = "" if ok else f"text {_clip(text)} does not match /{tolerance.regex}/"
            kept = None if ok else kept_path
            if kept:
                atomic_write(kept, text.encode())
            return Verdict(key, label, "passed" if ok else "failed", path, kept, problem=problem)
        if not path.exists() and self.update == "none":
            atomic_write(kept_path, text.encode())
            return Verdict(key, label, "missing", path, kept_path)
        if not path.exists():
            atomic_write(path, text.encode())
            return Verdict(key, label, "created", path)
        expected = path.read_text(encoding="utf-8", errors="replace")
        if expected == text:
            kept_path.unlink(missing_ok=True)
            return Verdict(key, label, "passed", path)
        if self.update in ("changed", "all"):
            atomic_write(path, text.encode())
            return Verdict(key, label, "updated", path)
        atomic_write(kept_path, text.encode())
        problem = f"text {_clip(text)} differs from the baseline {_clip(expected)}"
        return Verdict(key, label, "failed", path, kept_path, problem=problem)

    def _keep(
        self,
        folder: str,
        key: str,
        actual: list[Image.Image],
        baseline: list[Image.Image] | None = None,
        frame: int | None = None,
        *,
        ok: bool = False,
    ) -> Path | None:
        """Write the evidence for one output; for a passing one, only under keep="all"."""
        base = self.results / folder
        paths = [base / f"{key}{suffix}.png" for suffix in ("", ".baseline", ".diff")]
        if ok and self.keep != "all":
            for stale in paths:  # evidence from an earlier failing run would mislead
                stale.unlink(missing_ok=True)
            return None
        atomic_write(paths[0], png_bytes(actual))
        if baseline is not None:
            atomic_write(paths[1], png_bytes(baseline))
            shown = frame or 0
            same_shape = len(baseline) == len(actual) and baseline[0].size == actual[0].size
            if same_shape:
                atomic_write(
                    paths[2], png_bytes([difference_image(actual[shown], baseline[shown])])
                )
        return paths[0]


def read_frames(source: Path | bytes) -> list[Image.Image]:
    """Every frame of an image file or download (one for a still image), decoded."""
    with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as opened:
        return [frame.copy() for frame in ImageSequence.Iterator(opened)]


def _clip(text: str, limit: int = 80) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "...")


MANIFEST = "manifest.json"
#: Beside kept evidence: the manifest the case's baselines would get if accepted.
PENDING_MANIFEST = "manifest.pending.json"


def read_manifest(root: Path, folder: str) -> dict[str, Any] | None:
    """The manifest beside a case's baselines, or None (absent or unreadable)."""
    try:
        data = json.loads((root / folder / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def write_manifest(root: Path, folder: str, data: dict[str, Any]) -> None:
    """Describe a case's baselines (every PNG in its folder) next to them, atomically."""
    outputs: dict[str, Any] = {}
    for png in sorted((root / folder).glob("*.png")):
        try:
            frames = read_frames(png)
        except OSError:
            continue
        pixels = hashlib.sha256(b"".join(np.asarray(f).tobytes() for f in frames))
        outputs[png.stem] = {
            "size": list(frames[0].size),
            "mode": frames[0].mode,
            "frames": len(frames),
            "phash": [str(imagehash.phash(f)) for f in frames]
            if len(frames) > 1
            else str(imagehash.phash(frames[0])),
            "pixels_sha256": pixels.hexdigest()[:16],
        }
    for txt in sorted((root / folder).glob("*.txt")):
        text = txt.read_text(encoding="utf-8", errors="replace")
        outputs[txt.stem] = {"text": text if len(text) <= 200 else text[:200] + "..."}
    manifest = {**data, "outputs": outputs}
    atomic_write(
        root / folder / MANIFEST, (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode()
    )


def unused_baselines(
    root: Path, used: set[tuple[str, str]], untouched_folders: set[str]
) -> list[Path]:
    """Baseline PNGs under ``root`` that no case of a complete run judged.

    ``used`` holds (folder, key) of every output judged; a folder in ``untouched_folders``
    belongs to a case that ran no judgement (skipped, or failed before its outputs), so
    everything in it counts as used.
    """
    used_paths = {root / folder / f"{key}.png" for folder, key in used}
    untouched = [root / folder for folder in untouched_folders]
    used_paths |= {root / folder / f"{key}.txt" for folder, key in used}
    found = sorted([*root.rglob("*.png"), *root.rglob("*.txt")])
    return [
        path
        for path in found
        if path not in used_paths and not any(path.is_relative_to(f) for f in untouched)
    ]


def delete_baselines(root: Path, paths: list[Path]) -> None:
    """Delete baselines, then manifests and folders left describing nothing."""
    for path in paths:
        path.unlink(missing_ok=True)
    for folder in sorted({p.parent for p in paths}, key=lambda p: len(p.parts), reverse=True):
        if not any(folder.glob("*.png")) and not any(folder.glob("*.txt")):
            (folder / MANIFEST).unlink(missing_ok=True)
        while folder != root and folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()
            folder = folder.parent


def difference_image(actual: Image.Image, baseline: Image.Image) -> Image.Image:
    """Per-pixel |actual - baseline|, scaled so the largest difference is white."""
    a = np.asarray(actual.convert("RGB"), dtype=np.int16)
    b = np.asarray(baseline.convert("RGB"), dtype=np.int16)
    diff = np.abs(a - b)
    peak = int(diff.max())
    scaled = diff * (255.0 / peak) if peak else diff
    return Image.fromarray(scaled.astype(np.uint8), "RGB")


def png_bytes(frames: Image.Image | list[Image.Image]) -> bytes:
    """Pixels only: a PNG (an APNG for several frames) with no text chunks, so equal pixels
    give equal bytes."""
    frames = frames if isinstance(frames, list) else [frames]
    buffer = io.BytesIO()
    extra: dict[str, Any] = (
        {"save_all": True, "append_images": frames[1:]} if len(frames) > 1 else {}
    )
    frames[0].save(buffer, format="PNG", optimize=False, compress_level=9, **extra)
    return buffer.getvalue()


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        # mkstemp makes the file private (0600); give it the mode a plain open() would.
        os.fchmod(fd, _file_mode(path))
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _file_mode(path: Path) -> int:
    """The existing file's permissions, else the default for a new file under the umask."""
    try:
        return path.stat().st_mode & 0o777
    except OSError:
        mask = os.umask(0)
        os.umask(mask)
        return 0o666 & ~mask
