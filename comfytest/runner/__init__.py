"""Running cases: prompts built and queued, followed to their end, outputs judged.

Plain library: no pytest here. The plugin builds one Runner per process (per xdist worker)
and closes it at the end; its servers (comfytest.comfy.servers) are reached lazily.
"""

from comfytest.runner.result import CaseResult
from comfytest.runner.runner import Runner

__all__ = ["CaseResult", "Runner"]
