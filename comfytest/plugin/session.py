"""The run's state on the side of pytest: verdicts counted from test reports, the end-of-run
summary and files (run.json, the HTML report, sweep reports), and pytest-html extras.

Part of the plugin layer (it imports pytest); the computing is done by the library.
"""

from __future__ import annotations

import json
import time
from collections.abc import Generator
from pathlib import Path
from typing import Any

import pytest

from comfytest.atomic import atomic_write
from comfytest.comfy.changes import UNCHANGED
from comfytest.errors import ERROR_KINDS, FAILURE_KINDS
from comfytest.judging.prune import CaseFileRun, Unused, delete_unused, unused_baselines
from comfytest.plugin.nodes import (
    RUNNER_KEY,
    SETTINGS_KEY,
    is_infrastructure,
    phase_of,
    record_of,
    worker_count,
)
from comfytest.reports.history import append_history
from comfytest.reports.html import evidence_extras, write_html_report
from comfytest.reports.record import case_record, reduced_lines, run_record
from comfytest.reports.sweep import write_sweeps
from comfytest.reports.table import summary_table

__all__ = ["HtmlExtras", "Summary"]


class Summary:
    """Counts output verdicts and finds unused baselines from test reports.

    Reports reach the xdist controller too, so this works the same with and without xdist;
    only the process that is not an xdist worker reports and deletes. Unused baselines are
    looked for only after a session that provably ran to its end (``_ended_normally``), and
    only among those of case files whose every case finished (``judging/prune.py``).
    """

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.counts: dict[str, int] = {}
        self.used: set[tuple[str, str]] = set()
        self.folders: set[str] = set()
        self.judged_folders: set[str] = set()
        self.collection_failed = False
        #: Per case file (the file part of a node id): what its items said of it at
        #: collection (owner, baselines folder, number of cases), and the items that finished.
        self.case_files: dict[str, dict[str, Any]] = {}
        self.finished: dict[str, set[str]] = {}
        #: A report from outside the setup/call/teardown protocol: an xdist worker crashed.
        self.crashed = False
        self.interrupted = False
        self.loop_finished = False
        self.unused: list[Unused] = []
        self.deleted: list[Unused] = []
        #: Why --comfy-prune deleted nothing, when it could not prove the run complete.
        self.not_pruned = ""
        self.environment_changes: dict[str, int] = {}
        self.noise: dict[str, dict[str, Any]] = {}
        self.cases: list[dict[str, Any]] = []
        self.compared: dict[str, str] = {}
        self.sweeps: list[dict[str, Any]] = []
        self.reports: list[tuple[str, Path]] = []
        self.infrastructure = 0
        #: Failed or errored cases by kind (comfytest.errors.FAILURE_KINDS).
        self.kinds: dict[str, int] = {}
        #: Cases that ran again on another server after theirs was lost: (nodeid, details).
        self.retried: list[tuple[str, dict[str, str]]] = []
        #: The server lines the cases' processes reported (xdist workers' servers), in order.
        self.server_lines: dict[str, None] = {}
        self.started = time.time()

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed:
            self.collection_failed = True

    def pytest_keyboard_interrupt(self) -> None:
        self.interrupted = True

    @pytest.hookimpl(wrapper=True)
    def pytest_runtestloop(self, session: pytest.Session) -> Generator[None, object, object]:
        result = yield  # an interrupt (a second Ctrl-C too) or a stop raises past this line
        self.loop_finished = True
        return result

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when not in ("setup", "call", "teardown"):
            self.crashed = True  # an xdist worker crashed: its report carries no record
        record = record_of(report)
        if record is None:
            return
        for line in (record.server_line or "").splitlines():
            self.server_lines.setdefault(line)
        folder = record.folder
        self.folders.add(folder)
        when = phase_of(report)
        if record.case_file is not None:
            case_file = report.nodeid.split("::")[0]
            self.case_files[case_file] = record.case_file
            if when == "teardown":
                self.finished.setdefault(case_file, set()).add(report.nodeid)
        if when == "call":
            if record.retried is not None:
                self.retried.append((report.nodeid, record.retried))
            if record.compare is not None:
                self.compared[report.nodeid] = record.compare
            message = str(report.longrepr)[:2000] if report.failed else ""
            outcome = "error" if report.when != "call" and report.failed else report.outcome
            if record.sweep is not None:
                changed = outcome == "passed" and bool(record.changed_within_tolerance)
                verdict = "changed" if changed else outcome
                self.sweeps.append({**record.sweep, "verdict": verdict, "id": report.nodeid})
            if is_infrastructure(report):
                self.infrastructure += 1
            if report.failed and record.kind:
                self.kinds[record.kind] = self.kinds.get(record.kind, 0) + 1
            span = (report.start, report.stop)
            self.cases.append(
                case_record(report.nodeid, outcome, report.duration, record, message, span)
            )
            for key, spread in (record.noise or {}).items():
                self.noise[f"{report.nodeid} {key}"] = spread
            if record.outputs is not None:
                self.judged_folders.add(folder)
                for key, status in record.outputs.items():
                    self.counts[status] = self.counts.get(status, 0) + 1
                    self.used.add((folder, key))
            for change in record.environment_changes or []:  # a preflight failure's too
                if not change.startswith(UNCHANGED):  # what stayed the same: said per case
                    self.environment_changes[change] = self.environment_changes.get(change, 0) + 1
        elif when == "setup" and not report.passed:
            # Skipped (a mark) or errored before it ran: a row in the table and the report.
            outcome = "skipped" if report.skipped else "error"
            message = (
                str(report.longrepr[2])
                if report.skipped and isinstance(report.longrepr, tuple)
                else str(report.longrepr)[:2000]
            )
            self.cases.append(case_record(report.nodeid, outcome, 0.0, record, message))

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        settings = self.config.stash[SETTINGS_KEY]
        if hasattr(self.config, "workerinput"):
            return
        if self.noise:
            body = json.dumps(self.noise, indent=2, sort_keys=True) + "\n"
            atomic_write(settings.results / "noise_floor.json", body.encode())
        sweeps = write_sweeps(self.sweeps)
        self.reports = [(sweep["case"], Path(sweep["folder"])) for sweep in sweeps]
        if self.cases:
            workers = worker_count(self.config)
            record = run_record(
                self.cases,
                started=self.started,
                results=settings.results,
                rootdir=self.config.rootpath,
                workers=workers,
                baselines=settings.baselines,
                sweeps=sweeps,
                update=settings.update,
            )
            body = json.dumps(record, indent=2, sort_keys=True) + "\n"
            atomic_write(settings.results / "run.json", body.encode())
            append_history(settings.results, record)
            if settings.report is not None:
                write_html_report(record, settings.results, settings.report)
        if not self.folders or settings.noise_floor:
            return
        why_not = self._ended_normally(session, exitstatus)
        files = [
            CaseFileRun(
                known["owner"],
                known["folder"],
                complete=len(self.finished.get(case_file, ())) == known["cases"],
            )
            for case_file, known in sorted(self.case_files.items())
        ]
        if not why_not and not any(f.complete for f in files):
            why_not = "no case file had every one of its cases selected and finished"
        if why_not:
            self.not_pruned = why_not
            return
        untouched = self.folders - self.judged_folders
        self.unused = unused_baselines(
            settings.baselines, files, self.used, self.judged_folders, untouched
        )
        if self.unused and settings.prune:
            self.deleted = delete_unused(settings.baselines, self.unused)

    def _ended_normally(self, session: pytest.Session, exitstatus: int) -> str:
        """Why the session did not provably run to its end, or "" when it did."""
        if session.shouldstop or session.shouldfail:  # -x, --maxfail, a stop requested
            return f"the run stopped early ({session.shouldstop or session.shouldfail})"
        if self.interrupted or not self.loop_finished:
            return "the run was interrupted"
        if exitstatus not in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED):
            return f"the run ended with exit status {int(exitstatus)}"
        if self.collection_failed:
            return "a file could not be collected"
        if self.crashed:
            return "an xdist worker crashed"
        return ""

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        runner = self.config.stash.get(RUNNER_KEY, None)
        server_line = runner.servers.server_line if runner is not None else ""
        # Under xdist the workers reach the servers: their lines came with the cases.
        server_line = server_line or "\n".join(self.server_lines)
        quiet = not (self.counts or server_line or self.unused or self.noise or self.cases)
        quiet = quiet and not (self.config.stash[SETTINGS_KEY].prune and self.not_pruned)
        if quiet and not self.infrastructure and not self.retried:
            return
        terminalreporter.write_sep("-", "comfytest")
        if server_line:
            terminalreporter.write_line(server_line)
        if self.cases and not hasattr(self.config, "workerinput"):
            everything = self.config.option.verbose >= 1
            for line in summary_table(self.cases, everything=everything):
                terminalreporter.write_line(line)
        if self.infrastructure:
            terminalreporter.write_line(
                f"not tested: {self.infrastructure} case(s) errored because no server could "
                "run them: lost, unreachable or not started (infrastructure, not regressions)"
            )
        if self.kinds:
            terminalreporter.write_line(kinds_line(self.kinds))
        for line in reduced_lines(self.cases):
            terminalreporter.write_line(line)
        for nodeid, retried in self.retried:
            terminalreporter.write_line(
                f"retried on another server: {nodeid} ({retried['lost']} lost; ran on "
                f"{retried['on']})"
            )
        if self.counts:
            order = ("passed", "failed", "missing", "created", "updated")
            # In an update run a passing output is an unchanged baseline: say so.
            unchanged = self.config.stash[SETTINGS_KEY].update != "none"
            names = {"passed": "unchanged"} if unchanged else {}
            parts = [f"{self.counts[k]} {names.get(k, k)}" for k in order if self.counts.get(k)]
            terminalreporter.write_line("outputs: " + ", ".join(parts))
        if self.noise:
            terminalreporter.write_line("noise floor (each run against the first):")
            for name, spread in sorted(self.noise.items()):
                verdict = "deterministic" if spread["deterministic"] else "NOT deterministic"
                terminalreporter.write_line(
                    f"  {name}: {spread['runs']} runs, {verdict}; max phash "
                    f"{spread['max_distances']['phash']}, max pixel diff "
                    f"{spread['max_pixel_diff']}, min PSNR {spread['min_psnr'] or 'inf'}; "
                    f"suggested tolerance {spread['suggested_tolerance']}"
                )
                terminalreporter.write_line(f"    why: {spread['reason']}")
            terminalreporter.write_line(
                f"  written to {self.config.stash[SETTINGS_KEY].results / 'noise_floor.json'}"
            )
        settings = self.config.stash[SETTINGS_KEY]
        if settings.compare is not None:
            if self.compared:
                terminalreporter.write_line(f"timings against {settings.compare}:")
                for case, line in sorted(self.compared.items()):
                    terminalreporter.write_line(f"  {case}: {line}")
            elif self.cases:
                terminalreporter.write_line(
                    f"timings not compared with {settings.compare}: no common timed cases, "
                    "or it ran with another number of xdist workers"
                )
        for _, folder in self.reports:
            terminalreporter.write_line(f"sweep report: {folder}/ (grid.png, chart.png, table.md)")
        report = self.config.stash[SETTINGS_KEY].report
        if report is not None and self.cases:
            terminalreporter.write_line(f"HTML report: {report}")
        if self.environment_changes:
            terminalreporter.write_line("baselines made in another environment:")
            for change, cases in sorted(self.environment_changes.items()):
                terminalreporter.write_line(f"  {change} ({cases} cases)")
        self._write_unused(terminalreporter)

    def _write_unused(self, terminalreporter: pytest.TerminalReporter) -> None:
        """Every baseline deleted, and every one found unused, each with why."""
        settings = self.config.stash[SETTINGS_KEY]
        root = self.config.rootpath

        def shown(path: Path) -> str:
            return path.relative_to(root).as_posix() if path.is_relative_to(root) else str(path)

        if self.deleted:
            terminalreporter.write_line(
                f"baselines deleted: {len(self.deleted)} (committed ones come back with "
                "git checkout -- PATH)"
            )
            for item in self.deleted:
                terminalreporter.write_line(f"  {shown(item.path)}: {item.reason}")
        left = [u for u in self.unused if u not in self.deleted]
        if left:
            hint = "" if settings.prune else " (--comfy-prune deletes them)"
            terminalreporter.write_line(f"baselines unused{hint}: {len(left)}")
            for item in left:
                terminalreporter.write_line(f"  {shown(item.path)}: {item.reason}")
        if settings.prune and self.not_pruned:
            terminalreporter.write_line(f"baselines not pruned: {self.not_pruned}")


class HtmlExtras:
    """With pytest-html installed: each case's images and measures in its report too."""

    def __init__(self, html: Any) -> None:
        self.extras = html.extras

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(
        self, item: pytest.Item, call: pytest.CallInfo[None]
    ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
        report = yield
        record = record_of(report)
        if report.when != "call" or record is None or record.evidence is None:
            return report
        table, images = evidence_extras(
            record.evidence,
            record.comparisons or {},
            item.config.stash[SETTINGS_KEY].results,
        )
        found = [self.extras.html(table)]
        found += [self.extras.image(content, name) for name, content in images]
        report.extras = [*getattr(report, "extras", []), *found]  # type: ignore[attr-defined]
        return report


def kinds_line(kinds: dict[str, int]) -> str:
    """E.g. "not passed: 2 regressions (failed), 1 broken workflow (error)"."""
    names = {
        "regression": ("regression", "regressions"),
        "slower": ("slower", "slower"),
        "broken": ("broken workflow", "broken workflows"),
        "infrastructure": ("infrastructure problem", "infrastructure problems"),
        "baseline": ("baseline problem", "baseline problems"),
    }
    parts = [
        f"{kinds[kind]} {names[kind][kinds[kind] != 1]} "
        f"({'error' if kind in ERROR_KINDS else 'failed'})"
        for kind in FAILURE_KINDS
        if kinds.get(kind)
    ]
    return "not passed: " + ", ".join(parts)
