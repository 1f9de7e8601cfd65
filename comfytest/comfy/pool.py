"""A pool of ComfyUI servers: how they are written, tagged, and which one runs a case.

A server is written ``URL [key=value ...]``, e.g. ``http://gpu1:8188 gpu=h100``, on the
command line (``--comfy-url``, repeatable) or one per line in the ini option ``comfy_url``.

The binding rule: xdist worker ``gwK`` has the home server ``servers[K % len(servers)]``
(without xdist, the first server). A case runs on its home server when that server's tags
satisfy the case's ``server:`` requirements, else on the first server of the pool that
does; with none, the case is skipped (``no_match_reason`` says why).

Plain library: no pytest here.
"""

from __future__ import annotations

import re
import shlex
import threading
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from comfytest.errors import RuntimeSetupError, ServerSpecError

if TYPE_CHECKING:  # the managed runtime loads when servers start, not with the options
    from comfytest.runtime import ManagedServer, Runtime

__all__ = [
    "ServerSpec",
    "ServerSpecError",
    "choose",
    "home_index",
    "no_match_reason",
    "parse_spec",
    "parse_tag",
    "satisfies",
    "start_servers",
    "tag_value",
]

_TAG_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")
_WORKER = re.compile(r"^gw(\d+)$")


@dataclass(frozen=True)
class ServerSpec:
    """One server of the pool: its URL and its tags (e.g. ``{"gpu": "h100"}``).

    The URL of a managed server that is not started yet is empty."""

    url: str
    tags: Mapping[str, str] = field(default_factory=dict)

    def describe(self) -> str:
        tags = " ".join(f"{key}={value}" for key, value in sorted(self.tags.items()))
        return f"{self.url or 'managed server'} ({tags or 'no tags'})"


def parse_tag(text: str, what: str = "--comfy-server-tag") -> tuple[str, str]:
    """``key=value`` -> (key, value)."""
    key, sep, value = text.partition("=")
    if not sep or not _TAG_KEY.match(key) or not value or any(c.isspace() for c in value):
        raise ServerSpecError(
            f"{what}: expected key=value (a name, '=', a value without spaces), got {text!r}"
        )
    return key, value


def parse_spec(text: str) -> ServerSpec:
    """``"http://gpu1:8188 gpu=h100 vram=80"`` -> ServerSpec."""
    try:
        words = shlex.split(text)
    except ValueError as exc:
        raise ServerSpecError(f"--comfy-url={text!r}: {exc}") from None
    if not words:
        raise ServerSpecError("--comfy-url: empty server spec")
    url, *tags = words
    if not re.match(r"^https?://[^\s/]+", url):
        raise ServerSpecError(
            f"--comfy-url={text!r}: expected 'URL [key=value ...]' with an http:// or https:// "
            f"URL first, got {url!r}"
        )
    found: dict[str, str] = {}
    for tag in tags:
        key, value = parse_tag(tag, f"--comfy-url={text!r}: tag")
        if key in found:
            raise ServerSpecError(f"--comfy-url={text!r}: tag {key!r} given twice")
        found[key] = value
    return ServerSpec(url.rstrip("/"), found)


def tag_value(value: object) -> str:
    """A case's required value as a tag compares it: ``true``, ``80``, ``h100``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def satisfies(spec: ServerSpec, required: Mapping[str, object]) -> bool:
    return all(spec.tags.get(key) == tag_value(value) for key, value in required.items())


def home_index(worker_id: str | None, count: int) -> int:
    """The home server of xdist worker ``gwK``: K modulo the pool size (0 without xdist)."""
    found = _WORKER.match(worker_id or "")
    return int(found.group(1)) % count if found and count else 0


def choose(
    servers: Sequence[ServerSpec],
    home: int,
    required: Mapping[str, object],
    avoid: Collection[int] = (),
) -> int | None:
    """The index of the server a case runs on: home when it satisfies ``required``, else
    the first that does; servers in ``avoid`` only when no other one does."""
    candidates = [i for i, spec in enumerate(servers) if satisfies(spec, required)]
    preferred = [i for i in candidates if i not in avoid] or candidates
    if not preferred:
        return None
    return home if home in preferred else preferred[0]


def no_match_reason(servers: Sequence[ServerSpec], required: Mapping[str, object]) -> str:
    wanted = " ".join(f"{key}={tag_value(value)}" for key, value in sorted(required.items()))
    pool = "; ".join(spec.describe() for spec in servers)
    return f"no server has the tags this case requires ({wanted}); servers: {pool}"


def start_servers(
    runtime: Runtime,
    run_dirs: Sequence[Path],
    *,
    extra_args: Sequence[str] = (),
    model_dirs: Mapping[str, Sequence[str]] | None = None,
) -> list[ManagedServer]:
    """Start one managed server per run folder, in parallel; all or none (a failure stops
    the ones that started and raises the first error)."""
    from comfytest.runtime import start_server

    started: list[ManagedServer | None] = [None] * len(run_dirs)
    errors: list[RuntimeSetupError] = []

    def start(index: int) -> None:
        try:
            started[index] = start_server(
                runtime,
                run_dirs[index],
                extra_args=extra_args,
                model_dirs=model_dirs,
                log=lambda message: None,
            )
        except RuntimeSetupError as exc:
            errors.append(exc)

    threads = [threading.Thread(target=start, args=(i,)) for i in range(len(run_dirs))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    servers = [server for server in started if server is not None]
    if errors or len(servers) != len(run_dirs):
        for server in servers:
            server.stop()
        raise errors[0] if errors else RuntimeSetupError("a managed server did not start")
    return servers
