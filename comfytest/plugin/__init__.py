"""pytest hooks only: options, configure, collect, summary. The work lives in the library.

Every pytest run in an environment with comfytest installed imports this module, so it
imports light modules only; the case machinery (YAML, numpy, PIL, httpx, jinja2) loads when
a case file is collected or a ComfyUI server is configured.
"""

from __future__ import annotations

import signal
import sys
import threading
import uuid
from collections.abc import Generator
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

import pytest

from comfytest.comfy.pool import ServerSpec, home_index
from comfytest.errors import RuntimeSetupError, ServerError
from comfytest.plugin.options import add_options
from comfytest.plugin.settings import RUNNER_KEY, SETTINGS_KEY, Settings
from comfytest.plugin.stray import STRAY_KEY, is_case_path, looks_like_a_case_file, stray_hint

if TYPE_CHECKING:
    from comfytest.plugin.nodes import CaseFile, CaseItem

CASE_SUFFIXES = (".yaml", ".yml")


def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser)


def pytest_configure(config: pytest.Config) -> None:
    settings = Settings.from_config(config)
    config.stash[SETTINGS_KEY] = settings
    named = [
        path
        for path in (config.invocation_params.dir / str(a).split("::")[0] for a in config.args)
        if path.suffix in CASE_SUFFIXES and path.is_file() and not is_case_path(path, settings)
    ]
    stray = [path for path in named if looks_like_a_case_file(path)]
    if stray:
        raise pytest.UsageError(stray_hint(stray, config))
    if not settings.configured:
        return  # no case can run: collecting one is a usage error (collection_modifyitems)
    worker = hasattr(config, "workerinput")
    if settings.launch and not getattr(config, "workerinput", {}).get("comfytest_servers"):
        from comfytest.runtime import find_runtime

        declared = settings.declared
        try:
            if declared is not None and declared.name == settings.runtime and not worker:
                declared.install(settings.home)  # what the project declares; a check when current
            find_runtime(settings.home, settings.runtime)  # installed? (a file read)
        except RuntimeSetupError as exc:
            raise pytest.UsageError(f"--comfy-launch: {exc}") from None
    from comfytest.comfy.servers import Servers
    from comfytest.judging.baselines import BaselineStore
    from comfytest.plugin.session import HtmlExtras, Summary
    from comfytest.plugin.xdist import SharedServers
    from comfytest.runner import Runner

    config.pluginmanager.register(Summary(config), "comfytest-summary")
    html = config.pluginmanager.get_plugin("html")
    if html is not None and getattr(config.option, "htmlpath", None):
        config.pluginmanager.register(HtmlExtras(html), "comfytest-html")
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
        model_dirs=dict(settings.model_dirs),
        auth_env=settings.auth_env,
        ca_bundle=settings.ca_bundle,
        schema_root=config.rootpath,
        cloud_key_env=settings.cloud_key_env,
        retry_budget=settings.retry_budget,
        max_queued=settings.max_queued,
        # One id for the whole run, every xdist worker: what --comfy-max-queued counts.
        run_id=workerinput.get("testrunuid") or uuid.uuid4().hex,
        reuse_idle=settings.reuse_idle,
    )
    config.stash[RUNNER_KEY] = Runner(store, pool, timeout=settings.timeout)
    if servers and not config.option.collectonly and not getattr(config.option, "numprocesses", 0):
        # A server given by URL: connect and read its node definitions while pytest
        # collects, so the first case starts with them (the xdist controller runs none).
        pool.prefetch(pool.home)
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
    """A server that cannot be reached or started is one usage error, not a failure per case:
    a --comfy-url server that does not answer, or a managed one that does not start (in a
    serial run; an xdist worker's cases error instead)."""
    runner = session.config.stash.get(RUNNER_KEY, None)
    if runner is None or session.config.option.collectonly:
        return
    controller = bool(getattr(session.config.option, "numprocesses", None))
    case_item = _case_item()
    has_cases = case_item is not None and any(isinstance(i, case_item) for i in session.items)
    servers = runner.servers
    try:
        if servers.manages_servers:
            if has_cases and not controller and not hasattr(session.config, "workerinput"):
                servers.client(servers.home)  # started now, before the first case
        elif controller:
            servers.connect_all()  # every server of the pool answers
        elif has_cases:
            servers.client(servers.home)  # the home server answers; the others when used
    except (ServerError, RuntimeSetupError) as exc:
        raise pytest.UsageError(str(exc)) from None


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Each report of a case carries the case's record (see ``nodes.record_of``); a case
    that could not be tested or judged is shown as an error (``nodes.as_error``)."""
    report = yield
    case_item = _case_item()
    if case_item and isinstance(item, case_item):
        from comfytest.plugin.nodes import RECORD_ATTRIBUTE, as_error

        setattr(report, RECORD_ATTRIBUTE, item.record.as_dict())
        as_error(report, item.record)
    return report


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    """Tell a case which case follows it, so its prompt can wait in the server's queue."""
    case_item = _case_item()
    if case_item and isinstance(item, case_item):
        item.then = nextitem.queueable() if isinstance(nextitem, case_item) else None


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> CaseFile | None:
    if file_path.suffix not in CASE_SUFFIXES:
        return None
    settings = parent.config.stash[SETTINGS_KEY]
    if not is_case_path(file_path, settings):
        if looks_like_a_case_file(file_path):
            parent.config.stash.setdefault(STRAY_KEY, []).append(file_path)
        return None
    from comfytest.cases.loader import DEFAULTS_FILE
    from comfytest.plugin.nodes import CaseFile

    if file_path.name == DEFAULTS_FILE:
        return None
    return CaseFile.from_parent(parent, path=file_path)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    case_item = _case_item()
    configured = config.stash[SETTINGS_KEY].configured
    listing = config.option.collectonly  # listing cases needs no server
    if (
        not configured
        and not listing
        and case_item
        and any(isinstance(i, case_item) for i in items)
    ):
        raise pytest.UsageError(
            "ComfyUI cases were collected but no server is configured: pass --comfy-launch "
            "(start a managed ComfyUI) or --comfy-url URL (use a running one)"
        )
    runner = config.stash.get(RUNNER_KEY, None)
    if runner is not None and case_item:
        runner.servers.stand_in_families |= {
            entry.family
            for item in items
            if isinstance(item, case_item)
            for entry in item.case.recipe.stand_ins
        }


@pytest.hookimpl(trylast=True)
def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    stray = terminalreporter.config.stash.get(STRAY_KEY, [])
    if stray:
        terminalreporter.write_line(stray_hint(stray, terminalreporter.config))


def _case_item() -> type[CaseItem] | None:
    """The case item class once a case file was collected in this process, else None.

    An item can only be a case once ``comfytest.plugin.nodes`` is imported, so hooks that
    see every test ask this instead of importing the case machinery into every pytest run."""
    nodes = sys.modules.get("comfytest.plugin.nodes")
    return None if nodes is None else nodes.CaseItem
