"""Named values: option choices and defaults, and the status of an output's verdict.

The plugin registers its options from these before any case is collected, so this module
imports nothing but the standard library: the image stack, httpx and YAML load only when a
case file is collected.
"""

from __future__ import annotations

from enum import Enum

__all__ = [
    "DEFAULT_TIMEOUT",
    "KEEP_MODES",
    "SWEEP_MAX_CELLS",
    "SWEEP_WARN_CELLS",
    "UPDATE_MODES",
    "KeepMode",
    "Status",
    "UpdateMode",
]

#: Seconds a single prompt may take before it is interrupted.
DEFAULT_TIMEOUT = 300.0
#: A sweep of more cells than this is warned about at collection, unless it sets max_cells.
SWEEP_WARN_CELLS = 200
#: A sweep of more cells than this is a collection error, unless its max_cells allows them.
SWEEP_MAX_CELLS = 1000


class _Named(str, Enum):
    """A named value that is also its plain string (in JSON, f-strings and comparisons)."""

    def __str__(self) -> str:
        return str(self.value)

    def __format__(self, spec: str) -> str:
        return format(str(self.value), spec)


class UpdateMode(_Named):
    """When the baseline store writes (``--comfy-update``)."""

    NONE = "none"  # never: a missing or changed baseline fails
    MISSING = "missing"  # create missing baselines
    CHANGED = "changed"  # also rewrite failing ones
    ALL = "all"  # also rewrite passing ones whose pixels differ


class KeepMode(_Named):
    """Which outputs keep their evidence (actual, baseline copy, diff) (``--comfy-keep``)."""

    FAILED = "failed"
    ALL = "all"


class Status(_Named):
    """The verdict on one output."""

    PASSED = "passed"
    FAILED = "failed"
    MISSING = "missing"  # no baseline (and not created)
    CREATED = "created"
    UPDATED = "updated"


UPDATE_MODES = tuple(mode.value for mode in UpdateMode)
KEEP_MODES = tuple(mode.value for mode in KeepMode)
