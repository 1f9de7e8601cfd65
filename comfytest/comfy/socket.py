"""The one WebSocket of a client: opened on demand, read one JSON message at a time.

ComfyUI keys WebSockets by ``clientId``, so a closed one is dropped before another is opened
with the same id (COMFYUI_API.md §2.1, the duplicate-clientId pitfall); what a closed one
still holds is handed to ``keep`` first, so prompts queued ahead lose none of their messages.

On Comfy Cloud the URL carries the API key (``token=``): it is blanked out of every error
and of the websockets library's log records, which would show the request line.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Callable
from typing import Any

from websockets.exceptions import WebSocketException
from websockets.protocol import State
from websockets.sync.client import ClientConnection, connect

from comfytest.comfy.http import Http
from comfytest.errors import ServerError

__all__ = ["EventSocket"]

#: ``keep(arrived, type, data)``: a message read from a socket as it is dropped.
Keep = Callable[[float, str, dict[str, Any]], None]


class _Dropped(ServerError):
    """The WebSocket closed under us; the prompt may still be running."""


class _Redacting(logging.Filter):
    """Blanks a secret out of every record of the logger it is on."""

    def __init__(self, secret: str) -> None:
        super().__init__()
        self.secret = secret

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if self.secret in message:
            record.msg, record.args = message.replace(self.secret, "***"), None
        return True


def _logger(secret: str | None) -> logging.Logger:
    """The websockets client's logger, redacting ``secret`` when there is one."""
    logger = logging.getLogger("websockets.client")
    if secret and not any(isinstance(f, _Redacting) and f.secret == secret for f in logger.filters):
        logger.addFilter(_Redacting(secret))
    return logger


class EventSocket:
    """The WebSocket to ``http``'s server for ``client_id``."""

    def __init__(self, http: Http, client_id: str, keep: Keep) -> None:
        self._http = http
        self._client_id = client_id
        self._keep = keep
        #: The open (or closed but not yet dropped) connection, if any.
        self.current: ClientConnection | None = None
        self._stack = contextlib.ExitStack()
        #: How many connections were opened: a prompt queued on an earlier one may have
        #: ended unheard.
        self.connections = 0

    def open(self, failure: Callable[[str], ServerError]) -> ClientConnection:
        """The open connection, or a new one (``failure(message)`` is raised when it cannot
        be opened)."""
        if self.current is not None and self.current.state is State.OPEN:
            return self.current
        self.drop()  # closed since the last prompt (a restarted server, say)
        url = self._http.url.replace("http://", "ws://", 1).replace("https://", "wss://", 1)
        api = self._http.api
        stack = contextlib.ExitStack()
        try:
            ws = stack.enter_context(
                connect(
                    f"{url}/ws?{api.socket_query(self._client_id)}",
                    open_timeout=self._http.timeout,
                    max_size=None,
                    additional_headers=self._http.headers,
                    ssl=self._http.tls if url.startswith("wss://") else None,
                    logger=_logger(api.key),
                )
            )
        except (OSError, WebSocketException, TimeoutError) as exc:
            raise failure(api.redact(f"cannot open the WebSocket: {exc}")) from None
        # The first frame is always "status": after it, messages for our client id reach us.
        self.current, self._stack = ws, stack
        self.connections += 1
        self.receive(ws, self._http.timeout, None)
        return ws

    def receive(
        self, ws: ClientConnection, timeout: float, prompt_id: str | None
    ) -> tuple[str, dict[str, Any]] | None:
        """Next JSON message as (type, data); None for binary frames (previews) and when
        nothing came in ``timeout`` seconds; ``_Dropped`` when the connection closed."""
        try:
            frame = ws.recv(timeout=timeout)
        except TimeoutError:
            return None
        except WebSocketException as exc:
            self.drop()
            raise _Dropped(f"the WebSocket closed: {exc}", self._http.url, prompt_id) from None
        if isinstance(frame, bytes):
            return None
        message = json.loads(frame)
        return str(message.get("type")), message.get("data") or {}

    def drop(self) -> None:
        """Close the connection, after handing what it still holds to ``keep``."""
        if self.current is not None:
            while True:
                try:
                    frame = self.current.recv(timeout=0)
                except (WebSocketException, TimeoutError):
                    break
                if isinstance(frame, str):
                    message = json.loads(frame)
                    self._keep(
                        time.monotonic(), str(message.get("type")), message.get("data") or {}
                    )
        self.current = None
        self._stack.close()
