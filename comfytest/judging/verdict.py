"""The verdict on one output, and what to say about a baseline that cannot be read."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from comfytest.defaults import Status
from comfytest.judging.compare import Comparison

__all__ = ["LFS_POINTER", "Verdict", "corrupt_baseline"]


@dataclass(frozen=True)
class Verdict:
    """The outcome for one output (``status``: a Status, given as one or by its value)."""

    key: str
    label: str
    status: Status
    baseline: Path
    actual: Path | None = None
    comparison: Comparison | None = None
    problem: str = ""
    diff: Path | None = None
    #: The output itself could not be decoded (a truncated or corrupt download).
    unreadable: bool = False
    #: The baseline could not be decoded (corrupt, or a Git LFS pointer): never accept over it.
    baseline_corrupt: bool = False
    #: The baseline's output was not produced this time.
    lost: bool = False
    #: The id of the node that produced the output in this run's prompt ("" if none did).
    node: str = ""

    @property
    def acceptable(self) -> bool:
        """Accepting the actual output as the baseline is safe advice: it differs or is
        missing, and both sides are readable images."""
        bad = self.unreadable or self.baseline_corrupt or self.lost
        return self.status in (Status.FAILED, Status.MISSING) and not bad

    @property
    def changed(self) -> bool:
        """Its pixels differ from the baseline's, whatever the verdict."""
        return self.comparison is not None and not self.comparison.identical

    @property
    def ok(self) -> bool:
        return self.status in (Status.PASSED, Status.CREATED, Status.UPDATED)

    def evidence(self) -> dict[str, Any]:
        """Where a reviewer finds this output's files: the baseline, and when kept, the
        actual output, the copy of the baseline it was judged against, and the difference."""
        copy = self.actual.with_name(f"{self.key}.baseline.png") if self.actual else None
        return {
            "label": self.label,
            "status": self.status.value,
            "problem": self.problem,
            "baseline": str(self.baseline),
            "actual": str(self.actual) if self.actual else None,
            "baseline_copy": str(copy) if copy and copy.exists() else None,
            "diff": str(self.diff) if self.diff and self.diff.exists() else None,
            "unreadable": self.unreadable,
            "baseline_corrupt": self.baseline_corrupt,
        }


#: How a Git LFS pointer file starts (https://git-lfs.com/spec/v1).
LFS_POINTER = b"version https://git-lfs.github.com/spec/v1"


def corrupt_baseline(path: Path, reason: str) -> str:
    """Why a baseline cannot be read, and what to do instead of accepting over it."""
    try:
        with path.open("rb") as handle:
            head = handle.read(len(LFS_POINTER))
    except OSError:
        head = b""
    if head == LFS_POINTER:
        return (
            "the baseline is a Git LFS pointer, not the image: fetch it (git lfs pull); "
            "do not accept over it"
        )
    return (
        f"the baseline is corrupt ({reason}): restore it (git checkout -- {path}), or "
        "delete it and make it afresh with --comfy-update=missing; do not accept over it"
    )
