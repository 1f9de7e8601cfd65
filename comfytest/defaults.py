"""Named option values and defaults, as plain constants.

The plugin registers its options from these before any case is collected, so this module
imports nothing: the image stack, httpx and YAML load only when a case file is collected.
"""

from __future__ import annotations

__all__ = ["DEFAULT_TIMEOUT", "KEEP_MODES", "UPDATE_MODES"]

#: Seconds a single prompt may take before it is interrupted.
DEFAULT_TIMEOUT = 300.0
#: When the baseline store writes: never (default), for missing ones, changed ones, or all.
UPDATE_MODES = ("none", "missing", "changed", "all")
#: Which outputs keep their evidence (actual, baseline copy, diff) under the results folder.
KEEP_MODES = ("failed", "all")
