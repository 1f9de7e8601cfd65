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

import contextlib
import glob
import hashlib
import io
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import imagehash
import numpy as np
from PIL import Image, ImageChops, ImageSequence

from comfytest._process import pid_alive
from comfytest.compare import Comparison, Tolerance, compare_frames

try:
    import fcntl
except ImportError:  # Windows: atomic writes, but no lock per case folder
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "DECODE_ERRORS",
    "KEEP_MODES",
    "MANIFEST",
    "PENDING_MANIFEST",
    "UPDATE_MODES",
    "BaselineStore",
    "Frames",
    "Verdict",
    "atomic_write",
    "delete_baselines",
    "difference_image",
    "read_frames",
    "read_manifest",
    "remove_leftovers",
    "stored_phashes",
    "unused_baselines",
    "write_manifest",
    "write_png",
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
    #: The output itself could not be decoded (a truncated or corrupt download).
    unreadable: bool = False

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
            "unreadable": self.unreadable,
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

    @contextlib.contextmanager
    def writing(self, folder: str) -> Iterator[None]:
        """Hold the lock of a case's baseline folder while an update run judges and writes it.

        Two update runs on the same baselines then take turns per case, so a folder's PNGs
        and its manifest come from one run; each file is atomic either way. Nothing is
        locked when nothing may be written (``update="none"``), nor where ``fcntl`` is
        missing (Windows). The lock is the folder's own (``flock``), so no lock file is left.
        """
        if self.update == "none" or fcntl is None:
            yield
            return
        target = self.root / folder
        made = not target.exists()
        target.mkdir(parents=True, exist_ok=True)
        handle = os.open(target, os.O_RDONLY)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX)
            yield
        finally:
            os.close(handle)  # releases the lock
            if made:  # nothing written (the case failed first): leave no empty folders
                with contextlib.suppress(OSError):
                    while target != self.root:
                        target.rmdir()
                        target = target.parent

    def judge(
        self,
        folder: str,
        key: str,
        label: str,
        actual: Path | bytes | Image.Image | list[Image.Image],
        tolerance: Tolerance,
    ) -> Verdict:
        """Compare an image (or an animation's frames, or a downloaded file) with its baseline;
        apply the mode. A passing animation is judged one frame at a time."""
        frames = Frames(actual)
        path = self.baseline_path(folder, key)
        try:
            len(frames)  # the actual is readable at all
            if not path.exists():
                if self.update == "none":
                    return Verdict(key, label, "missing", path, self._keep(folder, key, frames))
                write_png(path, frames.all())
                kept = self._keep(folder, key, frames, ok=True)
                return Verdict(key, label, "created", path, kept)
            baseline = Frames(path, side="baseline")
            stored = stored_phashes(self.root, folder, key)
            try:
                comparison = compare_frames(frames, baseline, tolerance, stored)
            except Unreadable as exc:
                if exc.side != "baseline":
                    raise
                if self.update in ("changed", "all"):
                    write_png(path, frames.all())
                    return Verdict(key, label, "updated", path)
                kept = self._keep(folder, key, frames)
                problem = f"baseline unreadable: {exc.reason}"
                return Verdict(key, label, "failed", path, kept, problem=problem)
            rewrite = (self.update == "changed" and not comparison.passed) or (
                self.update == "all" and not comparison.identical
            )
            status = "updated" if rewrite else "passed" if comparison.passed else "failed"
            kept = self._keep(
                folder,
                key,
                frames,
                baseline if comparison.size_mismatch is None else None,
                comparison.frame,
                ok=status != "failed",
            )
            if rewrite:
                write_png(path, frames.all())
        except Unreadable as exc:
            # The server sent something that is not an image: keep it as it came.
            raw = self.results / folder / f"{key}.unreadable"
            if isinstance(actual, Path):
                raw.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(actual, raw)
            elif isinstance(actual, bytes):
                atomic_write(raw, actual)
            return Verdict(
                key,
                label,
                "failed",
                path,
                raw if isinstance(actual, (Path, bytes)) else None,
                problem=f"the output is not a readable image: {exc.reason}",
                unreadable=True,
            )
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
        actual: Frames,
        baseline: Frames | None = None,
        frame: int | None = None,
        *,
        ok: bool = False,
    ) -> Path | None:
        """Write the evidence for one output; for a passing one, only under keep="all".

        One animation is decoded at a time: the actual, then the baseline copy, then the
        shown frame of each for the difference."""
        base = self.results / folder
        paths = [base / f"{key}{suffix}.png" for suffix in ("", ".baseline", ".diff")]
        if ok and self.keep != "all":
            for stale in paths:  # evidence from an earlier failing run would mislead
                stale.unlink(missing_ok=True)
            return None
        write_png(paths[0], actual.all())
        if baseline is not None:
            write_png(paths[1], baseline.all())
            shown = frame or 0
            difference = difference_image(actual.at(shown), baseline.at(shown))
            write_png(paths[2], difference)
        return paths[0]


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
        pixels, hashes, first = hashlib.sha256(), [], None
        try:
            for frame in Frames(png, side="baseline"):  # one frame at a time
                first = first or (list(frame.size), frame.mode)
                pixels.update(np.asarray(frame).tobytes())
                hashes.append(str(imagehash.phash(frame)))
        except Unreadable:
            continue
        if first is None:
            continue
        outputs[png.stem] = {
            "size": first[0],
            "mode": first[1],
            "frames": len(hashes),
            "phash": hashes if len(hashes) > 1 else hashes[0],
            "pixels_sha256": pixels.hexdigest()[:16],
            "png_sha256": _file_digest(png),
        }
    for txt in sorted((root / folder).glob("*.txt")):
        text = txt.read_text(encoding="utf-8", errors="replace")
        outputs[txt.stem] = {"text": text if len(text) <= 200 else text[:200] + "..."}
    manifest = {**data, "outputs": outputs}
    atomic_write(
        root / folder / MANIFEST, (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode()
    )


def stored_phashes(root: Path, folder: str, key: str) -> Callable[[int], str | None]:
    """The pHash of each frame of baseline ``key`` as its manifest records it, by frame.

    Read on first use (only outputs whose pixels differ need it). Every frame's is None
    unless the manifest describes these very PNG bytes: a baseline replaced by hand, or a
    manifest from before ``png_sha256``, is hashed afresh."""
    found: list[str | None] | None = None

    def lookup(frame: int) -> str | None:
        nonlocal found
        if found is None:
            found = _recorded_phashes(root, folder, key)
        return found[frame] if frame < len(found) else None

    return lookup


def _recorded_phashes(root: Path, folder: str, key: str) -> list[str | None]:
    entry = ((read_manifest(root, folder) or {}).get("outputs") or {}).get(key)
    if not isinstance(entry, dict) or not isinstance(entry.get("png_sha256"), str):
        return []
    try:
        if _file_digest(root / folder / f"{key}.png") != entry["png_sha256"]:
            return []
    except OSError:
        return []
    phash = entry.get("phash")
    return [
        value if isinstance(value, str) and re.fullmatch("[0-9a-f]{16}", value) else None
        for value in (phash if isinstance(phash, list) else [phash])
    ]


def _file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


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


#: Temporary files of ``atomic_write``: ``.<name>.<pid>.<random>.tmp`` beside the target.
TEMP_SUFFIX = ".tmp"


def atomic_write(path: Path, data: bytes | Callable[[IO[bytes]], None]) -> None:
    """Write ``data`` (bytes, or a function writing into a file) to ``path`` so that readers
    see the old file or the new one, never half.

    The new content goes to a temporary file beside ``path``, named after the writing
    process, then replaces ``path``. A process killed meanwhile (``kill -9``) leaves that
    temporary file behind: it never counts as a baseline (its name ends in ``.tmp``), and
    the next write to the same path removes it once its process is gone."""
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_leftovers(path)
    fd, tmp = tempfile.mkstemp(
        prefix=f".{path.name}.{os.getpid()}.", suffix=TEMP_SUFFIX, dir=path.parent
    )
    try:
        # mkstemp makes the file private (0600); give it the mode a plain open() would.
        os.fchmod(fd, _file_mode(path))
        with os.fdopen(fd, "wb") as handle:
            if isinstance(data, bytes):
                handle.write(data)
            else:
                data(handle)
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


def remove_leftovers(path: Path) -> list[Path]:
    """Delete the temporary files that killed writers of ``path`` left; returns them.

    A temporary file whose process still runs (another run writing the same baseline) is
    left alone."""
    removed = []
    prefix = f".{path.name}."
    for leftover in path.parent.glob(f"{glob.escape(prefix)}*{TEMP_SUFFIX}"):
        pid = leftover.name[len(prefix) :].split(".", 1)[0]
        if pid.isdigit() and not pid_alive(int(pid)):
            leftover.unlink(missing_ok=True)
            removed.append(leftover)
    return removed
