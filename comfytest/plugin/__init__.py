"""pytest hooks only: options, configure, collect, summary. The work lives in the library."""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from types import FrameType

import pytest

from comfytest.cases.loader import DEFAULTS_FILE
from comfytest.comfy.pool import ServerSpec, home_index
from comfytest.comfy.servers import Servers
from comfytest.errors import ServerError
from comfytest.judging.baselines import BaselineStore
from comfytest.plugin.nodes import (
    RUNNER_KEY,
    SETTINGS_KEY,
    CaseFile,
    CaseItem,
    is_infrastructure,
)
from comfytest.plugin.session import HtmlExtras, Summary
from comfytest.plugin.settings import Settings, add_options
from comfytest.plugin.xdist import SharedServers
from comfytest.runner import Runner

CASE_SUFFIXES = (".yaml", ".yml")


def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser)


def pytest_configure(config: pytest.Config) -> None:
    settings = Settings.from_config(config)
    config.stash[SETTINGS_KEY] = settings
    config.pluginmanager.register(Summary(config), "comfytest-summary")
    html = config.pluginmanager.get_plugin("html")
    if html is not None and getattr(config.option, "htmlpath", None):
        config.pluginmanager.register(HtmlExtras(html), "comfytest-html")
    if settings.configured:
        sigterm_as_ctrl_c(config)
        store = BaselineStore(
            settings.baselines,
            settings.results,
            settings.update,
            settings.keep,
            project=config.rootpath,
        )
        workerinput = getattr(config, "workerinput", {})
        # Managed servers the xdist controller started for the workers (--comfy-servers).
        shared = [
            ServerSpec(url, dict(settings.server_tags))
            for url in workerinput.get("comfytest_servers", ())
        ]
        servers = shared or list(settings.servers)
        pool = Servers(
            servers,
            home_server=home_index(workerinput.get("workerid"), len(servers)),
            server_tags=dict(settings.server_tags),
            managed_elsewhere=bool(shared),
            home=settings.home,
            runtime_name=settings.runtime,
            run_root=config.rootpath / ".comfytest" / "servers",
            server_args=settings.server_args,
            auth_env=settings.auth_env,
            ca_bundle=settings.ca_bundle,
        )
        config.stash[RUNNER_KEY] = Runner(store, pool, timeout=settings.timeout)
        controller = not workerinput and config.pluginmanager.hasplugin("xdist")
        if controller and settings.launch and settings.server_count > 1:
            config.pluginmanager.register(SharedServers(config), "comfytest-shared-servers")


def sigterm_as_ctrl_c(config: pytest.Config) -> None:
    """SIGTERM (what ``timeout`` and a cancelled CI job send) takes the Ctrl-C path: the
    running prompt is interrupted, run.json and the report are written for what finished,
    the servers stop, and pytest exits 2. Only in the main thread, and only when nothing
    else handles SIGTERM; the default comes back at the end of the run."""
    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        return

    def stop(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt("SIGTERM")

    def restore() -> None:
        if signal.getsignal(signal.SIGTERM) is stop:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)

    signal.signal(signal.SIGTERM, stop)
    config.add_cleanup(restore)


def pytest_unconfigure(config: pytest.Config) -> None:
    runner = config.stash.get(RUNNER_KEY, None)
    if runner is not None:
        runner.close()


@pytest.hookimpl(tryfirst=True)
def pytest_runtestloop(session: pytest.Session) -> None:
    """A server given by URL that does not answer is one usage error, not a failure per case."""
    runner = session.config.stash.get(RUNNER_KEY, None)
    if runner is None or runner.servers.manages_servers or session.config.option.collectonly:
        return
    controller = bool(getattr(session.config.option, "numprocesses", None))
    try:
        if controller:
            runner.servers.connect_all()  # every server of the pool answers
        elif any(isinstance(item, CaseItem) for item in session.items):
            runner.client()  # the home server answers; the others when first used
    except ServerError as exc:
        raise pytest.UsageError(str(exc)) from None


def pytest_report_teststatus(
    report: pytest.TestReport, config: pytest.Config
) -> tuple[str, str, str] | None:
    """A case that could not be tested (the server was lost) is an error, not a failure."""
    if is_infrastructure(report):
        return "error", "E", "ERROR"
    return None


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    """Tell a case which case follows it, so its prompt can wait in the server's queue."""
    if isinstance(item, CaseItem):
        item.then = nextitem.queueable() if isinstance(nextitem, CaseItem) else None


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
