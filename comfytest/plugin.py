"""pytest hooks only: options, configure, collect, summary. The work lives in the library."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from comfytest.baselines import BaselineStore
from comfytest.cases import DEFAULTS_FILE
from comfytest.nodes import RUNNER_KEY, SETTINGS_KEY, CaseFile, CaseItem
from comfytest.runner import Runner
from comfytest.settings import Settings, add_options

CASE_SUFFIXES = (".yaml", ".yml")


def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser)


def pytest_configure(config: pytest.Config) -> None:
    settings = Settings.from_config(config)
    config.stash[SETTINGS_KEY] = settings
    config.pluginmanager.register(Summary(config), "comfytest-summary")
    if settings.configured:
        store = BaselineStore(settings.baselines, settings.results, settings.update, settings.keep)
        config.stash[RUNNER_KEY] = Runner(
            store,
            url=settings.url,
            home=settings.home,
            runtime_name=settings.runtime,
            run_root=config.rootpath / ".comfytest" / "servers",
            server_args=settings.server_args,
            timeout=settings.timeout,
        )


def pytest_unconfigure(config: pytest.Config) -> None:
    runner = config.stash.get(RUNNER_KEY, None)
    if runner is not None:
        runner.close()


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> CaseFile | None:
    if file_path.suffix not in CASE_SUFFIXES or file_path.name == DEFAULTS_FILE:
        return None
    settings = parent.config.stash[SETTINGS_KEY]
    if any(file_path.is_relative_to(root) for root in settings.case_paths):
        return CaseFile.from_parent(parent, path=file_path)
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not config.stash[SETTINGS_KEY].configured and any(isinstance(i, CaseItem) for i in items):
        raise pytest.UsageError(
            "ComfyUI cases were collected but no server is configured: pass --comfy-launch "
            "(start a managed ComfyUI) or --comfy-url URL (use a running one)"
        )


class Summary:
    """Counts output verdicts from test reports (the same on the xdist controller)."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.counts: dict[str, int] = {}

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        for name, value in report.user_properties:
            if name == "comfytest_outputs" and report.when == "call":
                for status in json.loads(str(value)).values():
                    self.counts[status] = self.counts.get(status, 0) + 1

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        runner = self.config.stash.get(RUNNER_KEY, None)
        server_line = runner.server_line if runner is not None else ""
        if not self.counts and not server_line:
            return
        terminalreporter.write_sep("-", "comfytest")
        if server_line:
            terminalreporter.write_line(server_line)
        if self.counts:
            order = ("passed", "failed", "missing", "created", "updated")
            parts = [f"{self.counts[k]} {k}" for k in order if self.counts.get(k)]
            terminalreporter.write_line("outputs: " + ", ".join(parts))
