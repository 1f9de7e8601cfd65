"""What a case item needs to know of its run, read once per process: its baselines
folder's name (and a clash with another case file), the saved run its timings compare with,
the cached node definitions collection checks against, the worker count, and the options a
printed accept command repeats."""

from __future__ import annotations

from pathlib import Path

import pytest

from comfytest.cases.loader import DEFAULTS_FILE
from comfytest.comfy.schema_cache import NodeSchemas, read_schemas, server_key
from comfytest.plugin.settings import SETTINGS_KEY
from comfytest.reports.timecompare import SavedRun

__all__ = [
    "case_name",
    "collection_schemas",
    "folder_clash",
    "replayed_options",
    "saved_run",
    "worker_count",
]


def case_name(path: Path, case_roots: tuple[Path, ...], rootdir: Path) -> str:
    """Baseline folder name of a case file: its path under its case root, without suffix."""
    for root in case_roots:
        if path.is_relative_to(root):
            return path.relative_to(root).with_suffix("").as_posix()
    if path.is_relative_to(rootdir):
        return path.relative_to(rootdir).with_suffix("").as_posix()
    return path.stem


#: Baselines folder name -> the case file collected for it (one file per folder).
FOLDERS_KEY = pytest.StashKey[dict[str, Path]]()


def folder_clash(path: Path, folder: str, config: pytest.Config) -> str | None:
    """Why case file ``path`` may not have baselines folder ``folder``: another case file has
    it too (``t.yml`` beside ``t.yaml`` even when only one is collected, or a file of the
    same name under another case root). Each would overwrite the other's baselines."""
    claimed = config.stash.setdefault(FOLDERS_KEY, {})
    others = [claimed[folder]] if claimed.get(folder, path) != path else []
    others += [
        sibling
        for sibling in (path.with_suffix(s) for s in (".yaml", ".yml") if s != path.suffix)
        if sibling.is_file() and sibling.name != DEFAULTS_FILE and sibling not in others
    ]
    claimed.setdefault(folder, path)
    if not others:
        return None
    root = config.rootpath
    names = [p.relative_to(root) if p.is_relative_to(root) else p for p in (path, *others)]
    baselines = config.stash[SETTINGS_KEY].baselines
    shown = baselines.relative_to(root) if baselines.is_relative_to(root) else baselines
    return (
        f"{names[0]}: its baselines folder {shown / folder}/ is also that of "
        f"{', '.join(str(n) for n in names[1:])}; each would overwrite the other's "
        "baselines: rename one of them"
    )


SAVED_RUN_KEY = pytest.StashKey[SavedRun | None]()


def saved_run(config: pytest.Config) -> SavedRun | None:
    """The run to compare timings with, read once per process; None when the worker counts
    differ (a parallel run is never compared with a serial one)."""
    if SAVED_RUN_KEY not in config.stash:
        path = config.stash[SETTINGS_KEY].compare
        saved = SavedRun.load(path) if path else None
        if saved is not None and saved.workers != worker_count(config):
            saved = None
        config.stash[SAVED_RUN_KEY] = saved
    return config.stash[SAVED_RUN_KEY]


SCHEMAS_KEY = pytest.StashKey[NodeSchemas | None]()


def collection_schemas(config: pytest.Config) -> NodeSchemas | None:
    """The cached /object_info of the server cases will run on first (the first --comfy-url,
    or the managed runtime), read once per process; None when there is none."""
    if SCHEMAS_KEY not in config.stash:
        settings = config.stash[SETTINGS_KEY]
        key = None
        if settings.servers:
            key = server_key(settings.servers[0].url)
        elif settings.launch:
            key = server_key(None, settings.runtime)
        config.stash[SCHEMAS_KEY] = read_schemas(config.rootpath, key) if key else None
    return config.stash[SCHEMAS_KEY]


def worker_count(config: pytest.Config) -> int:
    workerinput = getattr(config, "workerinput", None)
    if workerinput is not None:
        return int(workerinput.get("workercount", 0))
    return int(getattr(config.option, "numprocesses", 0) or 0)


#: Options a pasted accept command must not repeat (they would change what it does).
NOT_REPLAYED = (
    "--comfy-update",
    "--comfy-prune",
    "--comfy-report",
    "--comfy-noise-floor",
    "--comfy-compare",
    "--comfy-slower-than",
    "--comfy-repeat",
    "--comfy-warmup",
)
#: Options that take no value.
FLAGS = ("--comfy-launch", "--comfy-reuse", "--comfy-allow-outside", "--comfy-prune")


def replayed_options(config: pytest.Config) -> list[str]:
    """The ``--comfy-*`` options (and ``-c``/``--rootdir``) this run was given, as given,
    minus those that would change what an accept run does."""
    args = list(config.invocation_params.args)
    kept: list[str] = []
    i = 0
    while i < len(args):
        arg = str(args[i])
        name = arg.split("=", 1)[0]
        takes_value = "=" not in arg and name not in FLAGS
        if name.startswith("--comfy-") or name in ("-c", "--config-file", "--rootdir"):
            words = [arg, str(args[i + 1])] if takes_value and i + 1 < len(args) else [arg]
            if name not in NOT_REPLAYED:
                kept += words
            i += len(words)
            continue
        i += 1
    return kept
