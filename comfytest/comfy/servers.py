"""The servers a run uses: one pool per process, each server reached lazily, once.

A server given by URL is connected on first use; one launched here (``--comfy-launch``)
is started then. Each gets one client, its node definitions and its fingerprint for the
whole run. Which server a case runs on follows the pool's binding rule (comfytest.comfy.pool).

Only a managed server is told to unload its models at connection (comfytest.comfy.connect).
"""

from __future__ import annotations

import contextlib
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from comfytest.comfy.client import ComfyClient
from comfytest.comfy.connect import ClientOptions
from comfytest.comfy.http import RETRY_BUDGET
from comfytest.comfy.pool import ServerSpec, choose, no_match_reason
from comfytest.comfy.schema_cache import server_key, write_schemas
from comfytest.errors import ComfytestError, RuntimeSetupError, ServerError, ServerLost
from comfytest.runtime import ManagedServer, Runtime, find_runtime, start_server
from comfytest.runtime.reuse import ReusedServer, acquire

__all__ = ["Retried", "Server", "Servers"]

T = TypeVar("T")


@dataclass(frozen=True)
class Retried:
    """A case whose server was lost, run again on another one."""

    lost: str
    on: str
    error: str


@dataclass
class Server:
    """One server of the pool, as this process knows it: connected lazily, once."""

    spec: ServerSpec
    #: Started on demand by this pool (``--comfy-launch``); its URL is known once started.
    launch: bool = False
    #: The managed runtime behind it, when known (its model sizes go in fingerprints).
    runtime: Runtime | None = None
    managed: ManagedServer | None = None
    #: The reusable server this run holds (``--comfy-reuse``): released, not stopped.
    reused: ReusedServer | None = None
    client: ComfyClient | None = None
    object_info: dict[str, Any] | None = None
    environment: dict[str, Any] | None = None
    setup_error: ComfytestError | None = None
    line: str = ""


class Servers:
    """A pool of ComfyUI servers: ``specs``, or else one managed server started on demand.

    Each server is named by its index; ``home`` is this process's own (``home_server``),
    where ``pick()`` starts (the binding rule of comfytest.comfy.pool)."""

    def __init__(
        self,
        specs: Sequence[ServerSpec],
        *,
        runtime: Runtime | None = None,
        home: Path | None = None,
        runtime_name: str | None = None,
        run_root: Path | None = None,
        server_args: Sequence[str] = (),
        auth_env: str | None = None,
        ca_bundle: Path | None = None,
        home_server: int = 0,
        server_tags: Mapping[str, str] | None = None,
        managed_elsewhere: bool = False,
        model_dirs: Mapping[str, Sequence[str]] | None = None,
        schema_root: Path | None = None,
        cloud_key_env: str | None = None,
        retry_budget: float = RETRY_BUDGET,
        max_queued: int | None = None,
        run_id: str | None = None,
        reuse_idle: float | None = None,
    ) -> None:
        """``auth_env`` names the environment variable holding an auth header for the
        servers (see ``header_from_env``); it is read when a client is made, and kept nowhere
        else. ``server_tags`` are the tags of a server this pool launches;
        ``managed_elsewhere`` says the ``specs`` are managed servers of this runtime
        started by another process (the xdist controller). ``model_dirs`` (kind -> folders)
        are given to the servers this pool starts, on top of the runtime's own. Each
        server's /object_info is saved under ``schema_root`` (the project) for collection
        (comfytest.comfy.schema_cache), when given. With ``reuse_idle``, the server this
        pool launches is the reusable one (comfytest.runtime.reuse), left running for
        ``reuse_idle`` seconds after the run.

        ``cloud_key_env`` names the environment variable holding a Comfy Cloud API key: the
        servers given by URL are then spoken to as Comfy Cloud (comfytest.comfy.api); read
        when a client is made, like ``auth_env``. ``retry_budget``, ``max_queued`` and
        ``run_id`` go to every client (see ``ComfyClient``)."""
        self._reuse_idle = reuse_idle
        self._schema_root = schema_root
        self._options = ClientOptions(
            auth_env, ca_bundle, cloud_key_env, retry_budget, max_queued, run_id
        )
        self._runtime = runtime
        self._home = home
        self._runtime_name = runtime_name
        self._run_root = run_root
        self._server_args = tuple(server_args)
        self._managed_elsewhere = managed_elsewhere
        self.model_dirs = {k: [Path(p) for p in v] for k, v in (model_dirs or {}).items()}
        #: Held while a server is connected or its node definitions fetched (``prefetch``).
        self._lock = threading.RLock()
        #: Families the run's cases map models to (``stand_in``): a managed server is given
        #: their stand-ins, written on first need (comfytest.runtime.standins).
        self.stand_in_families: set[str] = set()
        self._pool = [Server(spec) for spec in specs] or [
            Server(ServerSpec("", dict(server_tags or {})), launch=True)
        ]
        self._home_server = home_server % len(self._pool)
        #: Servers lost during this run: used again only when no other server fits a case.
        self._lost: set[int] = set()

    @property
    def launches(self) -> bool:
        return any(entry.launch for entry in self._pool)

    @property
    def manages_servers(self) -> bool:
        """True when this pool starts its server or owns started ones: nothing to check."""
        return any(entry.launch or entry.managed is not None for entry in self._pool)

    @property
    def specs(self) -> list[ServerSpec]:
        """The pool, in order (a managed server not started yet has an empty URL)."""
        return [entry.spec for entry in self._pool]

    @property
    def server_line(self) -> str:
        """One line per server this pool reached (or started), saying when its prompts were
        polled because it refused the WebSocket."""
        lines = []
        for entry in self._pool:
            if entry.line:
                polled = entry.client.polling if entry.client is not None else None
                lines.append(entry.line + (f"\n  prompts polled: {polled}" if polled else ""))
        return "\n".join(lines)

    def pick(self, required: Mapping[str, object]) -> int | None:
        """The server a case with these tag requirements runs on (None: no server fits)."""
        return choose(self.specs, self._home_server, required, self._lost)

    def no_server_reason(self, required: Mapping[str, object]) -> str:
        return no_match_reason(self.specs, required)

    @property
    def home(self) -> int:
        return self._home_server

    def fallback(self, required: Mapping[str, object], lost: int) -> int | None:
        """After server ``lost`` was lost: another server that fits and answers, or None.

        The lost server is not used again by this pool while another one fits."""
        self._lost.add(lost)
        while True:
            index = choose(self.specs, self._home_server, required, self._lost)
            if index is None or index in self._lost:
                return None
            try:
                self.client(index)
            except ServerError:
                self._lost.add(index)
                continue
            return index

    def run_with_fallback(
        self, required: Mapping[str, object], index: int, attempt: Callable[[int], T]
    ) -> tuple[T, Retried | None]:
        """``attempt(index)``; when server ``index`` is lost, ``attempt`` once more on another
        server that fits and answers, if there is one (else the ServerLost stands)."""
        try:
            return attempt(index), None
        except ServerLost as lost:
            other = self.fallback(required, index)
            if other is None:
                raise
            retried = Retried(lost.url, self.specs[other].url, str(lost))
        return attempt(other), retried

    def connect_all(self) -> None:
        """Reach every server of the pool now (a ServerError names the first one that fails)."""
        for index in range(len(self._pool)):
            self.client(index)

    def adopt(self, servers: Sequence[ManagedServer], ready_s: float) -> None:
        """Own managed servers started for others (the xdist workers): listed in
        ``server_line``, stopped by ``close()``."""
        tags = dict(self._pool[0].spec.tags) if self.launches else {}
        self._pool = [
            Server(
                ServerSpec(server.url, tags),
                managed=server,
                line=f"ComfyUI at {server.url} (managed, shared by the xdist workers, "
                f"{len(servers)} started in {ready_s:.1f} s)",
            )
            for server in servers
        ]
        self._home_server = 0

    def prefetch(self, index: int) -> None:
        """Connect to server ``index`` and fetch its node definitions in the background
        (while pytest collects), so the first case does not wait for them; what fails is
        raised again by the next ``client(index)``."""

        def fetch() -> None:
            with contextlib.suppress(ComfytestError):
                self.object_info(index)

        threading.Thread(target=fetch, name="comfytest-prefetch", daemon=True).start()

    def _add_stand_ins(self, runtime: Runtime) -> None:
        """Write the stand-ins of the run's families if missing; give their folders to the
        server (and to the environment, which then hashes the stand-ins a prompt names)."""
        if not self.stand_in_families:
            return
        from comfytest.runtime.standins import ensure

        for kind, folders in ensure(runtime, self.stand_in_families).items():
            known = self.model_dirs.setdefault(kind, [])
            known += [Path(f) for f in folders if Path(f) not in known]

    def client(self, index: int) -> ComfyClient:
        """Server ``index``'s client; starts the managed server the first time when
        launching."""
        with self._lock:
            return self._client(index)

    def _client(self, index: int) -> ComfyClient:
        entry = self._pool[index]
        if entry.setup_error is not None:
            raise entry.setup_error
        if entry.client is not None:
            process = entry.managed or entry.reused
            if process is not None and not process.alive():
                raise ServerLost(
                    f"the managed ComfyUI exited (code {process.returncode}); "
                    f"log {process.log_path}:\n{process.log_tail()}",
                    entry.client.url,
                )
            entry.client.check_not_lost()
            return entry.client
        ready_s = 0.0
        try:
            url = entry.spec.url
            if entry.launch and self._reuse_idle is not None:
                runtime = self._runtime or find_runtime(self._home, self._runtime_name)
                self._add_stand_ins(runtime)
                entry.reused = acquire(
                    runtime,
                    self._home,
                    server_args=self._server_args,
                    model_dirs={k: [str(p) for p in v] for k, v in self.model_dirs.items()},
                    idle_s=self._reuse_idle,
                )
                entry.runtime = runtime
                url = entry.reused.url
                entry.spec = ServerSpec(url, entry.spec.tags)
            elif entry.launch:
                runtime = self._runtime or find_runtime(self._home, self._runtime_name)
                root = self._run_root or Path(tempfile.gettempdir())
                root.mkdir(parents=True, exist_ok=True)
                run_dir = Path(tempfile.mkdtemp(prefix="server-", dir=root))
                self._add_stand_ins(runtime)
                started = time.monotonic()
                entry.managed = start_server(
                    runtime,
                    run_dir,
                    extra_args=self._server_args,
                    model_dirs={k: [str(p) for p in v] for k, v in self.model_dirs.items()},
                    log=lambda message: None,
                )
                entry.runtime = runtime
                ready_s = time.monotonic() - started
                url = entry.managed.url
                entry.spec = ServerSpec(url, entry.spec.tags)
            elif self._managed_elsewhere and entry.runtime is None:
                with contextlib.suppress(RuntimeSetupError):
                    entry.runtime = self._runtime or find_runtime(self._home, self._runtime_name)
            managed = entry.launch or entry.managed is not None or self._managed_elsewhere
            client, version = self._options.connect(url, managed=managed, free=entry.reused is None)
        except (RuntimeSetupError, ServerError) as exc:
            entry.setup_error = exc
            raise
        entry.client = client
        if entry.reused is not None:
            how = entry.reused.describe()
        elif entry.managed is not None:
            how = f"managed, ready in {ready_s:.1f} s"
        elif self._managed_elsewhere:
            how = "managed by the xdist controller"
        elif client.api.cloud:
            how = "Comfy Cloud, given by --comfy-url"
        else:
            how = "given by --comfy-url"
        tags = " ".join(f"{k}={v}" for k, v in sorted(entry.spec.tags.items()))
        entry.line = f"ComfyUI {version} at {url} ({how}{', tags ' + tags if tags else ''})"
        return client

    def object_info(self, index: int) -> dict[str, Any]:
        """Server ``index``'s node definitions, fetched once per run."""
        with self._lock:
            return self._object_info(index)

    def _object_info(self, index: int) -> dict[str, Any]:
        entry = self._pool[index]
        if entry.object_info is None and entry.reused is not None:
            entry.object_info = entry.reused.object_info(self.client(index))
        if entry.object_info is None:
            entry.object_info = self.client(index).object_info()
            if self._schema_root is not None:
                if entry.launch or self._managed_elsewhere:
                    name = self._runtime_name
                    key, server = (
                        server_key(None, name),
                        f"the managed runtime {name or 'default'!r}",
                    )
                else:
                    key, server = server_key(entry.spec.url), entry.spec.url
                with contextlib.suppress(OSError):  # a help for the next collection, no more
                    write_schemas(self._schema_root, key, server, entry.object_info)
        return entry.object_info

    def __getitem__(self, index: int) -> Server:
        return self._pool[index]

    def close(self) -> None:
        """Close every client and stop the managed servers this pool started or adopted."""
        with self._lock:
            self._close()

    def _close(self) -> None:
        for entry in self._pool:
            if entry.client is not None:
                entry.client.close()
                entry.client = None
            if entry.managed is not None:
                entry.managed.stop()
                entry.managed = None
            if entry.reused is not None:
                entry.reused.release()
                entry.reused = None
