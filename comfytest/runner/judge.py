"""Judging a run's outputs: each image and text output against its baseline (found by
node id, or by the graph that made it: ``comfytest.judging.pairing``), and every output
the baselines expect that was not produced."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

from comfytest.atomic import atomic_write
from comfytest.cases.loader import Case
from comfytest.comfy.client import ComfyClient
from comfytest.defaults import Status, UpdateMode
from comfytest.judging.baselines import BaselineStore, Verdict
from comfytest.judging.manifest import read_manifest, recorded_identities
from comfytest.judging.pairing import pair_outputs
from comfytest.runner.prompt import output_identity
from comfytest.runner.result import CaseResult
from comfytest.workflow.prompt import node_label

__all__ = ["IMAGE_SUFFIXES", "baseline_keys", "judge_outputs", "lost_outputs"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")


def judge_outputs(
    store: BaselineStore,
    case: Case,
    folder: str,
    prompt: dict[str, Any],
    result: CaseResult,
    client: ComfyClient,
    downloads: Path,
) -> tuple[float, float]:
    """Download and judge every image and text output of ``result``'s run into its
    verdicts, then account for outputs no longer produced; (download, compare) seconds.

    Outputs too big to judge from memory are streamed into ``downloads``."""
    run = result.run
    images = [o for o in run.outputs if o.filename.lower().endswith(IMAGE_SUFFIXES)]
    baseline_of = baseline_keys(store, folder, prompt, [*images, *run.texts])
    download_s = compare_s = 0.0
    for output in images:
        key = baseline_of.get(output.key, output.key)
        t0 = time.perf_counter()
        data = client.download_to(output, downloads / f"{output.key}.download")
        t1 = time.perf_counter()
        verdict = store.judge(
            folder,
            key,
            _label(prompt, output.node_id, output.index, was=key),
            data,  # decoded frame by frame while judging
            case.tolerance.for_output(output.key),
        )
        result.verdicts.append(dataclasses.replace(verdict, node=output.node_id))
        if case.cell and result.cell_image is None:
            # The sweep report shows each cell's first image output.
            # The file as ComfyUI wrote it: the report reads its first frame.
            result.cell_image = store.results / folder / "cell.png"
            atomic_write(result.cell_image, data if isinstance(data, bytes) else data.read_bytes())
        if isinstance(data, Path):
            data.unlink()
        download_s += t1 - t0
        compare_s += time.perf_counter() - t1
    for text in run.texts:
        key = baseline_of.get(text.key, text.key)
        verdict = store.judge_text(
            folder,
            key,
            _label(prompt, text.node_id, text.index, "text", was=key),
            text.text,
            case.tolerance.for_output(text.key),
        )
        result.verdicts.append(dataclasses.replace(verdict, node=text.node_id))
    result.verdicts += lost_outputs(store, folder, prompt, {v.key for v in result.verdicts})
    return download_s, compare_s


def baseline_keys(
    store: BaselineStore, folder: str, prompt: dict[str, Any], outputs: list[Any]
) -> dict[str, str]:
    """``{output key: baseline key}`` for the outputs whose baseline was found."""
    actual = [(o.key, output_identity(prompt, o.node_id)) for o in outputs]
    return pair_outputs(actual, list(recorded_identities(store.root, folder).items()))


def lost_outputs(
    store: BaselineStore, folder: str, prompt: dict[str, Any], produced: set[str]
) -> list[Verdict]:
    """A failing verdict for each output the manifest recorded whose baseline is still
    there but which the workflow no longer produced (an output node removed, say).

    An update run (``changed``, ``all``) takes the new set of outputs as it is: the lost
    baseline is then unused, and ``--comfy-prune`` removes it."""
    if store.update in (UpdateMode.CHANGED, UpdateMode.ALL):
        return []
    recorded = (read_manifest(store.root, folder) or {}).get("outputs") or {}
    lost = []
    for key, entry in sorted(recorded.items()):
        text = isinstance(entry, dict) and "text" in entry
        path = store.root / folder / f"{key}.{'txt' if text else 'png'}"
        if key in produced or not isinstance(entry, dict) or not path.is_file():
            continue
        node_id, _, index = key.rpartition("-")
        made_by = entry.get("graph")
        made_by = made_by if isinstance(made_by, dict) else {}
        title = made_by.get("class_type") or node_label(prompt, node_id)[1]
        label = f"{node_id} ({title} #{index.lstrip('t')})"
        problem = (
            "the workflow no longer produces this output, but its baseline is still "
            "there; if it was removed on purpose: --comfy-update=all --comfy-prune "
            "deletes the baseline"
        )
        lost.append(Verdict(key, label, Status.FAILED, path, problem=problem, lost=True))
    return lost


def _label(prompt: dict[str, Any], node_id: str, index: int, kind: str = "", was: str = "") -> str:
    """``9 (Save Image #0)``; ``12 (Save Image #0, was 9)`` when judged against the baseline
    another node id made (the graph was renumbered)."""
    title = node_label(prompt, node_id)[1]
    old = was.rpartition("-")[0]
    renumbered = f", was {old}" if was and old != node_id else ""
    return f"{node_id} ({title} {kind + ' ' if kind else ''}#{index}{renumbered})"
