"""Runs cases: a case's prompt built, queued (the next one ahead of time), followed to its
end, its outputs judged against the baselines and its manifest kept up to date.

Every case runs on a server named by its index in the pool (``server=``; the pool's home
server when not given): nothing about which server is current is kept between calls.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from PIL import Image

from comfytest.atomic import atomic_write
from comfytest.cases.loader import Case
from comfytest.comfy.changes import environment_lines
from comfytest.comfy.client import DEFAULT_TIMEOUT, ComfyClient, ProgressCallback
from comfytest.comfy.environment import server_fingerprint
from comfytest.comfy.pool import ServerSpec
from comfytest.comfy.servers import Servers
from comfytest.errors import ComfytestError, ServerError
from comfytest.judging.baselines import BaselineStore
from comfytest.judging.images import read_frames
from comfytest.judging.manifest import (
    PENDING_MANIFEST,
    add_identities,
    case_owner,
    read_manifest,
    write_manifest,
)
from comfytest.judging.noise import OutputNoise, summarize
from comfytest.runner.judge import IMAGE_SUFFIXES, judge_outputs
from comfytest.runner.manifests import case_manifest
from comfytest.runner.prompt import Fresh, Prepared, output_identity, prepare
from comfytest.runner.result import CaseResult, spread
from comfytest.workflow.preflight import loader_nodes, output_nodes

__all__ = ["Runner"]


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
        #: The run's start: what ``%date:…%`` in a UI workflow's file names shows.
        self.started_at = datetime.now()
        self.servers = servers or Servers([ServerSpec(url.rstrip("/"))] if url else [])
        self._wrote_environment = False
        #: The next case, the server (index, client) it was queued on, its prompt and id
        #: (see ``run_case``).
        self._ahead: tuple[Case, int, ComfyClient, Prepared, str] | None = None
        self._download_dir: Path | None = None

    def prepare(self, case: Case, server: int | None = None, fresh: Fresh = "outputs") -> Prepared:
        """``case``'s prompt for server ``server`` (see comfytest.runner.prompt)."""
        index = self.servers.home if server is None else server
        client, info = self.servers.client(index), self.servers.object_info(index)
        return prepare(case, client, info, fresh, self.started_at)

    def run_case(
        self,
        case: Case,
        case_name: str,
        *,
        server: int | None = None,
        repeat: int = 1,
        warmup: int = 0,
        on_progress: ProgressCallback | None = None,
        then: Case | None = None,
    ) -> CaseResult:
        """Run one case on server ``server`` (the home server when None) and judge each
        output against its baseline.

        With ``warmup`` and ``repeat``, the prompt first runs ``warmup`` times untimed, then
        ``repeat`` times timed, sampling afresh each time (only loaders may be cached); the
        last run's outputs are judged.

        ``then`` is the case that runs next: its prompt is queued behind this one's, so the
        server starts it while this case's outputs download and are judged."""
        index = self.servers.home if server is None else server
        started = time.perf_counter()
        client = self.servers.client(index)
        info = self.servers.object_info(index)
        fresh: Fresh = "compute" if repeat > 1 or warmup else "outputs"
        executions: list[float] = []
        ahead = self._take_ahead(case, index)
        if ahead is not None and fresh != "outputs":
            client.cancel(ahead[1])  # queued for one plain run; repeats sample afresh
            ahead = None
        for attempt in range(warmup + repeat):
            if ahead is not None:
                prepared, prompt_id = ahead
                ahead = None
            else:
                prepared = self.prepare(case, index, fresh)
                prompt_id = client.submit(prepared.prompt, slot_wait=case.timeout or self.timeout)
            prompt = prepared.prompt
            if then is not None and attempt == warmup + repeat - 1:
                self._queue_ahead(then)
            queued = time.perf_counter()
            run = client.run(
                prompt,
                timeout=case.timeout or self.timeout,
                on_progress=_named(on_progress, prompt),
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
        result = CaseResult(case, case_name, run, server=client.url)
        result.stand_ins = prepared.applied.stand_ins
        result.capped = prepared.applied.capped
        folder = f"{case_name}/{case.folder}"
        owner = f"{case_owner(case.path, self.store.project)}::{case.name}"
        with self.store.writing(folder, owner):  # one update run at a time per case folder
            downloads = self._downloads()
            download_s, compare_s = judge_outputs(
                self.store, case, folder, prompt, result, client, downloads
            )
            self._write_manifest(case, folder, prepared, result, index)
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

    def _write_manifest(
        self, case: Case, folder: str, prepared: Prepared, result: CaseResult, server: int
    ) -> None:
        """Refresh the manifest when baselines were written, else note environment changes.

        An update run also records the node identity of outputs whose manifest has none
        (made before comfytest recorded them), and changes nothing else in it."""
        wrote = any(v.status in ("created", "updated") for v in result.verdicts)
        refresh = self.store.update == "all" or (
            self.store.update != "none" and read_manifest(self.store.root, folder) is None
        )
        project = self.store.project
        made_by = {v.key: v.node for v in result.verdicts if v.node}
        if wrote or refresh:
            manifest = case_manifest(case, prepared, project, self.environment(server), made_by)
            keys = [v.key for v in result.verdicts]
            write_manifest(self.store.root, folder, manifest, keys)
        else:
            if self.store.update != "none":
                graphs = {key: output_identity(prepared.prompt, n) for key, n in made_by.items()}
                add_identities(self.store.root, folder, graphs)
            recorded = (read_manifest(self.store.root, folder) or {}).get("environment")
            if recorded:
                result.environment_changes = environment_lines(recorded, self.environment(server))
        pending = self.store.results / folder / PENDING_MANIFEST
        if any(v.actual is not None for v in result.verdicts):
            # What the manifest would say if these outputs became the baselines
            # (``comfytest accept`` writes it beside them).
            manifest = case_manifest(case, prepared, project, self.environment(server), made_by)
            body = json.dumps(manifest, indent=2, sort_keys=True) + "\n"
            atomic_write(pending, body.encode())
        else:
            pending.unlink(missing_ok=True)

    def noise_floor(self, case: Case, runs: int, server: int | None = None) -> list[OutputNoise]:
        """Run ``case`` ``runs`` times with ComfyUI's cache defeated; the spread per output."""
        index = self.servers.home if server is None else server
        client = self.servers.client(index)
        self._drop_ahead()
        images: dict[str, list[Image.Image]] = {}
        for _ in range(runs):
            prompt = self.prepare(case, index, "all").prompt
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

    def environment(self, server: int | None = None) -> dict[str, Any]:
        """Server ``server``'s fingerprint, taken once per run; the first one taken is saved
        in the results folder."""
        index = self.servers.home if server is None else server
        entry = self.servers[index]
        if entry.environment is None:
            entry.environment = server_fingerprint(
                self.servers.client(index),
                entry.runtime,
                self.servers.object_info(index),
                self.servers.model_dirs,
            )
        if not self._wrote_environment:
            self._wrote_environment = True
            atomic_write(
                self.store.results / "environment.json",
                (json.dumps(entry.environment, indent=2, sort_keys=True) + "\n").encode(),
            )
        return entry.environment

    def environment_changes(self, case: Case, case_name: str, server: int) -> list[str]:
        """How server ``server`` differs from the environment ``case``'s baselines were made
        in (for a failure raised before its outputs were judged: preflight, execution);
        empty when its manifest records none, or the server cannot say."""
        recorded = (read_manifest(self.store.root, f"{case_name}/{case.folder}") or {}).get(
            "environment"
        )
        if not recorded:
            return []
        try:
            return environment_lines(recorded, self.environment(server))
        except ComfytestError:
            return []

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
            prepared = self.prepare(case, index)
            client = self.servers.client(index)
            # With --comfy-max-queued, no waiting for a slot here: the case queues it itself.
            prompt_id = client.submit(prepared.prompt, slot_wait=0)
        except ComfytestError:
            return  # the case meets the same error when it runs, and reports it
        self._ahead = (case, index, client, prepared, prompt_id)

    def _take_ahead(self, case: Case, server: int) -> tuple[Prepared, str] | None:
        """The prompt queued ahead for ``case`` on ``server``, and its id; one queued for
        another case (then skipped or deselected, say) or elsewhere is cancelled."""
        if self._ahead is not None and self._ahead[0] is case and self._ahead[1] == server:
            _, _, _, prepared, prompt_id = self._ahead
            self._ahead = None
            return prepared, prompt_id
        self._drop_ahead()
        return None

    def _drop_ahead(self) -> None:
        if self._ahead is not None:
            _, _, client, _, prompt_id = self._ahead
            self._ahead = None
            client.cancel(prompt_id)

    def close(self) -> None:
        with contextlib.suppress(ComfytestError):
            self._drop_ahead()
        if self._download_dir is not None:
            shutil.rmtree(self._download_dir, ignore_errors=True)
            self._download_dir = None
        self.servers.close()


def _named(callback: ProgressCallback | None, prompt: dict[str, Any]) -> ProgressCallback | None:
    """``callback`` with each node id given as "3 (KSampler)"."""
    if callback is None:
        return None

    def named(node: str, value: int, maximum: int) -> None:
        class_type = prompt.get(node, {}).get("class_type")
        callback(f"{node} ({class_type})" if class_type else node, value, maximum)

    return named
