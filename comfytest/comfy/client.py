"""Talk to one ComfyUI server: submit a prompt, follow its WebSocket events, fetch outputs.

One ``httpx.Client`` and one WebSocket serve every prompt of a run. Completion is the
``executing`` message with ``node: null`` for our prompt id (sent after the history entry
is written, COMFYUI_API.md §2.5); there is no sleep and no polling on the main path.
"""

from __future__ import annotations

import collections
import contextlib
import hashlib
import json
import os
import re
import ssl
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from websockets.exceptions import WebSocketException
from websockets.protocol import State
from websockets.sync.client import ClientConnection, connect

from comfytest.comfy.history import OutputFile, PromptRun, TextOutput, read_history, rejection
from comfytest.errors import (
    CaseTimeout,
    ExecutionFailed,
    ServerError,
    ServerLost,
)
from comfytest.workflow.prompt import Prompt, node_label

__all__ = [
    "DEFAULT_TIMEOUT",
    "ComfyClient",
    "OutputFile",
    "PromptRun",
    "TextOutput",
    "header_from_env",
]

#: Seconds a single prompt may take before it is interrupted.
DEFAULT_TIMEOUT = 300.0
#: Seconds for one HTTP request or WebSocket handshake.
REQUEST_TIMEOUT = 30.0
#: ``on_progress(node_id, value, max)``: one ``progress`` message of the running prompt.
ProgressCallback = Callable[[str, int, int], None]
#: Outputs up to this size are judged from memory; bigger ones are streamed to a file.
IN_MEMORY_LIMIT = 16 << 20
#: Seconds for the one reachability check made after a connection failed.
PROBE_TIMEOUT = 3.0


def header_from_env(name: str) -> tuple[str, str]:
    """The header that environment variable ``name`` holds, for a server behind auth.

    ``Name: value`` (a header name, a colon and a space) is sent as that header; anything
    else is a token, sent as ``Authorization: Bearer <token>``. The value is never shown:
    a missing or empty variable is reported by its name only."""
    value = os.environ.get(name, "").strip()
    if not value:
        raise ServerError(f"the environment variable {name} (the auth header) is not set")
    full = re.fullmatch(r"([A-Za-z0-9-]+): (.+)", value, re.DOTALL)
    if full:
        return full.group(1), full.group(2).strip()
    return "Authorization", f"Bearer {value}"


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
        self._timeout = timeout
        self._headers = dict([header]) if header else {}
        try:
            self._tls = ssl.create_default_context(cafile=str(ca_bundle) if ca_bundle else None)
        except (OSError, ssl.SSLError) as exc:
            raise ServerError(f"cannot read the CA bundle {ca_bundle}: {exc}", url) from None
        self._http = httpx.Client(
            base_url=self.url,
            timeout=timeout,
            headers=self._headers,
            verify=self._tls,
            follow_redirects=False,
        )
        self._ws: ClientConnection | None = None
        self._ws_stack = contextlib.ExitStack()
        #: How many WebSockets this client opened: a prompt queued on an earlier one may
        #: have ended unheard.
        self._connections = 0
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
        self._drop_websocket()
        self._http.close()

    def __enter__(self) -> ComfyClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- plain HTTP ------------------------------------------------------------------------

    def system_stats(self) -> dict[str, Any]:
        return self._get_json("/system_stats")

    def reachable(self) -> bool:
        """True when the server answers anything at all, within ``PROBE_TIMEOUT``."""
        try:
            self._http.get("/system_stats", timeout=PROBE_TIMEOUT)
        except httpx.HTTPError:
            return False
        return True

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
        return self._get_json("/object_info")

    def history(self) -> dict[str, Any]:
        return self._get_json("/history")

    def models(self, folder: str) -> list[str] | None:
        """Files in a model folder (None when the server has no such folder)."""
        response = self._http_call("GET", f"/models/{folder}", ok=(200, 404))
        if response.status_code == 404:
            return None
        names = response.json()
        return [str(name) for name in names] if isinstance(names, list) else None

    def free(self) -> None:
        """Unload models and drop ComfyUI's node cache (applied before the next prompt)."""
        self._request("POST", "/free", json={"unload_models": True, "free_memory": True})

    def upload_image(self, path: Path, subfolder: str = "comfytest") -> str:
        """Upload a local file once per run; returns the name LoadImage takes."""
        data = path.read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        if digest in self._uploaded:
            return self._uploaded[digest]
        name = f"{digest[:12]}-{path.name}"
        response = self._request(
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
        return self._request("GET", "/view", params=params).content

    def download_to(
        self, output: OutputFile, path: Path, *, in_memory: int = IN_MEMORY_LIMIT
    ) -> bytes | Path:
        """An output file: its bytes when it is at most ``in_memory`` bytes, else streamed
        into ``path`` (returned), so a big animation is never held whole."""
        params = {"filename": output.filename, "subfolder": output.subfolder, "type": output.type}
        try:
            with self._http.stream("GET", "/view", params=params) as response:
                if response.status_code != 200:
                    response.read()
                    raise ServerError(
                        f"GET /view answered HTTP {response.status_code}{_detail(response)}",
                        self.url,
                    )
                chunks: list[bytes] = []
                size = 0
                for chunk in response.iter_bytes(1 << 20):
                    chunks.append(chunk)
                    size += len(chunk)
                    if size > in_memory:
                        break
                else:
                    return b"".join(chunks)
                with path.open("wb") as handle:
                    handle.writelines(chunks)
                    for chunk in response.iter_bytes(1 << 20):
                        handle.write(chunk)
                return path
        except httpx.TransportError as exc:
            raise self._failure(f"GET /view failed: {exc}") from None
        except httpx.HTTPError as exc:
            raise ServerError(f"GET /view failed: {exc}", self.url) from None

    # -- running a prompt ------------------------------------------------------------------

    def submit(self, prompt: Prompt) -> str:
        """Queue ``prompt`` and return its id without waiting for it.

        ``run(prompt, queued=id)`` waits for it later; its WebSocket messages that arrive
        in between (while another prompt is followed) are kept for that wait, so the server
        can start it the moment the previous prompt ends."""
        self._websocket()  # open before queueing, or the first messages are lost
        prompt_id = str(uuid.uuid4())
        body = {"prompt": prompt, "client_id": self.client_id, "prompt_id": prompt_id}
        response = self._http_call("POST", "/prompt", json=body, ok=(200, 400))
        answer = _json(response, self.url)
        if response.status_code == 400 or answer.get("node_errors"):
            raise rejection(answer, prompt)
        # Servers older than about 0.3.30 ignore a client's prompt_id and pick their own.
        prompt_id = str(answer.get("prompt_id") or prompt_id)
        self._early[prompt_id] = _Early(self._connections, time.monotonic())
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
        try:
            error, interrupted = self._follow(run, prompt, timeout, on_progress)
        except KeyboardInterrupt:
            self._cancel(prompt_id)  # Ctrl-C: leave the server idle for the next run
            raise
        run.finished_at = time.monotonic()
        entry = self._get_json(f"/history/{prompt_id}").get(prompt_id)
        for kind, data in (entry or {}).get("status", {}).get("messages", []):
            # The same terminal messages, in case the WebSocket dropped before they came.
            if kind == "execution_error" and error is None:
                error = data
            elif kind == "execution_interrupted" and interrupted is None:
                interrupted = data
        if error is not None:
            node_id = str(error.get("node_id"))
            class_type, title = node_label(prompt, node_id)
            raise ExecutionFailed(
                node_id,
                str(error.get("node_type") or class_type),
                title,
                str(error.get("exception_type", "Exception")),
                str(error.get("exception_message", "")),
                error.get("traceback") or (),
            )
        if interrupted is not None:
            raise ServerError(
                f"the prompt was interrupted at node {interrupted.get('node_id')}",
                self.url,
                prompt_id,
            )
        if not entry:
            raise ServerError("the prompt finished but has no /history entry", self.url, prompt_id)
        read_history(entry, run, prompt, self.url)
        return run

    def _follow(
        self,
        run: PromptRun,
        prompt: Prompt,
        timeout: float,
        on_progress: ProgressCallback | None,
    ) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
        """Read events until the prompt ends: (execution_error, execution_interrupted) data.

        Messages that came while another prompt was followed are replayed first, with the
        times they arrived. The WebSocket is (re)opened only after them, so a server that
        went away meanwhile is reported with the node the prompt had reached."""
        prompt_id = run.prompt_id
        early = self._early.pop(prompt_id)
        deadline = time.monotonic() + timeout
        error: dict[str, Any] | None = None
        interrupted: dict[str, Any] | None = None
        node_started = time.monotonic()
        ws: ClientConnection | None = None
        replay = collections.deque(early.messages)
        ended = any(kind == "executing" and data.get("node") is None for _, kind, data in replay)
        # A WebSocket replaced since it was queued may have missed its end: ask /history.
        if (
            early.connection != self._connections
            and not ended
            and self._get_json(f"/history/{prompt_id}").get(prompt_id)
        ):
            replay.append((time.monotonic(), "executing", {"prompt_id": prompt_id}))
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self._cancel(prompt_id)
                node = run.executed_nodes[-1] if run.executed_nodes else None
                where = f" at node {node} ({node_label(prompt, node)[1]})" if node else ""
                raise CaseTimeout(f"timed out after {timeout:g} s{where}", self.url, prompt_id)
            if replay:
                now, kind, data = replay.popleft()
            else:
                if ws is None:
                    if self._ws is not None:  # open, or closed with messages still to read
                        ws = self._ws
                    else:  # dropped since the prompt was queued: it may have ended unheard
                        ws = self._reconnect(run, prompt)
                        if ws is None:
                            return error, interrupted
                        continue
                try:
                    message = self._receive(ws, remaining, prompt_id)
                except _Dropped:
                    fresh = self._reconnect(run, prompt)
                    if fresh is None:
                        return error, interrupted
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
            if kind == "executing":
                if run.executed_nodes:
                    last = run.executed_nodes[-1]
                    run.node_seconds[last] = now - node_started
                if data.get("node") is None:
                    return error, interrupted
                run.executed_nodes.append(str(data["node"]))
                node_started = now
            elif kind == "progress":
                node, value = str(data.get("node")), int(data.get("value", 0))
                first = run.progress.get(node)
                run.progress[node] = (
                    (first[0], first[1], now, value) if first else (now, value, now, value)
                )
                if on_progress is not None:
                    on_progress(node, value, int(data.get("max", 0)))
            elif kind == "execution_cached":
                run.cached_nodes = [str(node) for node in data.get("nodes", [])]
            elif kind == "execution_error":
                if data.get("exception_type") != "ExecutionBlocked":
                    error = data
            elif kind == "execution_interrupted":
                interrupted = data
        return error, interrupted

    def _reconnect(self, run: PromptRun, prompt: Prompt) -> ClientConnection | None:
        """After a dropped WebSocket: a fresh one (the old one closed first), or None when
        /history shows the prompt ended while we were away; ServerLost when nothing answers."""
        try:
            ws = self._websocket()
            if self._get_json(f"/history/{run.prompt_id}").get(run.prompt_id):
                return None
        except ServerLost as lost:
            node = run.executed_nodes[-1] if run.executed_nodes else None
            where = f" at node {node} ({node_label(prompt, node)[1]})" if node else ""
            self.lost = ServerLost(
                f"ComfyUI went away while the prompt ran{where}: the WebSocket closed "
                f"and the server no longer answers ({lost.message})",
                self.url,
                run.prompt_id,
            )
            raise self.lost from None
        return ws

    # -- internals -------------------------------------------------------------------------

    def _websocket(self) -> ClientConnection:
        if self._ws is not None and self._ws.state is State.OPEN:
            return self._ws
        # Closed since the last prompt (a restarted server, say): close ours before opening a
        # new one with the same clientId (COMFYUI_API.md §2.1, the duplicate-clientId pitfall).
        self._drop_websocket()
        ws_url = self.url.replace("http://", "ws://", 1).replace("https://", "wss://", 1)
        stack = contextlib.ExitStack()
        try:
            ws = stack.enter_context(
                connect(
                    f"{ws_url}/ws?clientId={self.client_id}",
                    open_timeout=self._timeout,
                    max_size=None,
                    additional_headers=self._headers,
                    ssl=self._tls if ws_url.startswith("wss://") else None,
                )
            )
        except (OSError, WebSocketException, TimeoutError) as exc:
            raise self._failure(f"cannot open the WebSocket: {exc}") from None
        # The first frame is always "status": after it, messages for our client id reach us.
        self._ws, self._ws_stack = ws, stack
        self._connections += 1
        self._receive(ws, self._timeout, None)
        return ws

    def _drain(self, ws: ClientConnection) -> None:
        """Keep what a closed WebSocket still holds for prompts queued ahead (the nodes they
        reached), before it is dropped."""
        while True:
            try:
                frame = ws.recv(timeout=0)
            except (WebSocketException, TimeoutError):
                return
            if isinstance(frame, str):
                message = json.loads(frame)
                data = message.get("data") or {}
                early = self._early.get(str(data.get("prompt_id")))
                if early is not None:
                    early.messages.append((time.monotonic(), str(message.get("type")), data))

    def _drop_websocket(self) -> None:
        if self._ws is not None:
            self._drain(self._ws)
        self._ws = None
        self._ws_stack.close()

    def _receive(
        self, ws: ClientConnection, timeout: float, prompt_id: str | None
    ) -> tuple[str, dict[str, Any]] | None:
        """Next JSON message as (type, data); None for binary frames (previews)."""
        try:
            frame = ws.recv(timeout=timeout)
        except TimeoutError:
            return None
        except WebSocketException as exc:
            self._drop_websocket()
            raise _Dropped(f"the WebSocket closed: {exc}", self.url, prompt_id) from None
        if isinstance(frame, bytes):
            return None
        message = json.loads(frame)
        return str(message.get("type")), message.get("data") or {}

    def _cancel(self, prompt_id: str) -> None:
        """Interrupt a running prompt and drop it from the queue (best effort)."""
        for path, body in (
            ("/interrupt", {"prompt_id": prompt_id}),
            ("/queue", {"delete": [prompt_id]}),
        ):
            with contextlib.suppress(httpx.HTTPError):
                self._http.post(path, json=body)

    def _get_json(self, path: str) -> dict[str, Any]:
        return _json(self._request("GET", path), self.url)

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return self._http_call(method, path, ok=(200,), **kwargs)

    def _http_call(
        self, method: str, path: str, *, ok: tuple[int, ...], **kwargs: Any
    ) -> httpx.Response:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise self._failure(f"{method} {path} failed: {exc}") from None
        except httpx.HTTPError as exc:
            raise ServerError(f"{method} {path} failed: {exc}", self.url) from None
        if response.status_code not in ok:
            raise ServerError(
                f"{method} {path} answered HTTP {response.status_code}{_detail(response)}",
                self.url,
            )
        return response

    def _failure(self, message: str) -> ServerError:
        """A connection failed: ServerLost when a quick check finds the server gone."""
        if self.reachable():
            return ServerError(message, self.url)
        self._drop_websocket()
        self.lost = ServerLost(f"{message}; the server no longer answers", self.url)
        return self.lost


@dataclass
class _Early:
    """A prompt queued with ``submit``: on which WebSocket, when, and its messages so far
    as (arrival time, type, data)."""

    connection: int
    submitted_at: float
    messages: list[tuple[float, str, dict[str, Any]]] = field(default_factory=list)


class _Dropped(ServerError):
    """The WebSocket closed under us; the prompt may still be running."""


def _detail(response: httpx.Response) -> str:
    """What an unexpected answer said; a redirect is named and never followed (an auth
    header must not reach another host)."""
    if response.is_redirect:
        return f", a redirect to {response.headers.get('location')!r} (not followed)"
    text = response.text[:500].strip()
    return f": {text}" if text else ""


def _json(response: httpx.Response, url: str) -> dict[str, Any]:
    try:
        data = response.json()
    except ValueError:
        raise ServerError(f"expected JSON from {response.request.url.path}", url) from None
    if not isinstance(data, dict):
        raise ServerError(f"expected a JSON object from {response.request.url.path}", url)
    return data
