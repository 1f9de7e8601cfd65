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
from comfytest.judging.baselines import delete_baselines, unused_baselines
from comfytest.plugin.nodes import (
    RUNNER_KEY,
    SETTINGS_KEY,
    is_infrastructure,
    record_of,
    worker_count,
)
from comfytest.reports.html import evidence_extras, write_html_report
from comfytest.reports.record import case_record, run_record
from comfytest.reports.sweep import Cell, group_cells, write_report
from comfytest.reports.table import summary_table

__all__ = ["HtmlExtras", "Summary"]


class Summary:
    """Counts output verdicts and finds unused baselines from test reports.

    Reports reach the xdist controller too, so this works the same with and without xdist;
    only the process that is not an xdist worker reports and deletes.
    """

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.counts: dict[str, int] = {}
        self.used: set[tuple[str, str]] = set()
        self.folders: set[str] = set()
        self.judged_folders: set[str] = set()
        self.collection_failed = False
        self.unused: list[Path] = []
        self.deleted = False
        self.environment_changes: dict[str, int] = {}
        self.noise: dict[str, dict[str, Any]] = {}
        self.cases: list[dict[str, Any]] = []
        self.compared: dict[str, str] = {}
        self.sweeps: list[dict[str, Any]] = []
        self.reports: list[tuple[str, Path]] = []
        self.infrastructure = 0
        #: Cases that ran again on another server after theirs was lost: (nodeid, details).
        self.retried: list[tuple[str, dict[str, str]]] = []
        self.started = time.time()

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed:
            self.collection_failed = True

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        record = record_of(report)
        if record is None:
            return
        folder = record.folder
        self.folders.add(folder)
        if report.when == "call":
            if record.sweep is not None:
                self.sweeps.append(record.sweep)
            if record.retried is not None:
                self.retried.append((report.nodeid, record.retried))
            if record.compare is not None:
                self.compared[report.nodeid] = record.compare
            message = str(report.longrepr)[:2000] if report.failed else ""
            outcome = "error" if is_infrastructure(report) else report.outcome
            if outcome == "error":
                self.infrastructure += 1
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
        elif report.when == "setup" and not report.passed:
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
        for case, records in group_cells(self.sweeps).items():
            cells = [
                Cell(
                    r["values"],
                    r["seconds"],
                    Path(r["image"]) if r["image"] else None,
                    bool(r.get("cold")),
                )
                for r in records
            ]
            folder = Path(records[0]["results"]) / "sweep"
            write_report(folder, case, cells, records[0]["reference"] or None)
            self.reports.append((case, folder))
        if self.cases:
            workers = worker_count(self.config)
            record = run_record(
                self.cases,
                started=self.started,
                results=settings.results,
                rootdir=self.config.rootpath,
                workers=workers,
                baselines=settings.baselines,
                sweeps=[{"case": case, "folder": str(folder)} for case, folder in self.reports],
                update=settings.update,
            )
            body = json.dumps(record, indent=2, sort_keys=True) + "\n"
            atomic_write(settings.results / "run.json", body.encode())
            if settings.report is not None:
                write_html_report(record, settings.results, settings.report)
        if not self.folders or settings.noise_floor:
            return
        if not self._whole_suite(session, exitstatus) or not settings.baselines.is_dir():
            return
        untouched = self.folders - self.judged_folders
        self.unused = unused_baselines(settings.baselines, self.used, untouched)
        if self.unused and settings.update == "all":
            delete_baselines(settings.baselines, self.unused)
            self.deleted = True

    def _whole_suite(self, session: pytest.Session, exitstatus: int) -> bool:
        """True when every case of every case folder ran: only then is "unused" true."""
        narrowing = ("keyword", "markexpr", "deselect", "lf", "maxfail", "stepwise")
        if (
            self.collection_failed
            or exitstatus not in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED)
            or any(getattr(self.config.option, name, None) for name in narrowing)
        ):
            return False
        roots = self.config.stash[SETTINGS_KEY].case_paths
        args = [self.config.invocation_params.dir / a for a in self.config.args if "::" not in a]
        if len(args) != len(self.config.args):
            return False
        return all(any(root.is_relative_to(arg.resolve()) for arg in args) for root in roots)

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        runner = self.config.stash.get(RUNNER_KEY, None)
        server_line = runner.servers.server_line if runner is not None else ""
        quiet = not (self.counts or server_line or self.unused or self.noise or self.cases)
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
                f"not tested: {self.infrastructure} case(s) errored because the server was "
                "lost (infrastructure, not regressions)"
            )
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
        if self.unused:
            root = self.config.stash[SETTINGS_KEY].baselines
            verb = "deleted" if self.deleted else "unused (--comfy-update=all deletes them)"
            terminalreporter.write_line(f"baselines {verb}: {len(self.unused)}")
            for path in self.unused[:20]:
                terminalreporter.write_line(f"  {path.relative_to(root)}")
            if len(self.unused) > 20:
                terminalreporter.write_line(f"  ... and {len(self.unused) - 20} more")


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
