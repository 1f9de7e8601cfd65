"""pytest collection nodes: a case file, and one item per case."""

from __future__ import annotations

import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from comfytest.cases.loader import DEFAULTS_FILE, Case, load_cases
from comfytest.comfy.schema_cache import NodeSchemas, read_schemas, server_key
from comfytest.defaults import Status
from comfytest.errors import (
    ERROR_KINDS,
    ComfytestError,
    InfrastructureError,
    OutputMismatch,
    RuntimeSetupError,
    TooSlow,
    kind_of,
)
from comfytest.judging.manifest import case_owner
from comfytest.plugin.settings import RUNNER_KEY, SETTINGS_KEY
from comfytest.reports.progress import LiveProgress
from comfytest.reports.record import CaseRecord
from comfytest.reports.timecompare import SavedRun, compare_timing, execution_seconds
from comfytest.runner import CaseResult
from comfytest.runner.result import environment_block

__all__ = [
    "RUNNER_KEY",
    "SETTINGS_KEY",
    "CaseFile",
    "CaseItem",
    "as_error",
    "case_name",
    "is_infrastructure",
    "phase_of",
    "record_of",
]

#: The test report attribute that carries a case's record (a plain dict, so xdist sends it).
RECORD_ATTRIBUTE = "comfytest"


def record_of(report: pytest.TestReport | pytest.CollectReport) -> CaseRecord | None:
    """The record of the case this report is about; None for anything but a case."""
    data = getattr(report, RECORD_ATTRIBUTE, None)
    return CaseRecord.from_dict(data) if isinstance(data, dict) else None


#: The attribute that keeps the phase of a report shown as a setup error (see ``as_error``).
PHASE_ATTRIBUTE = "comfytest_phase"


def phase_of(report: pytest.TestReport) -> str:
    """The phase a case's report really came from: "call" also for a judged case shown as
    an error (``as_error``)."""
    return str(getattr(report, PHASE_ATTRIBUTE, report.when))


def as_error(report: pytest.TestReport, record: CaseRecord) -> None:
    """A case that could not be tested or judged (a broken workflow, a lost server, a
    baseline problem) is a pytest *error*, not a failure. pytest makes every exception of
    the test itself a failure, so its call report is shown as its setup's: the terminal
    says ERROR, JUnit writes <error>, and the session still reads it as the call."""
    if report.when == "call" and report.failed and record.kind in ERROR_KINDS:
        setattr(report, PHASE_ATTRIBUTE, "call")
        report.when = "setup"


def is_infrastructure(report: pytest.TestReport) -> bool:
    """A case that errored because it could not be tested (a lost or unreachable server)."""
    record = record_of(report)
    return report.failed and bool(record and record.kind == "infrastructure")


def case_name(path: Path, case_roots: tuple[Path, ...], rootdir: Path) -> str:
    """Baseline folder name of a case file: its path under its case root, without suffix."""
    for root in case_roots:
        if path.is_relative_to(root):
            return path.relative_to(root).with_suffix("").as_posix()
    if path.is_relative_to(rootdir):
        return path.relative_to(rootdir).with_suffix("").as_posix()
    return path.stem


#: Baselines folder name -> the case file collected for it (one file per folder).
FOLDERS_KEY = pytest.StashKey[dict[str, Path]]()


def folder_clash(path: Path, folder: str, config: pytest.Config) -> str | None:
    """Why case file ``path`` may not have baselines folder ``folder``: another case file has
    it too (``t.yml`` beside ``t.yaml`` even when only one is collected, or a file of the
    same name under another case root). Each would overwrite the other's baselines."""
    claimed = config.stash.setdefault(FOLDERS_KEY, {})
    others = [claimed[folder]] if claimed.get(folder, path) != path else []
    others += [
        sibling
        for sibling in (path.with_suffix(s) for s in (".yaml", ".yml") if s != path.suffix)
        if sibling.is_file() and sibling.name != DEFAULTS_FILE and sibling not in others
    ]
    claimed.setdefault(folder, path)
    if not others:
        return None
    root = config.rootpath
    names = [p.relative_to(root) if p.is_relative_to(root) else p for p in (path, *others)]
    baselines = config.stash[SETTINGS_KEY].baselines
    shown = baselines.relative_to(root) if baselines.is_relative_to(root) else baselines
    return (
        f"{names[0]}: its baselines folder {shown / folder}/ is also that of "
        f"{', '.join(str(n) for n in names[1:])}; each would overwrite the other's "
        "baselines: rename one of them"
    )


SAVED_RUN_KEY = pytest.StashKey[SavedRun | None]()


def saved_run(config: pytest.Config) -> SavedRun | None:
    """The run to compare timings with, read once per process; None when the worker counts
    differ (a parallel run is never compared with a serial one)."""
    if SAVED_RUN_KEY not in config.stash:
        path = config.stash[SETTINGS_KEY].compare
        saved = SavedRun.load(path) if path else None
        if saved is not None and saved.workers != worker_count(config):
            saved = None
        config.stash[SAVED_RUN_KEY] = saved
    return config.stash[SAVED_RUN_KEY]


SCHEMAS_KEY = pytest.StashKey[NodeSchemas | None]()


def collection_schemas(config: pytest.Config) -> NodeSchemas | None:
    """The cached /object_info of the server cases will run on first (the first --comfy-url,
    or the managed runtime), read once per process; None when there is none."""
    if SCHEMAS_KEY not in config.stash:
        settings = config.stash[SETTINGS_KEY]
        key = None
        if settings.servers:
            key = server_key(settings.servers[0].url)
        elif settings.launch:
            key = server_key(None, settings.runtime)
        config.stash[SCHEMAS_KEY] = read_schemas(config.rootpath, key) if key else None
    return config.stash[SCHEMAS_KEY]


def worker_count(config: pytest.Config) -> int:
    workerinput = getattr(config, "workerinput", None)
    if workerinput is not None:
        return int(workerinput.get("workercount", 0))
    return int(getattr(config.option, "numprocesses", 0) or 0)


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


#: Options a pasted accept command must not repeat (they would change what it does).
NOT_REPLAYED = (
    "--comfy-update",
    "--comfy-prune",
    "--comfy-report",
    "--comfy-noise-floor",
    "--comfy-compare",
    "--comfy-slower-than",
    "--comfy-repeat",
    "--comfy-warmup",
)
#: Options that take no value.
FLAGS = ("--comfy-launch", "--comfy-reuse", "--comfy-allow-outside", "--comfy-prune")


def replayed_options(config: pytest.Config) -> list[str]:
    """The ``--comfy-*`` options (and ``-c``/``--rootdir``) this run was given, as given,
    minus those that would change what an accept run does."""
    args = list(config.invocation_params.args)
    kept: list[str] = []
    i = 0
    while i < len(args):
        arg = str(args[i])
        name = arg.split("=", 1)[0]
        takes_value = "=" not in arg and name not in FLAGS
        if name.startswith("--comfy-") or name in ("-c", "--config-file", "--rootdir"):
            words = [arg, str(args[i + 1])] if takes_value and i + 1 < len(args) else [arg]
            if name not in NOT_REPLAYED:
                kept += words
            i += len(words)
            continue
        i += 1
    return kept


def mismatch_kind(result: CaseResult) -> str:
    """A regression when an output differs or was not produced; a baseline problem when
    the only trouble is missing or unreadable baselines; broken when the server sent no
    output to judge, or one that is no image."""
    bad = [v for v in result.verdicts if not v.ok]
    if any(v.status == Status.FAILED and not (v.baseline_corrupt or v.unreadable) for v in bad):
        return "regression"
    if not bad or any(v.unreadable for v in bad):
        return "broken"
    return "baseline"
