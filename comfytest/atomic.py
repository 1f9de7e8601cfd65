"""Files written whole or not at all: readers see the old content or the new, never half.

Every file comfytest writes for a user (baselines, manifests, reports, run records) goes
through ``atomic_write``; a writer killed midway leaves a temporary file that the next
write of the same path removes.
"""

from __future__ import annotations

import glob
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO

from comfytest._process import pid_alive

__all__ = ["TEMP_SUFFIX", "atomic_write", "remove_leftovers"]


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
        # mkstemp makes the file private (0600); give it the mode a plain open() would
        # (os.chmod by name: os.fchmod is POSIX-only before Python 3.13).
        os.chmod(tmp, _file_mode(path))
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
