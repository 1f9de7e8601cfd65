"""Talk to one ComfyUI server: submit a prompt, follow its WebSocket events, fetch outputs.

One ``httpx.Client`` and one WebSocket serve every prompt of a run. Completion is the
``executing`` message with ``node: null`` for our prompt id (sent after the history entry
is written, COMFYUI_API.md §2.5); there is no sleep and no polling on the main path.
"""

from __future__ import annotations

import collections
import hashlib
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from websockets.sync.client import ClientConnection

from comfytest.comfy.auth import header_from_env
from comfytest.comfy.events import ProgressCallback, PromptEvents, failure
from comfytest.comfy.history import OutputFile, PromptRun, TextOutput, read_history, rejection
from comfytest.comfy.http import Http, json_object
from comfytest.comfy.socket import EventSocket, _Dropped
from comfytest.defaults import DEFAULT_TIMEOUT
from comfytest.errors import (
    CaseTimeout,
    ServerError,
    ServerLost,
)
from comfytest.workflow.prompt import Prompt

__all__ = [
    "DEFAULT_TIMEOUT",
    "ComfyClient",
    "OutputFile",
    "ProgressCallback",
    "PromptRun",
    "TextOutput",
    "header_from_env",
]

#: Seconds for one HTTP request or WebSocket handshake.
REQUEST_TIMEOUT = 30.0
#: Outputs up to this size are judged from memory; bigger ones are streamed to a file.
IN_MEMORY_LIMIT = 16 << 20


class ComfyClient:
    """A connection to one ComfyUI server, reused for every prompt of a run."""

    def __init__(
        self,
        url: str,
        *,
        timeout: float = REQUEST_TIMEOUT,
        header: tuple[str, str] | None = None,
        ca_bundle: Path | None = None,
    ) -> None:
        """``header`` (name, value), e.g. an ``Authorization``, goes with every request and the
        WebSocket handshake to ``url`` only: redirects are never followed, and the value is
        never part of an error, a repr or a record. TLS is verified, against ``ca_bundle``
        when given, else the system's certificates."""
        self.url = url.rstrip("/")
        self.client_id = uuid.uuid4().hex
        self._http = Http(
            self.url, timeout=timeout, header=header, ca_bundle=ca_bundle, failure=self._failure
        )
        self._socket = EventSocket(self._http, self.client_id, self._keep_early)
        #: Prompts queued with ``submit`` and not yet waited for: their messages so far.
        self._early: dict[str, _Early] = {}
        self._uploaded: dict[str, str] = {}
        #: Set when the server stopped answering; later calls check once and fail fast.
        self.lost: ServerLost | None = None

    def __repr__(self) -> str:
        return f"ComfyClient({self.url!r})"

    # -- lifecycle -------------------------------------------------------------------------

    def close(self) -> None:
        """Cancel this client's prompts still queued or running, then disconnect.

        A prompt is followed from ``run``; one submitted but never followed (queued ahead
        for the next case when Ctrl-C or SIGTERM landed between two cases) would otherwise
        run on. Only prompts this client submitted are touched."""
        for prompt_id in list(self._early):
            self.cancel(prompt_id)
        self._socket.drop()
        self._http.close()

    def __enter__(self) -> ComfyClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- plain HTTP ------------------------------------------------------------------------

    def system_stats(self) -> dict[str, Any]:
        return self._http.get_json("/system_stats")

    def reachable(self) -> bool:
        """True when the server answers anything at all, within ``PROBE_TIMEOUT``."""
        return self._http.reachable()

    def check_not_lost(self) -> None:
        """Fail fast once the server is known to be gone: one quick check, no reconnect loop.

        A server that answers again (restarted on the same URL) is simply used again."""
        if self.lost is None:
            return
        if self.reachable():
            self.lost = None
            return
        raise ServerLost(
            "ComfyUI stopped answering during an earlier case and still does not answer: "
            "this case was not run",
            self.url,
        )

    def object_info(self) -> dict[str, Any]:
        return self._http.get_json("/object_info")

    def history(self) -> dict[str, Any]:
        return self._http.get_json("/history")

    def models(self, folder: str) -> list[str] | None:
        """Files in a model folder (None when the server has no such folder)."""
        response = self._http.call("GET", f"/models/{folder}", ok=(200, 404))
        if response.status_code == 404:
            return None
        names = response.json()
        return [str(name) for name in names] if isinstance(names, list) else None

    def free(self) -> None:
        """Unload models and drop ComfyUI's node cache (applied before the next prompt)."""
        self._http.call("POST", "/free", json={"unload_models": True, "free_memory": True})

    def upload_image(self, path: Path, subfolder: str = "comfytest") -> str:
        """Upload a local file once per run; returns the name LoadImage takes."""
        data = path.read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        if digest in self._uploaded:
            return self._uploaded[digest]
        name = f"{digest[:12]}-{path.name}"
        response = self._http.call(
            "POST",
            "/upload/image",
            files={"image": (name, data, "application/octet-stream")},
            # No overwrite: the name carries the content digest, and ComfyUI answers an
            # identical file with its existing name. Overwriting could truncate the file while
            # another worker's prompt reads it (xdist workers share a server).
            data={"subfolder": subfolder, "type": "input"},
        )
        body = response.json()
        stored = f"{body['subfolder']}/{body['name']}" if body.get("subfolder") else body["name"]
        self._uploaded[digest] = stored
        return str(stored)

    def download(self, output: OutputFile) -> bytes:
        params = {"filename": output.filename, "subfolder": output.subfolder, "type": output.type}
        return self._http.call("GET", "/view", params=params).content

    def download_to(
        self, output: OutputFile, path: Path, *, in_memory: int = IN_MEMORY_LIMIT
    ) -> bytes | Path:
        """An output file: its bytes when it is at most ``in_memory`` bytes, else streamed
        into ``path`` (returned), so a big animation is never held whole."""
        params = {"filename": output.filename, "subfolder": output.subfolder, "type": output.type}
        return self._http.download("/view", params, path, in_memory)

    # -- running a prompt ------------------------------------------------------------------

    def submit(self, prompt: Prompt) -> str:
        """Queue ``prompt`` and return its id without waiting for it.

        ``run(prompt, queued=id)`` waits for it later; its WebSocket messages that arrive
        in between (while another prompt is followed) are kept for that wait, so the server
        can start it the moment the previous prompt ends."""
        self._socket.open(self._failure)  # open before queueing, or the first messages are lost
        prompt_id = str(uuid.uuid4())
        body = {"prompt": prompt, "client_id": self.client_id, "prompt_id": prompt_id}
        response = self._http.call("POST", "/prompt", json=body, ok=(200, 400))
        answer = json_object(response, self.url)
        if response.status_code == 400 or answer.get("node_errors"):
            raise rejection(answer, prompt)
        # Servers older than about 0.3.30 ignore a client's prompt_id and pick their own.
        prompt_id = str(answer.get("prompt_id") or prompt_id)
        self._early[prompt_id] = _Early(self._socket.connections, time.monotonic())
        return prompt_id

    def cancel(self, prompt_id: str) -> None:
        """Stop a prompt queued with ``submit``: interrupt it if it runs, else dequeue it."""
        self._early.pop(prompt_id, None)
        self._cancel(prompt_id)

    def run(
        self,
        prompt: Prompt,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        on_progress: ProgressCallback | None = None,
        queued: str | None = None,
    ) -> PromptRun:
        """Queue ``prompt`` (unless ``queued`` gives the id ``submit`` returned for it), wait
        for it on the WebSocket, and read its outputs from /history.

        ``on_progress(node_id, value, max)`` is called for each ``progress`` message (a
        sampler's steps, say) as it arrives."""
        prompt_id = queued if queued in self._early else self.submit(prompt)
        run = PromptRun(prompt_id=prompt_id, submitted_at=self._early[prompt_id].submitted_at)
        events = PromptEvents(run, time.monotonic(), on_progress)
        try:
            self._follow(events, prompt, timeout)
        except KeyboardInterrupt:
            self._cancel(prompt_id)  # Ctrl-C: leave the server idle for the next run
            raise
        run.finished_at = time.monotonic()
        entry = self._http.get_json(f"/history/{prompt_id}").get(prompt_id)
        events.feed_history(entry)
        failed = failure(events, prompt, self.url)
        if failed is not None:
            raise failed
        if not entry:
            raise ServerError("the prompt finished but has no /history entry", self.url, prompt_id)
        read_history(entry, run, prompt, self.url)
        return run

    def _follow(self, events: PromptEvents, prompt: Prompt, timeout: float) -> None:
        """Feed ``events`` the prompt's messages until it ends.

        Messages that came while another prompt was followed are replayed first, with the
        times they arrived. The WebSocket is (re)opened only after them, so a server that
        went away meanwhile is reported with the node the prompt had reached."""
        run = events.run
        prompt_id = run.prompt_id
        early = self._early.pop(prompt_id)
        deadline = time.monotonic() + timeout
        ws: ClientConnection | None = None
        replay = collections.deque(early.messages)
        ended = any(kind == "executing" and data.get("node") is None for _, kind, data in replay)
        # A WebSocket replaced since it was queued may have missed its end: ask /history.
        if (
            early.connection != self._socket.connections
            and not ended
            and self._http.get_json(f"/history/{prompt_id}").get(prompt_id)
        ):
            replay.append((time.monotonic(), "executing", {"prompt_id": prompt_id}))
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self._cancel(prompt_id)
                where = events.where(prompt)
                raise CaseTimeout(f"timed out after {timeout:g} s{where}", self.url, prompt_id)
            if replay:
                now, kind, data = replay.popleft()
            else:
                if ws is None:
                    if self._socket.current is not None:  # open, or closed, still to read
                        ws = self._socket.current
                    else:  # dropped since the prompt was queued: it may have ended unheard
                        ws = self._reconnect(events, prompt)
                        if ws is None:
                            return
                        continue
                try:
                    message = self._socket.receive(ws, remaining, prompt_id)
                except _Dropped:
                    fresh = self._reconnect(events, prompt)
                    if fresh is None:
                        return
                    ws = fresh
                    continue
                if message is None:
                    continue
                kind, data = message
                now = time.monotonic()
                other = self._early.get(str(data.get("prompt_id")))
                if other is not None:
                    other.messages.append((now, kind, data))  # a prompt queued behind ours
                    continue
                if data.get("prompt_id") != prompt_id:
                    continue
            if events.feed(now, kind, data):
                return

    def _reconnect(self, events: PromptEvents, prompt: Prompt) -> ClientConnection | None:
        """After a dropped WebSocket: a fresh one (the old one closed first), or None when
        /history shows the prompt ended while we were away; ServerLost when nothing answers."""
        run = events.run
        try:
            ws = self._socket.open(self._failure)
            if self._http.get_json(f"/history/{run.prompt_id}").get(run.prompt_id):
                return None
        except ServerLost as lost:
            where = events.where(prompt)
            self.lost = ServerLost(
                f"ComfyUI went away while the prompt ran{where}: the WebSocket closed "
                f"and the server no longer answers ({lost.message})",
                self.url,
                run.prompt_id,
            )
            raise self.lost from None
        return ws

    # -- internals -------------------------------------------------------------------------

    def _keep_early(self, arrived: float, kind: str, data: dict[str, Any]) -> None:
        """A message read from a dropped WebSocket: kept for the prompt queued ahead."""
        early = self._early.get(str(data.get("prompt_id")))
        if early is not None:
            early.messages.append((arrived, kind, data))

    def _cancel(self, prompt_id: str) -> None:
        """Interrupt a running prompt and drop it from the queue (best effort)."""
        self._http.post_quietly("/interrupt", {"prompt_id": prompt_id})
        self._http.post_quietly("/queue", {"delete": [prompt_id]})

    def _failure(self, message: str) -> ServerError:
        """A connection failed: ServerLost when a quick check finds the server gone."""
        if self.reachable():
            return ServerError(message, self.url)
        self._socket.drop()
        if not self._http.answered:
            return ServerLost(f"{message}; the server has not answered at all", self.url)
        self.lost = ServerLost(f"{message}; the server no longer answers", self.url)
        return self.lost


@dataclass
class _Early:
    """A prompt queued with ``submit``: on which WebSocket, when, and its messages so far
    as (arrival time, type, data)."""

    connection: int
    submitted_at: float
    messages: list[tuple[float, str, dict[str, Any]]] = field(default_factory=list)
