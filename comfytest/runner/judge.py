"""Judging a run's outputs: each image and text output against its baseline, and every
output the baselines expect that was not produced."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from comfytest.atomic import atomic_write
from comfytest.cases.loader import Case
from comfytest.comfy.client import ComfyClient
from comfytest.defaults import Status, UpdateMode
from comfytest.judging.baselines import BaselineStore, Verdict
from comfytest.judging.manifest import read_manifest
from comfytest.runner.result import CaseResult
from comfytest.workflow.prompt import node_label

__all__ = ["IMAGE_SUFFIXES", "judge_outputs", "lost_outputs"]

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
    download_s = compare_s = 0.0
    for output in run.outputs:
        if not output.filename.lower().endswith(IMAGE_SUFFIXES):
            continue
        t0 = time.perf_counter()
        data = client.download_to(output, downloads / f"{output.key}.download")
        t1 = time.perf_counter()
        verdict = store.judge(
            folder,
            output.key,
            _label(prompt, output.node_id, output.index),
            data,  # decoded frame by frame while judging
            case.tolerance.for_output(output.key),
        )
        result.verdicts.append(verdict)
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
        result.verdicts.append(
            store.judge_text(
                folder,
                text.key,
                _label(prompt, text.node_id, text.index, "text"),
                text.text,
                case.tolerance.for_output(text.key),
            )
        )
    result.verdicts += lost_outputs(store, folder, prompt, {v.key for v in result.verdicts})
    return download_s, compare_s


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
        label = _label(prompt, node_id, int(index)) if index.isdigit() else key
        problem = (
            "the workflow no longer produces this output, but its baseline is still "
            "there; if it was removed on purpose: --comfy-update=all --comfy-prune "
            "deletes the baseline"
        )
        lost.append(Verdict(key, label, Status.FAILED, path, problem=problem, lost=True))
    return lost


def _label(prompt: dict[str, Any], node_id: str, index: int, kind: str = "") -> str:
    title = node_label(prompt, node_id)[1]
    return f"{node_id} ({title} {kind + ' ' if kind else ''}#{index})"
