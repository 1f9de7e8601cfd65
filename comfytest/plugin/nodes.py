"""pytest collection nodes: a case file, and one item per case."""

from __future__ import annotations

import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from comfytest.cases.loader import Case, load_cases
from comfytest.defaults import Status
from comfytest.errors import (
    ComfytestError,
    InfrastructureError,
    OutputMismatch,
    RuntimeSetupError,
    TooSlow,
    kind_of,
)
from comfytest.judging.manifest import case_owner
from comfytest.plugin.context import (
    case_name,
    collection_schemas,
    folder_clash,
    replayed_options,
    saved_run,
    worker_count,
)
from comfytest.plugin.outcomes import (
    RECORD_ATTRIBUTE,
    as_error,
    is_infrastructure,
    mismatch_kind,
    phase_of,
    record_of,
)
from comfytest.plugin.settings import RUNNER_KEY, SETTINGS_KEY
from comfytest.reports.progress import LiveProgress
from comfytest.reports.record import CaseRecord
from comfytest.reports.timecompare import compare_timing, execution_seconds
from comfytest.runner import CaseResult
from comfytest.runner.result import environment_block

__all__ = [
    "RECORD_ATTRIBUTE",
    "RUNNER_KEY",
    "SETTINGS_KEY",
    "CaseFile",
    "CaseItem",
    "as_error",
    "case_name",
    "is_infrastructure",
    "phase_of",
    "record_of",
    "worker_count",
]


class CaseFile(pytest.File):
    """A YAML file of cases; a mistake in it is a collection error at its line."""

    def collect(self) -> Iterator[CaseItem]:
        settings = self.config.stash[SETTINGS_KEY]
        root = next((r for r in settings.case_paths if self.path.is_relative_to(r)), None)
        folder = case_name(self.path, settings.case_paths, self.config.rootpath)
        clash = folder_clash(self.path, folder, self.config)
        if clash:
            raise self.CollectError(clash)
        try:
            within = None if settings.allow_outside else self.config.rootpath
            cases = load_cases(self.path, root, within, collection_schemas(self.config))
        except ComfytestError as exc:
            raise self.CollectError(str(exc)) from None
        # What the run's end needs to prove every case of this file ran (see judging/prune.py).
        whole = {
            "owner": case_owner(self.path, self.config.rootpath),
            "folder": folder,
            "cases": len(cases),
        }
        for index, case in enumerate(cases):
            item = CaseItem.from_parent(self, name=case.name, case=case, index=index)
            item.record.folder = f"{item.case_name}/{case.folder}"
            item.record.case_file = whole
            for mark in case.marks:
                item.add_marker(getattr(pytest.mark, mark.name)(*mark.args, **mark.kwargs))
            for axis, value in case.values.items():
                item.extra_keyword_matches.add(f"{axis}:{value}")
            yield item


class CaseItem(pytest.Item):
    """One case: run its prompt on ComfyUI and judge every output against its baseline."""

    def __init__(self, *, case: Case, index: int = 0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.case = case
        self.case_index = index
        #: The case that runs after this one in this process, when its prompt may be queued
        #: while this one runs (set by the plugin from pytest's ``nextitem``).
        self.then: Case | None = None
        #: What this case's run found; carried on each of its reports (see ``record_of``).
        self.record = CaseRecord(description=case.description)

    def queueable(self) -> Case | None:
        """This item's case, when its prompt can be queued before the item runs: a plain
        run (no repeats, no noise floor) with no mark that might skip it."""
        settings = self.config.stash[SETTINGS_KEY]
        repeat = settings.repeat if settings.repeat is not None else self.case.repeat
        warmup = settings.warmup if settings.warmup is not None else self.case.warmup
        skippable = any(self.get_closest_marker(name) for name in ("skip", "skipif", "xfail"))
        plain = repeat == 1 and not warmup and not settings.noise_floor
        return self.case if plain and not skippable else None

    @property
    def case_name(self) -> str:
        settings = self.config.stash[SETTINGS_KEY]
        return case_name(self.path, settings.case_paths, self.config.rootpath)

    def setup(self) -> None:
        """A case whose ``server:`` tags no server of the pool has is skipped, saying why."""
        runner = self.config.stash[RUNNER_KEY]
        if runner.servers.pick(self.case.server) is None:
            pytest.skip(runner.servers.no_server_reason(self.case.server))

    def runtest(self) -> None:
        runner = self.config.stash[RUNNER_KEY]
        index = runner.servers.pick(self.case.server)
        if index is None:
            pytest.skip(runner.servers.no_server_reason(self.case.server))
        try:
            _, retried = runner.servers.run_with_fallback(self.case.server, index, self._run)
            if retried is not None:
                self.record.retried = vars(retried)
        except ComfytestError as exc:
            self.record.kind = kind_of(exc)
            if isinstance(exc, InfrastructureError):
                self.record.infrastructure = type(exc).__name__
            if isinstance(exc, RuntimeSetupError):
                # The managed server did not start: no later case of this process can run.
                self.session.shouldstop = f"the managed ComfyUI did not start: {exc}"
            raise
        finally:
            self.record.server_line = runner.servers.server_line or None
            self.user_properties.extend(self.record.junit_properties())  # JUnit reads these

    def _run(self, server: int) -> None:
        """Run the case on server ``server`` of the pool and judge it."""
        runner = self.config.stash[RUNNER_KEY]
        settings = self.config.stash[SETTINGS_KEY]
        if settings.noise_floor:
            spreads = runner.noise_floor(self.case, settings.noise_floor, server)
            self.record.noise = {n.key: n.as_dict() for n in spreads}
            return
        try:
            result = runner.run_case(
                self.case,
                self.case_name,
                server=server,
                repeat=settings.repeat if settings.repeat is not None else self.case.repeat,
                warmup=settings.warmup if settings.warmup is not None else self.case.warmup,
                on_progress=self._live_progress(),
                then=self.then,
            )
        except InfrastructureError:
            raise
        except ComfytestError:
            # Preflight, a rejected prompt, an execution error: say what changed too.
            changes = runner.environment_changes(self.case, self.case_name, server)
            self.record.environment_changes = changes or None
            raise
        self._record(result)
        if not result.passed:
            lines = [*result.failure_lines(), *self._accept_hint(result)]
            raise OutputMismatch(lines, kind=mismatch_kind(result))
        saved = saved_run(self.config)
        timing = saved and compare_timing(saved, self.nodeid, result.timings, settings.slower_than)
        if timing:
            self.record.compare = timing.describe()
            if timing.slower:
                raise TooSlow(f"{self.name}: slower than the saved run: {timing.describe()}")

    def _live_progress(self) -> LiveProgress | None:
        """Under -v, outside xdist workers (they have no terminal): sampler progress."""
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        worker = hasattr(self.config, "workerinput")
        if self.config.option.verbose < 1 or reporter is None or worker:
            return None
        capture = self.config.pluginmanager.get_plugin("capturemanager")

        def write(line: str) -> None:
            if capture is None:
                reporter.write_line(line)
                return
            with capture.global_and_fixture_disabled():  # else the line is captured
                reporter.write_line(line)

        return LiveProgress(write)

    def _record(self, result: CaseResult) -> None:
        """The case's evidence in its record (the xdist controller and JUnit XML see it)."""
        record = self.record
        record.outputs = {v.key: v.status.value for v in result.verdicts}
        record.comparisons = {
            v.key: v.comparison.as_dict() for v in result.verdicts if v.comparison
        }
        record.evidence = {v.key: v.evidence() for v in result.verdicts}
        record.changed_within_tolerance = [
            v.key for v in result.verdicts if v.status == Status.PASSED and v.changed
        ] or None
        record.timings = result.timings
        record.cached_nodes = list(result.run.cached_nodes)
        record.environment_changes = result.environment_changes
        record.server = result.server
        record.prompt_id = result.run.prompt_id
        record.stand_ins = result.stand_ins or None
        record.capped = result.capped or None
        if self.case.cell:
            timing = execution_seconds(result.timings)
            record.sweep = {
                "case": f"{self.nodeid.split('::')[0]}::{self.case.case_id}",
                "results": str(
                    self.config.stash[SETTINGS_KEY].results / self.case_name / self.case.case_id
                ),
                "values": dict(self.case.values),
                "reference": dict(self.case.reference),
                "seconds": timing[0] if timing else None,
                "cold": bool(result.timings.get("cold")),
                "image": str(result.cell_image) if result.cell_image else None,
                "order": self.case_index,
            }

    def _accept_hint(self, result: CaseResult) -> list[str]:
        """The command that accepts this case's new outputs, complete with the options this
        run used to reach its server; none when accepting would be unsafe (an unreadable
        baseline or output, a lost output)."""
        if not any(v.acceptable for v in result.verdicts):
            return []
        mode = "missing" if all(v.status != Status.FAILED for v in result.verdicts) else "changed"
        target = (
            f"{self.path.relative_to(self.config.rootpath)}::{self.name}"
            if self.path.is_relative_to(self.config.rootpath)
            else self.nodeid
        )
        words = ["pytest", target, *replayed_options(self.config), f"--comfy-update={mode}"]
        return [f"  accept it: {shlex.join(words)}"]

    def repr_failure(
        self,
        excinfo: pytest.ExceptionInfo[BaseException],
        style: Any = None,
    ) -> str | Any:
        if isinstance(excinfo.value, ComfytestError):
            if isinstance(excinfo.value, OutputMismatch):
                return str(excinfo.value)  # its lines end with the environment's
            return "\n".join(
                [str(excinfo.value), *environment_block(self.record.environment_changes or [])]
            )
        return super().repr_failure(excinfo, style=style)

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, self.case.line - 1, f"case {self.name}"
