"""Talk to one ComfyUI server: submit a prompt, follow its WebSocket events, fetch outputs.

One ``httpx.Client`` and one WebSocket serve every prompt of a run. Completion is the
``executing`` message with ``node: null`` for our prompt id (sent after the history entry
is written, COMFYUI_API.md §2.5); there is no sleep and no polling on the main path. A
server that refuses the WebSocket is polled instead (comfytest.comfy.polling). A plain
ComfyUI and Comfy Cloud differ in routes and credentials only (comfytest.comfy.api).
"""

from __future__ import annotations

import collections
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from websockets.sync.client import ClientConnection

from comfytest.comfy.api import Api
from comfytest.comfy.auth import header_from_env
from comfytest.comfy.cancel import stop_prompt, wait_for_slot
from comfytest.comfy.events import ProgressCallback, PromptEvents, failure
from comfytest.comfy.history import OutputFile, PromptRun, TextOutput, read_history, rejection
from comfytest.comfy.http import RETRY_BUDGET, Http, json_object
from comfytest.comfy.plain import PlainCalls
from comfytest.comfy.polling import entry_of, fill_events, poll
from comfytest.comfy.socket import EventSocket, _Dropped
from comfytest.defaults import DEFAULT_TIMEOUT
from comfytest.errors import CaseTimeout, ServerError, ServerLost
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


class ComfyClient(PlainCalls):
    """A connection to one ComfyUI server, reused for every prompt of a run."""

    def __init__(
        self,
        url: str,
        *,
        timeout: float = REQUEST_TIMEOUT,
        header: tuple[str, str] | None = None,
        ca_bundle: Path | None = None,
        api: Api | None = None,
        retry_budget: float = RETRY_BUDGET,
        max_queued: int | None = None,
        run_id: str | None = None,
    ) -> None:
        """``header`` (name, value), e.g. an ``Authorization``, goes with every request and the
        WebSocket handshake to ``url`` only: redirects are never followed (but Comfy Cloud's
        from /view, fetched with no header), and the value is never part of an error, a repr
        or a record. TLS is verified, against ``ca_bundle`` when given, else the system's
        certificates. ``api`` says whether the server is Comfy Cloud (and holds its key).

        A busy answer (HTTP 429, 503) is retried for ``retry_budget`` seconds. With
        ``max_queued``, ``submit`` waits until fewer than that many prompts of run
        ``run_id`` (every client given that id, all xdist workers) are on the server."""
        self.url = url.rstrip("/")
        self.client_id = uuid.uuid4().hex
        self.run_id = run_id or self.client_id
        self.max_queued = max_queued
        self._http = Http(
            self.url,
            timeout=timeout,
            header=header,
            ca_bundle=ca_bundle,
            failure=self._failure,
            api=api,
            retry_budget=retry_budget,
        )
        super().__init__(self._http)
        #: Why prompts are followed by polling (the WebSocket was refused); None: they are not.
        self.polling: str | None = None
        self._socket = EventSocket(self._http, self.client_id, self._keep_early)
        #: Prompts queued with ``submit`` and not yet waited for: their messages so far.
        self._early: dict[str, _Early] = {}
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

    # -- the server --------------------------------------------------------------------------

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

    # -- running a prompt ------------------------------------------------------------------

    def submit(self, prompt: Prompt, *, slot_wait: float = DEFAULT_TIMEOUT) -> str:
        """Queue ``prompt`` and return its id without waiting for it.

        ``run(prompt, queued=id)`` waits for it later; its WebSocket messages that arrive
        in between (while another prompt is followed) are kept for that wait, so the server
        can start it the moment the previous prompt ends. With ``max_queued``, it first
        waits up to ``slot_wait`` seconds for a free slot (``ServerBusy`` after that)."""
        if self.max_queued is not None:
            wait_for_slot(self._http, self.run_id, self.max_queued, slot_wait)
        if self.polling is None:
            self._open_socket()  # open before queueing, or the first messages are lost
        prompt_id = str(uuid.uuid4())
        body = {
            "prompt": prompt,
            "client_id": self.client_id,
            "prompt_id": prompt_id,
            "extra_data": {"comfytest_run": self.run_id},
        }
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
        prompt_id = queued if queued in self._early else self.submit(prompt, slot_wait=timeout)
        run = PromptRun(prompt_id=prompt_id, submitted_at=self._early[prompt_id].submitted_at)
        events = PromptEvents(run, time.monotonic(), on_progress)
        deadline = time.monotonic() + timeout
        try:
            if self.polling is None:
                self._follow(events, prompt, deadline, timeout)
            if self.polling is not None:  # refused from the start, or on a reconnect
                self._early.pop(prompt_id, None)
                entry = poll(self._http, prompt_id, deadline)
                if entry is None:
                    self._timed_out(events, prompt, timeout)
                fill_events(events, prompt, entry or {})
            else:
                entry = entry_of(self._http, prompt_id)
        except KeyboardInterrupt:
            self._cancel(prompt_id)  # Ctrl-C: leave the server idle for the next run
            raise
        run.finished_at = time.monotonic()
        events.feed_history(entry)
        failed = failure(events, prompt, self.url)
        if failed is not None:
            raise failed
        if not entry:
            raise ServerError("the prompt finished but has no /history entry", self.url, prompt_id)
        read_history(entry, run, prompt, self.url)
        return run

    def _follow(
        self, events: PromptEvents, prompt: Prompt, deadline: float, timeout: float
    ) -> None:
        """Feed ``events`` the prompt's messages until it ends.

        Messages that came while another prompt was followed are replayed first, with the
        times they arrived. The WebSocket is (re)opened only after them, so a server that
        went away meanwhile is reported with the node the prompt had reached."""
        run = events.run
        prompt_id = run.prompt_id
        early = self._early.pop(prompt_id)
        ws: ClientConnection | None = None
        replay = collections.deque(early.messages)
        ended = any(kind == "executing" and data.get("node") is None for _, kind, data in replay)
        # A WebSocket replaced since it was queued may have missed its end: ask /history.
        if (
            early.connection != self._socket.connections
            and not ended
            and entry_of(self._http, prompt_id)
        ):
            replay.append((time.monotonic(), "executing", {"prompt_id": prompt_id}))
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self._timed_out(events, prompt, timeout)
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
        /history shows the prompt ended while we were away, or when the server now refuses
        the WebSocket (``polling`` is set: the prompt is polled); ServerLost when nothing
        answers."""
        run = events.run
        try:
            ws = self._open_socket()
            if ws is None or entry_of(self._http, run.prompt_id):
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

    def _cancel(self, prompt_id: str) -> str:
        """Stop our prompt, and no one else's (comfytest.comfy.cancel); says what was done."""
        return stop_prompt(self._http, prompt_id)

    def _timed_out(self, events: PromptEvents, prompt: Prompt, timeout: float) -> None:
        prompt_id = events.run.prompt_id
        done = self._cancel(prompt_id)
        where = events.where(prompt)
        raise CaseTimeout(f"timed out after {timeout:g} s{where}; {done}", self.url, prompt_id)

    def _open_socket(self) -> ClientConnection | None:
        """The WebSocket, or None when the server refuses it: from then on, prompts are
        polled (``polling`` says why). ServerLost when the server is gone."""
        try:
            return self._socket.open(self._failure)
        except ServerLost:
            raise
        except ServerError as refused:
            self.polling = f"the WebSocket was refused: {refused.message}"
            return None

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
