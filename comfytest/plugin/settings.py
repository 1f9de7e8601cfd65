"""One frozen view of comfytest's options, built once from command line > ini > default."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

# Light modules only: every pytest run in the environment imports this one.
from comfytest.comfy.api import is_cloud_url
from comfytest.comfy.pool import ServerSpec, parse_spec, parse_tag
from comfytest.defaults import DEFAULT_TIMEOUT, KEEP_MODES, UPDATE_MODES, KeepMode, UpdateMode
from comfytest.errors import RuntimeSetupError, ServerSpecError

if TYPE_CHECKING:
    from comfytest.runner import Runner
    from comfytest.runtime.config import ProjectRuntime

__all__ = ["RUNNER_KEY", "SETTINGS_KEY", "Settings"]


@dataclass(frozen=True)
class Settings:
    url: str | None
    launch: bool
    home: Path | None
    runtime: str | None
    update: UpdateMode
    keep: KeepMode
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
    #: --comfy-model-dir: kind -> model folders given to the managed servers.
    model_dirs: tuple[tuple[str, tuple[str, ...]], ...] = ()
    #: The runtime the project's pyproject.toml declares ([tool.comfytest]), if any.
    declared: ProjectRuntime | None = None
    #: --comfy-cloud-key-env: the variable holding the Comfy Cloud API key, never its value.
    cloud_key_env: str | None = None
    #: --comfy-retry-budget: seconds a busy answer (HTTP 429, 503) is retried.
    retry_budget: float = 60.0
    #: --comfy-max-queued: this run's prompts allowed on one --comfy-url server at once.
    max_queued: int | None = None
    #: --comfy-reuse: seconds the reusable managed server stays up unused; None: no reuse.
    reuse_idle: float | None = None

    @property
    def configured(self) -> bool:
        return self.url is not None or self.launch

    @classmethod
    def from_config(cls, config: pytest.Config) -> Settings:
        root = config.rootpath

        def pick(name: str) -> object:
            value = config.getoption(name)
            return value if value is not None else config.getini(name)

        reuse = bool(config.getoption("comfy_reuse") or config.getini("comfy_reuse"))
        given_launch = bool(config.getoption("comfy_launch") or config.getini("comfy_launch"))
        launch = given_launch or reuse
        reuse_idle = reuse_idle_of(str(pick("comfy_reuse_idle") or "")) if reuse else None
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
            flag = "--comfy-launch" if given_launch else "--comfy-reuse"
            raise pytest.UsageError(f"--comfy-url and {flag} exclude each other: pick one")
        server_count = int(config.getoption("comfy_servers") or 1)
        if server_count < 1:
            raise pytest.UsageError("--comfy-servers: expected a number of servers >= 1")
        if server_count > 1 and reuse:
            raise pytest.UsageError(
                "--comfy-reuse keeps one server for later runs; --comfy-servers starts several "
                "for this run only: pick one"
            )
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
        model_dirs: dict[str, tuple[Path, ...]] = {}
        declared = None
        given_dirs = list(config.getoption("comfy_model_dirs") or ())
        if launch or given_dirs:
            # The runtime package loads httpx: only when a managed server is wanted.
            from comfytest.runtime.config import parse_model_dirs, project_runtime

            try:
                model_dirs = parse_model_dirs(given_dirs, config.invocation_params.dir)
                declared = project_runtime(root / "pyproject.toml") if launch else None
            except RuntimeSetupError as exc:
                raise pytest.UsageError(str(exc)) from None
        if model_dirs and not launch:
            raise pytest.UsageError(
                "--comfy-model-dir is for managed servers (--comfy-launch); a running server "
                "has its own extra_model_paths.yaml"
            )
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
        cloud_key_env, retry_budget, max_queued = _remote(config, servers, launch, auth_env)
        ca_bundle = str(pick("comfy_ca_bundle") or "") or None
        ca_path = (root / Path(ca_bundle).expanduser()) if ca_bundle else None
        if ca_path is not None and not ca_path.is_file():
            raise pytest.UsageError(f"--comfy-ca-bundle={ca_bundle}: no such file")
        return cls(
            url=url,
            launch=launch,
            home=Path(home).expanduser().resolve() if home else None,
            runtime=config.getoption("comfy_runtime") or (declared.name if declared else None),
            update=UpdateMode(update),
            keep=KeepMode(keep),
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
            model_dirs=tuple(
                (kind, tuple(str(p) for p in paths)) for kind, paths in model_dirs.items()
            ),
            declared=declared,
            cloud_key_env=cloud_key_env,
            retry_budget=retry_budget,
            max_queued=max_queued,
            reuse_idle=reuse_idle,
        )


def _remote(
    config: pytest.Config, servers: tuple[ServerSpec, ...], launch: bool, auth_env: str | None
) -> tuple[str | None, float, int | None]:
    """--comfy-cloud-key-env, --comfy-retry-budget and --comfy-max-queued, checked."""

    def pick(name: str) -> str:
        value = config.getoption(name)
        return str(value if value is not None else config.getini(name) or "")

    key_env = pick("comfy_cloud_key_env") or None
    cloud_urls = [spec.url for spec in servers if is_cloud_url(spec.url)]
    if cloud_urls and not key_env:
        raise pytest.UsageError(
            f"--comfy-url={cloud_urls[0]} is Comfy Cloud: give the environment variable "
            "holding your API key with --comfy-cloud-key-env=NAME"
        )
    if key_env and (launch or not servers):
        raise pytest.UsageError("--comfy-cloud-key-env is for a Comfy Cloud --comfy-url")
    if key_env and auth_env:
        raise pytest.UsageError(
            "--comfy-cloud-key-env and --comfy-auth-env exclude each other: Comfy Cloud "
            "takes its key in X-API-Key"
        )
    if key_env and not os.environ.get(key_env, "").strip():
        raise pytest.UsageError(
            f"--comfy-cloud-key-env={key_env}: the environment variable {key_env} is not set"
        )
    try:
        budget = float(pick("comfy_retry_budget") or 60)
    except ValueError:
        budget = -1.0
    if budget < 0:
        raise pytest.UsageError("--comfy-retry-budget: expected a number of seconds >= 0")
    cap_text = pick("comfy_max_queued")
    cap = int(cap_text) if cap_text.strip().isdigit() else None
    if cap_text and (cap is None or cap < 1):
        raise pytest.UsageError("--comfy-max-queued: expected a number of prompts >= 1")
    if cap is not None and not servers:
        raise pytest.UsageError(
            "--comfy-max-queued is for --comfy-url servers: each managed server is this run's alone"
        )
    return key_env, budget, cap


def reuse_idle_of(text: str) -> float:
    """--comfy-reuse-idle's seconds (default 900)."""
    if not text:
        return 900.0
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if seconds <= 0:
        raise pytest.UsageError(f"--comfy-reuse-idle={text}: expected a positive number of seconds")
    return seconds


SETTINGS_KEY = pytest.StashKey[Settings]()
#: The run's Runner, only when a server is configured (--comfy-url or --comfy-launch).
RUNNER_KEY: pytest.StashKey[Runner] = pytest.StashKey()
