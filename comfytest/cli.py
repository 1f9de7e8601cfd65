"""The ``comfytest`` command: ``init``, ``accept``, ``report``, ``env``, ``convert``,
``compare-runtimes``, ``schema`` and ``runtime install|start|stop|status``."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

from comfytest.cases.loader import SCHEMA_PATH
from comfytest.comfy.changes import environment_lines
from comfytest.comfy.client import ComfyClient, header_from_env
from comfytest.comfy.environment import recorded_environment, server_fingerprint
from comfytest.errors import ComfytestError, ServerError
from comfytest.judging import accept
from comfytest.reports.history import (
    HISTORY_FILE,
    load_history,
    run_summary,
    runs_until,
    trend_lines,
)
from comfytest.reports.html import load_record, write_html_report
from comfytest.runtime import (
    Runtime,
    find_runtime,
    start_server,
)
from comfytest.runtime.commands import add_runtime_commands, home_option
from comfytest.scaffold import add_init_command
from comfytest.workflow.convert import is_ui_workflow, ui_to_api
from comfytest.workflow.files import SOURCES, load_workflow

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
    add_init_command(commands)
    add_runtime_commands(commands)

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

    p = commands.add_parser(
        "convert",
        help="print the API format of a workflow: a UI-format JSON file, or a PNG/WebP "
        "ComfyUI saved",
    )
    p.add_argument(
        "workflow",
        type=Path,
        help="a workflow saved by ComfyUI's 'Save', or an image with its graph embedded",
    )
    p.add_argument(
        "--source",
        choices=SOURCES,
        default=None,
        help="which graph of an image: its API 'prompt' (the default when it has one) or its "
        "UI 'workflow' (converted with the server's /object_info)",
    )
    url_options(
        p, "take /object_info from this server (default: start the managed runtime briefly)"
    )
    home_option(p)
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

    p = commands.add_parser(
        "report",
        help="render the HTML report from a results JSON (run.json) and print the timing trend",
        description="Renders the HTML report of a run and prints each case's timing trend: "
        "over the runs its results folder's history.jsonl keeps, or over the run.json files "
        "given (the report is then the newest one's).",
    )
    p.add_argument(
        "run_json",
        type=Path,
        nargs="*",
        default=[Path(".comfytest/results/run.json")],
        help="the results file (default .comfytest/results/run.json); several: the trend is "
        "over them",
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
    home_option(p)
    p.add_argument("--runtime", default=None, help="runtime name when no --url is given")
    p.set_defaults(handler=_env)

    p = commands.add_parser(
        "compare-runtimes",
        help="run the cases on two runtimes (before and after an update) and compare them",
        description="Runs pytest --comfy-launch once with --comfy-runtime=BEFORE and once with "
        "AFTER (results in RESULTS/BEFORE and RESULTS/AFTER), each judged against the same "
        "baselines, then prints what changed between the two environments and per case both "
        "verdicts and distances. Exit 1 when a case that passed on BEFORE does not pass on "
        "AFTER. Arguments after '--' go to pytest.",
    )
    p.add_argument("before", help="the runtime as it is (e.g. my-nodes-v1)")
    p.add_argument("after", help="the updated runtime (e.g. my-nodes-v2)")
    p.add_argument(
        "--results",
        type=Path,
        default=Path(".comfytest/compare"),
        help="where both runs keep their results (default .comfytest/compare)",
    )
    p.add_argument("pytest_args", nargs=argparse.REMAINDER, help="-- then pytest arguments")
    p.set_defaults(handler=_compare_runtimes)

    p = commands.add_parser("schema", help="print the path of the case-file JSON Schema")
    p.set_defaults(handler=_schema)
    return parser


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
    workflow = load_workflow(args.workflow, args.source)
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
    records = [(load_record(path), path) for path in args.run_json]
    records.sort(key=lambda found: str((found[0].get("header") or {}).get("started") or ""))
    record, path = records[-1]
    results = path.resolve().parent
    if len(records) > 1:
        runs = [run_summary(r) for r, _ in records]
        source = f"{len(records)} run.json files"
    else:
        runs = runs_until(load_history(results), record)
        source = str(results / HISTORY_FILE)
    write_html_report(record, results, args.output, runs)
    for line in trend_lines(runs, source):
        print(line)
    print(args.output)
    return 0


def _env(args: argparse.Namespace) -> int:
    with _server(args) as (client, runtime):
        found = server_fingerprint(client, runtime)
    print(json.dumps(found, indent=2, sort_keys=True))
    if args.against is None:
        return 0
    recorded = recorded_environment(args.against)
    changes = environment_lines(recorded, found)
    print(f"against {args.against}:")
    for change in changes or ["no differences"]:
        print(f"  {change}")
    return 0


def _compare_runtimes(args: argparse.Namespace) -> int:
    from comfytest.reports.sidebyside import compare_runtimes

    extra = list(args.pytest_args)
    if extra[:1] == ["--"]:
        extra = extra[1:]
    if args.before == args.after:
        raise ComfytestError("compare-runtimes: give two different runtimes")
    lines, broke = compare_runtimes(
        (args.before, args.after), args.results.resolve(), extra, Path.cwd()
    )
    print("\n".join(lines))
    return 1 if broke else 0


def _schema(args: argparse.Namespace) -> int:
    print(SCHEMA_PATH)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
