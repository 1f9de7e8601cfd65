"""A FAKE ComfyUI server, for faults that a real ComfyUI cannot be made to show.

A real server never reports an output file named ``../../evil.png``, never answers with a
redirect to another host, never serves a truncated PNG, and ignores auth headers, so it
cannot show where they went. This fake can, on demand. Everything else is tested against the
real managed ComfyUI.

It speaks just enough of the protocol (COMFYUI_API.md) for prompts run one after another:
``/system_stats``, ``/object_info`` (both copied from the real server), ``/models/<folder>``,
``/free``, ``/prompt``, ``/history/<id>``, ``/view`` and ``/ws``, a hand-written WebSocket
(the handshake, unmasked text frames out, close and ping answered). Every request's method,
path and headers are recorded in ``requests``.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import queue
import select
import socket
import ssl
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

WEBSOCKET_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

#: Given the prompt a client queued, the ``outputs`` of its /history entry.
Outputs = Callable[[dict[str, Any]], dict[str, Any]]


def save_image_outputs(filename: str = "out.png", subfolder: str = "") -> Outputs:
    """What SaveImage reports: one image, under the prompt's SaveImage node."""

    def outputs(prompt: dict[str, Any]) -> dict[str, Any]:
        node = next(n for n, v in prompt.items() if v["class_type"] == "SaveImage")
        item = {"filename": filename, "subfolder": subfolder, "type": "output"}
        return {node: {"images": [item]}}

    return outputs


@dataclass(frozen=True)
class Seen:
    method: str
    path: str
    headers: dict[str, str]


class FakeComfy:
    """A fake ComfyUI on a free loopback port; use as a context manager."""

    def __init__(
        self,
        object_info: dict[str, Any],
        system_stats: dict[str, Any],
        *,
        outputs: list[Outputs] | None = None,
        view: bytes = b"",
        redirect_view_to: str | None = None,
        tls: tuple[Path, Path] | None = None,
    ) -> None:
        self.object_info = object_info
        self.system_stats = system_stats
        self.outputs = outputs or [save_image_outputs()]
        self.view = view
        self.redirect_view_to = redirect_view_to
        self.requests: list[Seen] = []
        self._tls = tls
        self._sockets: dict[str, queue.Queue[dict[str, Any]]] = {}
        self._history: dict[str, dict[str, Any]] = {}
        self._prompts = 0
        self._closing = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        if tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(str(tls[0]), str(tls[1]))
            self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        scheme = "https" if tls else "http"
        self.url = f"{scheme}://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> FakeComfy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._closing.set()
        self._server.shutdown()
        self._server.server_close()

    def paths(self) -> list[str]:
        return [seen.path.split("?")[0] for seen in self.requests]

    # -- the protocol ----------------------------------------------------------------------

    def _queue_prompt(self, body: dict[str, Any]) -> dict[str, Any]:
        prompt_id = str(body["prompt_id"])
        prompt = body["prompt"]
        outputs = self.outputs[min(self._prompts, len(self.outputs) - 1)](prompt)
        self._prompts += 1
        now = int(time.time() * 1000)
        self._history[prompt_id] = {
            "prompt": [self._prompts, prompt_id, prompt, {"create_time": now}, list(outputs)],
            "outputs": outputs,
            "status": {
                "status_str": "success",
                "completed": True,
                "messages": [
                    ["execution_start", {"prompt_id": prompt_id, "timestamp": now}],
                    ["execution_success", {"prompt_id": prompt_id, "timestamp": now + 1}],
                ],
            },
            "meta": {},
        }
        events = self._sockets.get(str(body.get("client_id")))
        if events is not None:
            events.put({"type": "execution_start", "data": {"prompt_id": prompt_id}})
            for node in prompt:
                events.put({"type": "executing", "data": {"node": node, "prompt_id": prompt_id}})
            events.put({"type": "executing", "data": {"node": None, "prompt_id": prompt_id}})
        return {"prompt_id": prompt_id, "number": self._prompts, "node_errors": {}}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # a WebSocket handshake needs it

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _record(self) -> str:
                headers = {name.lower(): value for name, value in self.headers.items()}
                fake.requests.append(Seen(self.command, self.path, headers))
                return urlsplit(self.path).path.removeprefix("/api")

            def _json(self, data: Any, status: int = 200) -> None:
                body = json.dumps(data).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                path = self._record()
                if path == "/ws":
                    self._websocket()
                elif path == "/system_stats":
                    self._json(fake.system_stats)
                elif path == "/object_info":
                    self._json(fake.object_info)
                elif path.startswith("/models/"):
                    self._json([])
                elif path.startswith("/history/"):
                    prompt_id = path.split("/")[-1]
                    entry = fake._history.get(prompt_id)
                    self._json({prompt_id: entry} if entry else {})
                elif path == "/view" and fake.redirect_view_to:
                    self.send_response(307)
                    self.send_header("Location", fake.redirect_view_to + "/view")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                elif path == "/view":
                    self.send_response(200)
                    self.send_header("Content-Type", "image/png")
                    self.send_header("Content-Length", str(len(fake.view)))
                    self.end_headers()
                    self.wfile.write(fake.view)
                else:
                    self._json({"error": "not found"}, 404)

            def do_POST(self) -> None:
                path = self._record()
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b"{}"
                if path == "/prompt":
                    self._json(fake._queue_prompt(json.loads(raw)))
                else:  # /free, /interrupt, /queue
                    self._json({})

            def _websocket(self) -> None:
                key = self.headers["Sec-WebSocket-Key"]
                accept = base64.b64encode(
                    hashlib.sha1((key + WEBSOCKET_GUID).encode()).digest()
                ).decode()
                self.send_response(101, "Switching Protocols")
                self.send_header("Upgrade", "websocket")
                self.send_header("Connection", "Upgrade")
                self.send_header("Sec-WebSocket-Accept", accept)
                self.end_headers()
                self.wfile.flush()
                client_id = parse_qs(urlsplit(self.path).query).get("clientId", [""])[0]
                events: queue.Queue[dict[str, Any]] = queue.Queue()
                fake._sockets[client_id] = events
                status = {"status": {"exec_info": {"queue_remaining": 0}}, "sid": client_id}
                events.put({"type": "status", "data": status})
                connection = self.connection
                while not fake._closing.is_set():
                    with contextlib.suppress(queue.Empty):
                        message = events.get(timeout=0.05)
                        _send(connection, 0x1, json.dumps(message).encode())
                    readable = select.select([connection], [], [], 0)[0]
                    if readable or (isinstance(connection, ssl.SSLSocket) and connection.pending()):
                        frame = _receive(connection)
                        if frame is None or frame[0] == 0x8:  # gone, or a close frame
                            with contextlib.suppress(OSError):
                                _send(connection, 0x8, b"")
                            return
                        if frame[0] == 0x9:  # ping
                            _send(connection, 0xA, frame[1])

        return Handler


def _send(connection: socket.socket, opcode: int, payload: bytes) -> None:
    size = len(payload)
    if size < 126:
        header = struct.pack("!BB", 0x80 | opcode, size)
    elif size < 1 << 16:
        header = struct.pack("!BBH", 0x80 | opcode, 126, size)
    else:
        header = struct.pack("!BBQ", 0x80 | opcode, 127, size)
    connection.sendall(header + payload)


def _receive(connection: socket.socket) -> tuple[int, bytes] | None:
    """One client frame (masked, as clients must send them): (opcode, payload)."""
    head = _exactly(connection, 2)
    if head is None:
        return None
    size = head[1] & 0x7F
    if size == 126:
        size = struct.unpack("!H", _exactly(connection, 2) or b"\0\0")[0]
    elif size == 127:
        size = struct.unpack("!Q", _exactly(connection, 8) or bytes(8))[0]
    mask = _exactly(connection, 4) if head[1] & 0x80 else b"\0\0\0\0"
    data = _exactly(connection, size) if size else b""
    if mask is None or data is None:
        return None
    return head[0] & 0x0F, bytes(b ^ mask[i % 4] for i, b in enumerate(data))


def _exactly(connection: socket.socket, size: int) -> bytes | None:
    chunks = b""
    while len(chunks) < size:
        try:
            chunk = connection.recv(size - len(chunks))
        except OSError:
            return None
        if not chunk:
            return None
        chunks += chunk
    return chunks
