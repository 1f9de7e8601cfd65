"""Runs cases: a case's prompt built, queued (the next one ahead of time), followed to its
end, its outputs judged against the baselines and its manifest kept up to date.

Plain library: no pytest here. The plugin builds one Runner per process (per xdist worker)
and closes it at the end; its servers (comfytest.comfy.servers) are reached lazily.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import statistics
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from comfytest.atomic import atomic_write
from comfytest.cases.loader import Case
from comfytest.comfy.client import (
    DEFAULT_TIMEOUT,
    ComfyClient,
    ProgressCallback,
    PromptRun,
)
from comfytest.comfy.environment import differences, server_fingerprint
from comfytest.comfy.pool import ServerSpec
from comfytest.comfy.servers import Servers
from comfytest.errors import ComfytestError, ServerError
from comfytest.judging.baselines import BaselineStore, Verdict
from comfytest.judging.images import read_frames
from comfytest.judging.manifest import (
    PENDING_MANIFEST,
    case_owner,
    read_manifest,
    write_manifest,
)
from comfytest.judging.noise import OutputNoise, summarize
from comfytest.workflow.convert import ui_to_api
from comfytest.workflow.preflight import (
    PreflightFailed,
    Problem,
    check,
    loader_nodes,
    output_nodes,
    seed_inputs,
)
from comfytest.workflow.prompt import copy_prompt, node_label, prompt_digest

__all__ = ["CaseResult", "Runner"]

#: The undeclared input that makes output nodes miss ComfyUI's cache (see ``prepare``).
NONCE_INPUT = "comfytest_nonce"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")


@dataclass
class CaseResult:
    """Verdicts for every output of a case, plus where the time went."""

    case: Case
    case_name: str
    run: PromptRun
    verdicts: list[Verdict] = field(default_factory=list)
    timings: dict[str, Any] = field(default_factory=dict)
    #: A sweep cell's first image output, kept for the sweep report.
    cell_image: Path | None = None
    #: How this server differs from the one the baselines were made on.
    environment_changes: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return bool(self.verdicts) and all(v.ok for v in self.verdicts)

    def failure_lines(self) -> list[str]:
        if not self.verdicts:
            return [f"{self.case.name}: the prompt produced no image or text outputs to judge"]
        lines: list[str] = []
        for verdict in self.verdicts:
            if verdict.ok:
                continue
            if verdict.unreadable:
                lines.append(f"{self.case.name}: output {verdict.label} could not be judged")
            elif verdict.status == "missing":
                lines.append(f"{self.case.name}: output {verdict.label} has no baseline")
            else:
                lines.append(f"{self.case.name}: output {verdict.label} differs from its baseline")
            if verdict.problem:
                lines.append(f"  {verdict.problem}")
            if verdict.comparison is not None:
                lines.append(f"  {verdict.comparison.describe()}")
            lines.append(f"  baseline {verdict.baseline}")
            if verdict.actual is not None:
                lines.append(f"  actual   {verdict.actual}")
            if verdict.diff is not None:
                lines.append(f"  diff     {verdict.diff}")
        if self.environment_changes and not self.passed:
            lines.append("  the environment differs from the one the baselines were made in:")
            lines += [f"    {change}" for change in self.environment_changes]
        return lines


class Runner:
    """Runs cases on a pool of ComfyUI servers (``servers``; by default the one at ``url``,
    or else a managed server started on demand) and judges their outputs against the
    baselines in ``store``."""

    def __init__(
        self,
        store: BaselineStore,
        servers: Servers | None = None,
        *,
        url: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        self.store = store
        self.timeout = timeout
        self.servers = servers or Servers([ServerSpec(url.rstrip("/"))] if url else [])
        self._wrote_environment = False
        #: The next case, the client it was queued on, its prompt and id (see ``run_case``).
        self._ahead: tuple[Case, ComfyClient, dict[str, Any], str] | None = None
        self._download_dir: Path | None = None

    def client(self) -> ComfyClient:
        """The current server's client (see ``Servers.client``)."""
        return self.servers.client()

    def object_info(self) -> dict[str, Any]:
        """The current server's node definitions, fetched once per run."""
        return self.servers.object_info()

    def prepare(self, case: Case, *, fresh: str = "outputs") -> dict[str, Any]:
        """The prompt to queue: seeds pinned, files uploaded, and preflight passed.

        A nonce makes nodes miss ComfyUI's cache: ``fresh="outputs"`` on output nodes (their
        files are always written afresh), ``"compute"`` on every node but loaders (each repeat
        samples again with the models still loaded), ``"all"`` on every node."""
        client = self.client()
        info = self.object_info()
        prompt: dict[str, Any] = copy_prompt(case.prompt)
        uploads, overrides = case.uploads, case.overrides
        if case.ui_workflow is not None and case.recipe is not None:
            converted = ui_to_api(copy_prompt(case.ui_workflow), info)
            prompt, uploads, overrides = case.recipe.apply(converted)
        problems: list[Problem] = []
        for node_id, name in seed_inputs(prompt, info):
            if name in overrides.get(node_id, {}):
                continue
            if case.seed is None:
                class_type, title = node_label(prompt, node_id)
                problems.append(
                    Problem(
                        node_id,
                        class_type,
                        title,
                        "unpinned_seed",
                        f"input {name!r} is randomised by the UI (control_after_generate) and "
                        "this case leaves it unpinned: add 'seed: <integer>' or set it",
                    )
                )
            else:
                prompt[node_id]["inputs"][name] = case.seed
        for upload in uploads:
            prompt[upload.node_id]["inputs"][upload.input_name] = client.upload_image(upload.path)
        problems += check(prompt, info)
        if problems:
            raise PreflightFailed(problems, client.url)
        nonce = uuid.uuid4().hex
        targets = {
            "outputs": output_nodes(prompt, info),
            "compute": sorted(set(prompt) - set(loader_nodes(prompt, info))),
            "all": list(prompt),
        }[fresh]
        for node_id in targets:
            # An input the node does not declare: ignored by the node, but part of its cache
            # key, so the node runs again.
            prompt[node_id]["inputs"][NONCE_INPUT] = nonce
        return prompt

    def run_case(
        self,
        case: Case,
        case_name: str,
        *,
        repeat: int = 1,
        warmup: int = 0,
        on_progress: ProgressCallback | None = None,
        then: Case | None = None,
    ) -> CaseResult:
        """Run one case and judge each output against its baseline.

        With ``warmup`` and ``repeat``, the prompt first runs ``warmup`` times untimed, then
        ``repeat`` times timed, sampling afresh each time (only loaders may be cached); the
        last run's outputs are judged.

        ``then`` is the case that runs next: its prompt is queued behind this one's, so the
        server starts it while this case's outputs download and are judged."""
        started = time.perf_counter()
        client = self.client()
        info = self.object_info()
        fresh = "compute" if repeat > 1 or warmup else "outputs"
        executions: list[float] = []
        ahead = self._take_ahead(case)
        if ahead is not None and fresh != "outputs":
            client.cancel(ahead[1])  # queued for one plain run; repeats sample afresh
            ahead = None
        for attempt in range(warmup + repeat):
            if ahead is not None:
                prompt, prompt_id = ahead
                ahead = None
            else:
                prompt = self.prepare(case, fresh=fresh)
                prompt_id = client.submit(prompt)
            if then is not None and attempt == warmup + repeat - 1:
                self._queue_ahead(then)
            queued = time.perf_counter()
            progress = _named(on_progress, prompt)
            run = client.run(
                prompt,
                timeout=case.timeout or self.timeout,
                on_progress=progress,
                queued=prompt_id,
            )
            ran = time.perf_counter()
            allowed = set(loader_nodes(prompt, info)) if fresh == "compute" else set(prompt)
            allowed -= set(output_nodes(prompt, info))
            stale = sorted(set(run.cached_nodes) - allowed)
            if stale:
                raise ServerError(
                    f"ComfyUI served node(s) {', '.join(stale)} from its cache: not a fresh "
                    "result, so not judged",
                    client.url,
                    run.prompt_id,
                )
            if attempt >= warmup and run.execution_s is not None:
                executions.append(run.execution_s)
        result = CaseResult(case, case_name, run)
        folder = f"{case_name}/{case.folder}"
        owner = f"{case_owner(case.path, self.store.project)}::{case.name}"
        with self.store.writing(folder, owner):  # one update run at a time per case folder
            download_s, compare_s = self._judge_outputs(case, folder, prompt, result)
            self._write_manifest(case, folder, prompt, result)
        seconds = {
            "prepare_s": queued - started,
            "prompt_s": ran - queued,
            "queue_wait_s": run.queue_wait_s,
            "execution_s": run.execution_s,
            "download_s": download_s,
            "compare_s": compare_s,
            "total_s": time.perf_counter() - started,
        }
        result.timings = {
            **{k: None if v is None else round(v, 4) for k, v in seconds.items()},
            "cold": bool(set(loader_nodes(prompt, info)) & set(run.executed_nodes)),
            "nodes_s": {node: round(sec, 4) for node, sec in run.node_seconds.items()},
            "iterations_per_s": {n: round(r, 2) for n, r in run.iterations_per_second().items()},
        }
        if repeat > 1 or warmup:
            result.timings["repeats"] = spread(executions) | {"warmup": warmup}
        return result

    def _judge_outputs(
        self, case: Case, folder: str, prompt: dict[str, Any], result: CaseResult
    ) -> tuple[float, float]:
        """Download and judge every image and text output; (download, compare) seconds."""
        client, run = self.client(), result.run
        download_s = compare_s = 0.0
        downloads = self._downloads()
        for output in run.outputs:
            if not output.filename.lower().endswith(IMAGE_SUFFIXES):
                continue
            t0 = time.perf_counter()
            data = client.download_to(output, downloads / f"{output.key}.download")
            t1 = time.perf_counter()
            verdict = self.store.judge(
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
                result.cell_image = self.store.results / folder / "cell.png"
                atomic_write(
                    result.cell_image, data if isinstance(data, bytes) else data.read_bytes()
                )
            if isinstance(data, Path):
                data.unlink()
            download_s += t1 - t0
            compare_s += time.perf_counter() - t1
        for text in run.texts:
            result.verdicts.append(
                self.store.judge_text(
                    folder,
                    text.key,
                    _label(prompt, text.node_id, text.index, "text"),
                    text.text,
                    case.tolerance.for_output(text.key),
                )
            )
        return download_s, compare_s

    def _write_manifest(
        self, case: Case, folder: str, prompt: dict[str, Any], result: CaseResult
    ) -> None:
        """Refresh the manifest when baselines were written, else note environment changes."""
        wrote = any(v.status in ("created", "updated") for v in result.verdicts)
        refresh = self.store.update == "all" or (
            self.store.update != "none" and read_manifest(self.store.root, folder) is None
        )
        if wrote or refresh:
            keys = [v.key for v in result.verdicts]
            write_manifest(self.store.root, folder, self._manifest(case, prompt), keys)
        else:
            recorded = (read_manifest(self.store.root, folder) or {}).get("environment")
            if recorded:
                result.environment_changes = differences(recorded, self.environment())
        pending = self.store.results / folder / PENDING_MANIFEST
        if any(v.actual is not None for v in result.verdicts):
            # What the manifest would say if these outputs became the baselines
            # (``comfytest accept`` writes it beside them).
            body = json.dumps(self._manifest(case, prompt), indent=2, sort_keys=True) + "\n"
            atomic_write(pending, body.encode())
        else:
            pending.unlink(missing_ok=True)

    def noise_floor(self, case: Case, runs: int) -> list[OutputNoise]:
        """Run ``case`` ``runs`` times with ComfyUI's cache defeated; the spread per output."""
        client = self.client()
        self._drop_ahead()
        images: dict[str, list[Image.Image]] = {}
        for _ in range(runs):
            prompt = self.prepare(case, fresh="all")
            run = client.run(prompt, timeout=case.timeout or self.timeout)
            if run.cached_nodes:
                raise ServerError(
                    f"nodes {', '.join(run.cached_nodes)} came from ComfyUI's cache during a "
                    "noise-floor run",
                    client.url,
                    run.prompt_id,
                )
            for output in run.outputs:
                if output.filename.lower().endswith(IMAGE_SUFFIXES):
                    frames = read_frames(client.download(output))
                    images.setdefault(output.key, []).append(frames[0])
        return [summarize(key, found) for key, found in images.items()]

    def environment(self) -> dict[str, Any]:
        """The current server's fingerprint, taken once per run; the first one taken is
        saved in the results folder."""
        entry = self.servers.current
        if entry.environment is None:
            entry.environment = server_fingerprint(self.client(), entry.runtime, self.object_info())
        if not self._wrote_environment:
            self._wrote_environment = True
            atomic_write(
                self.store.results / "environment.json",
                (json.dumps(entry.environment, indent=2, sort_keys=True) + "\n").encode(),
            )
        return entry.environment

    def _manifest(self, case: Case, prompt: dict[str, Any]) -> dict[str, Any]:
        """What a reviewer needs beside a changed baseline: the case, inputs, environment."""
        plain = {
            node_id: {
                **node,
                "inputs": {k: v for k, v in node["inputs"].items() if k != NONCE_INPUT},
            }
            for node_id, node in prompt.items()
        }
        project = self.store.project
        inputs = {node: dict(values) for node, values in case.overrides.items()}
        for upload in case.uploads:  # a file in the project is named as in a clone of it
            inputs.setdefault(upload.node_id, {})[upload.input_name] = _relative(
                upload.path, project
            )
        return {
            "case": f"{case_owner(case.path, self.store.project)}::{case.name}",
            "workflow": _relative(case.workflow_path, project),
            "prompt_digest": prompt_digest(plain),
            "seed": case.seed,
            "sweep": dict(case.values),
            "inputs": inputs,
            "environment": self.environment(),
        }

    def _downloads(self) -> Path:
        """A private folder for outputs too big to judge from memory, made once per run."""
        if self._download_dir is None:
            self._download_dir = Path(tempfile.mkdtemp(prefix="comfytest-download-"))
        return self._download_dir

    def _queue_ahead(self, case: Case) -> None:
        """Queue ``case``'s prompt now, on the server it will run on, behind the running one
        (see ``run_case``)."""
        self._ahead = None
        index = self.servers.pick(case.server)
        if index is None:
            return  # it will be skipped
        try:
            with self.servers.using(index):
                prompt = self.prepare(case)
                client = self.client()
                self._ahead = (case, client, prompt, client.submit(prompt))
        except ComfytestError:
            pass  # the case meets the same error when it runs, and reports it

    def _take_ahead(self, case: Case) -> tuple[dict[str, Any], str] | None:
        """The prompt queued ahead for ``case`` on the current server, and its id; one
        queued for another case (then skipped or deselected, say) or elsewhere is cancelled."""
        if self._ahead is not None and self._ahead[0] is case and self._ahead[1] is self.client():
            _, _, prompt, prompt_id = self._ahead
            self._ahead = None
            return prompt, prompt_id
        self._drop_ahead()
        return None

    def _drop_ahead(self) -> None:
        if self._ahead is not None:
            _, client, _, prompt_id = self._ahead
            self._ahead = None
            client.cancel(prompt_id)

    def close(self) -> None:
        with contextlib.suppress(ComfytestError):
            self._drop_ahead()
        if self._download_dir is not None:
            shutil.rmtree(self._download_dir, ignore_errors=True)
            self._download_dir = None
        self.servers.close()


def _relative(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix() if path.is_relative_to(root) else str(path)


def _label(prompt: dict[str, Any], node_id: str, index: int, kind: str = "") -> str:
    title = node_label(prompt, node_id)[1]
    return f"{node_id} ({title} {kind + ' ' if kind else ''}#{index})"


def _named(callback: ProgressCallback | None, prompt: dict[str, Any]) -> ProgressCallback | None:
    """``callback`` with each node id given as "3 (KSampler)"."""
    if callback is None:
        return None

    def named(node: str, value: int, maximum: int) -> None:
        class_type = prompt.get(node, {}).get("class_type")
        callback(f"{node} ({class_type})" if class_type else node, value, maximum)

    return named


def spread(values: list[float]) -> dict[str, Any]:
    """n, median, min, max and interquartile range of repeated timings (seconds)."""
    if not values:
        return {"n": 0}
    quartiles = statistics.quantiles(values, n=4) if len(values) > 1 else [values[0]] * 3
    return {
        "n": len(values),
        "median_s": round(statistics.median(values), 4),
        "min_s": round(min(values), 4),
        "max_s": round(max(values), 4),
        "iqr_s": round(quartiles[2] - quartiles[0], 4),
        "runs_s": [round(v, 4) for v in values],
    }
