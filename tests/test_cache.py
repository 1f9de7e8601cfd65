"""ComfyUI's node cache never passes off an old output as a fresh result."""

from __future__ import annotations

from pathlib import Path

from comfytest.cases.loader import load_cases
from comfytest.comfy.pool import ServerSpec
from comfytest.comfy.servers import Servers
from comfytest.judging.baselines import BaselineStore
from comfytest.runner import Runner
from comfytest.runtime import ManagedServer

REPO = Path(__file__).resolve().parent.parent


def test_outputs_are_fresh_and_a_managed_run_starts_from_an_empty_cache(
    comfy: ManagedServer, tmp_path: Path
) -> None:
    (case,) = [c for c in load_cases(REPO / "cases/txt2img.yaml") if c.name == "fox"]
    store = BaselineStore(tmp_path / "baselines", tmp_path / "results", "missing")

    first_run = Runner(store, url=comfy.url)
    try:
        first = first_run.run_case(case, "t")
        again = first_run.run_case(case, "t")  # the identical prompt, in the same run
    finally:
        first_run.close()
    # Upstream nodes may come from the cache within a run; the output node never does.
    assert sorted(again.run.cached_nodes) == ["3", "4", "5", "6", "7", "8"]
    assert "9" not in again.run.cached_nodes
    assert again.run.outputs[0].filename != first.run.outputs[0].filename, "a new file"
    assert [v.status for v in again.verdicts] == ["passed"]

    # A server given by URL may be someone else's: a new run leaves its cache alone, and
    # its first case is reported as what it is (warm: its loaders came from the cache).
    guest_run = Runner(store, url=comfy.url)
    try:
        guest = guest_run.run_case(case, "t")
    finally:
        guest_run.close()
    assert "4" in guest.run.cached_nodes
    assert guest.timings["cold"] is False
    assert [v.status for v in guest.verdicts] == ["passed"]

    # A managed server is this run's alone: a new run frees its cache.
    managed = Servers([ServerSpec(comfy.url)], managed_elsewhere=True)
    second_run = Runner(store, managed)
    try:
        fresh = second_run.run_case(case, "t")
    finally:
        second_run.close()
    assert fresh.run.cached_nodes == [], "a new run frees the cache: models load from disk"
    assert fresh.timings["cold"] is True
    assert [v.status for v in fresh.verdicts] == ["passed"]
