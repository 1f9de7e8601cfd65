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
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

from PIL import Image

from comfytest.atomic import TEMP_SUFFIX, atomic_write
from comfytest.defaults import KEEP_MODES, UPDATE_MODES, KeepMode, Status, UpdateMode
from comfytest.errors import BaselineError
from comfytest.judging.compare import Tolerance, compare_frames
from comfytest.judging.images import Frames, Unreadable, difference_image, write_png
from comfytest.judging.manifest import read_manifest, stored_phashes
from comfytest.judging.verdict import Verdict, corrupt_baseline

try:
    import fcntl
except ImportError:  # Windows: atomic writes, but no lock per case folder
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "KEEP_MODES",
    "UPDATE_MODES",
    "BaselineStore",
    "Verdict",
    "corrupt_baseline",
]


class BaselineStore:
    """Baselines under ``root``; evidence for failing outputs kept under ``results``.

    For each kept output ``<key>``: ``<key>.png`` (actual), ``<key>.baseline.png`` (a copy of
    the baseline) and ``<key>.diff.png`` (the difference, amplified so the largest is white).
    ``keep="all"`` keeps them for passing outputs too.
    """

    def __init__(
        self,
        root: Path,
        results: Path,
        update: UpdateMode | str = UpdateMode.NONE,
        keep: KeepMode | str = KeepMode.FAILED,
        project: Path | None = None,
    ) -> None:
        if update not in UPDATE_MODES:
            raise ValueError(f"update mode must be one of {', '.join(UPDATE_MODES)}")
        if keep not in KEEP_MODES:
            raise ValueError(f"keep must be one of {', '.join(KEEP_MODES)}")
        self.root = root
        self.results = results
        self.update = UpdateMode(update)
        self.keep = KeepMode(keep)
        #: What manifests name files relative to (the rootdir; by default the folder above
        #: ``root``), so that they read the same in every clone of the project.
        self.project = project or root.parent

    def baseline_path(self, folder: str, key: str) -> Path:
        return self.root / folder / f"{key}.png"

    @contextlib.contextmanager
    def writing(self, folder: str, owner: str | None = None) -> Iterator[None]:
        """Hold the lock of a case's baseline folder while an update run judges and writes it.

        Two update runs on the same baselines then take turns per case, so a folder's PNGs
        and its manifest come from one run; each file is atomic either way. Nothing is
        locked when nothing may be written (``update="none"``), nor where ``fcntl`` is
        missing (Windows). The lock is the folder's own (``flock``), so no lock file is left.

        ``owner`` (``"<case file>::<case>"``) is checked against the folder's manifest first:
        a folder another existing case file owns is a ``BaselineError``, judged or written by
        no other. A baseline that cannot be written is a ``BaselineError`` naming the path
        and the OS's reason; every file is whole, written or not.
        """
        self.check_owner(folder, owner)
        if self.update == "none":
            yield
            return
        target = self.root / folder
        made = not target.exists()
        try:
            target.mkdir(parents=True, exist_ok=True)
            handle = os.open(target, os.O_RDONLY) if fcntl is not None else None
        except OSError as exc:
            raise _unwritable(exc, target) from None
        try:
            if handle is not None:
                fcntl.flock(handle, fcntl.LOCK_EX)
            yield
        except OSError as exc:
            if not exc.filename or not Path(os.fsdecode(exc.filename)).is_relative_to(self.root):
                raise
            raise _unwritable(exc, target) from None
        finally:
            if handle is not None:
                os.close(handle)  # releases the lock
            if made:  # nothing written (the case failed first): leave no empty folders
                with contextlib.suppress(OSError):
                    while target != self.root:
                        target.rmdir()
                        target = target.parent

    def check_owner(self, folder: str, owner: str | None) -> None:
        """A folder whose manifest names another case file that still exists is that
        file's: two case files map to one baselines folder (``t.yml`` and ``t.yaml``)."""
        recorded = (read_manifest(self.root, folder) or {}).get("case")
        if owner is None or not isinstance(recorded, str):
            return
        theirs, mine = recorded.partition("::")[0], owner.partition("::")[0]
        if theirs == mine or not (self.project / theirs).is_file():
            return  # the same file, or a case file renamed since (its folder is adopted)
        raise BaselineError(
            f"{self.root / folder}/ belongs to {recorded} (its manifest.json), not to "
            f"{owner}: two case files map to one baselines folder; rename one of them"
        )

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
                    return Verdict(
                        key, label, Status.MISSING, path, self._keep(folder, key, frames)
                    )
                write_png(path, frames.all())
                kept = self._keep(folder, key, frames, ok=True)
                return Verdict(key, label, Status.CREATED, path, kept)
            baseline = Frames(path, side="baseline")
            stored = stored_phashes(self.root, folder, key)
            try:
                comparison = compare_frames(frames, baseline, tolerance, stored)
            except Unreadable as exc:
                if exc.side != "baseline":
                    raise
                # Never written over, not even by an update run: a corrupt file or an
                # LFS pointer is restored, not replaced by unreviewed output.
                kept = self._keep(folder, key, frames)
                return Verdict(
                    key,
                    label,
                    Status.FAILED,
                    path,
                    kept,
                    problem=corrupt_baseline(path, str(exc.reason)),
                    baseline_corrupt=True,
                )
            rewrite = (self.update == "changed" and not comparison.passed) or (
                self.update == "all" and not comparison.identical
            )
            status = (
                Status.UPDATED if rewrite else Status.PASSED if comparison.passed else Status.FAILED
            )
            kept = self._keep(
                folder,
                key,
                frames,
                baseline if comparison.size_mismatch is None else None,
                comparison.frame,
                ok=status != Status.FAILED,
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
                Status.FAILED,
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
            return Verdict(
                key, label, Status.PASSED if ok else Status.FAILED, path, kept, problem=problem
            )
        if not path.exists() and self.update == "none":
            atomic_write(kept_path, text.encode())
            return Verdict(key, label, Status.MISSING, path, kept_path)
        if not path.exists():
            atomic_write(path, text.encode())
            return Verdict(key, label, Status.CREATED, path)
        expected = path.read_text(encoding="utf-8", errors="replace")
        if expected == text:
            kept_path.unlink(missing_ok=True)
            return Verdict(key, label, Status.PASSED, path)
        if self.update in ("changed", "all"):
            atomic_write(path, text.encode())
            return Verdict(key, label, Status.UPDATED, path)
        atomic_write(kept_path, text.encode())
        problem = f"text {_clip(text)} differs from the baseline {_clip(expected)}"
        return Verdict(key, label, Status.FAILED, path, kept_path, problem=problem)

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


def _unwritable(exc: OSError, folder: Path) -> BaselineError:
    """The OS's reason, at the path it names unless that is a temporary file of a write."""
    where = Path(os.fsdecode(exc.filename)) if exc.filename else folder
    at = "" if where == folder or where.name.endswith(TEMP_SUFFIX) else f" ({where})"
    return BaselineError(f"cannot write the baselines in {folder}/: {exc.strerror or exc}{at}")


def _clip(text: str, limit: int = 80) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "...")
