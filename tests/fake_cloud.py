"""A FAKE Comfy Cloud, and a fake storage host for its signed URLs: the real service cannot
be reached from here.

It implements the routes and WebSocket messages comfytest uses, as the published spec
``openapi-cloud.yaml`` (info.version 1.0.0, Comfy-Org/docs) gives them:

* every ``/api/...`` route needs ``X-API-Key: <key>`` (else 401, an ``ErrorResponse``);
* ``GET /api/system_stats``, ``GET /api/object_info`` (the real server's, copied),
  ``GET /api/experiment/models/{folder}`` (``ModelFile`` objects);
* ``POST /api/prompt`` -> ``PromptResponse`` with a job id of its own choosing (the
  client's is ignored); 429 with a ``PromptErrorResponse`` while ``busy`` says so;
* ``GET /api/job/{id}/status`` -> ``JobStatusResponse``; ``GET /api/jobs/{id}`` ->
  ``JobDetailResponse`` (``outputs``, ``execution_status`` once terminal);
* ``GET /api/queue``, ``POST /api/queue``, ``POST /api/interrupt``;
* ``GET /api/view`` -> **302** to a signed URL on the other host (``FakeStorage``, reached
  as ``localhost`` while the fake Cloud is ``127.0.0.1``);
* ``/ws?clientId=…&token=<key>``: ``status`` first, then ``execution_start``,
  ``executing`` per node, ``executed``, ``execution_success`` and ``executing`` with
  ``node: null``; refused with 403 when the token is wrong or ``refuse_socket`` is set.

Every request's method, full path (query too) and headers are recorded, on both hosts.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import queue
import select
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from .fake_comfy import WEBSOCKET_GUID, Seen, _receive, _send

SPEC_VERSION = "1.0.0"


class _Quiet(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _reply(self, status: int, body: bytes, kind: str, **headers: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers.items():
            self.send_header(name.replace("_", "-"), value)
        self.end_headers()
        self.wfile.write(body)

    def _json(self, data: Any, status: int = 200, **headers: str) -> None:
        self._reply(status, json.dumps(data).encode(), "application/json", **headers)


class _Listener:
    def __init__(self, handler: type[BaseHTTPRequestHandler], host: str) -> None:
        self.requests: list[Seen] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self.url = f"http://{host}:{self._server.server_address[1]}"
        self.closing = threading.Event()

    def __enter__(self) -> Any:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.closing.set()
        self._server.shutdown()
        self._server.server_close()

    def record(self, handler: BaseHTTPRequestHandler) -> str:
        headers = {name.lower(): value for name, value in handler.headers.items()}
        self.requests.append(Seen(handler.command, handler.path, headers))
        return urlsplit(handler.path).path


class FakeStorage(_Listener):
    """The signed-URL host: serves ``files`` (name -> bytes) at ``/signed/<name>``; with
    ``redirect``, answers with one more redirect instead (which must not be followed)."""

    def __init__(self, files: dict[str, bytes], *, redirect: bool = False) -> None:
        self.files = files
        self.redirect = redirect
        storage = self

        class Handler(_Quiet):
            def do_GET(self) -> None:
                path = storage.record(self)
                name = path.removeprefix("/signed/")
                if storage.redirect:
                    self._reply(302, b"", "text/plain", Location=f"{storage.url}/elsewhere")
                elif name in storage.files:
                    self._reply(200, storage.files[name], "image/png")
                else:
                    self._json({"code": "not_found", "message": name}, 404)

        super().__init__(Handler, "localhost")  # another host name than the Cloud's


class FakeCloud(_Listener):
    """A fake Comfy Cloud on 127.0.0.1 whose /api/view redirects to ``storage``."""

    def __init__(
        self,
        object_info: dict[str, Any],
        system_stats: dict[str, Any],
        storage: FakeStorage,
        *,
        key: str,
        busy: int = 0,
        refuse_socket: bool = False,
    ) -> None:
        self.object_info = object_info
        self.system_stats = system_stats
        self.storage = storage
        self.key = key
        #: How many POST /api/prompt to answer 429 first (-1: every one).
        self.busy = busy
        self.refuse_socket = refuse_socket
        self.jobs: dict[str, dict[str, Any]] = {}
        self._sockets: dict[str, queue.Queue[dict[str, Any]]] = {}
        cloud = self

        class Handler(_Quiet):
            def _authorised(self) -> str | None:
                path = cloud.record(self)
                if path != "/ws" and self.headers.get("X-API-Key") != cloud.key:
                    self._json({"code": "unauthorized", "message": "invalid API key"}, 401)
                    return None
                return path

            def do_GET(self) -> None:
                path = self._authorised()
                if path is None:
                    return
                job = path.split("/")[3] if path.count("/") >= 3 else ""
                if path == "/ws":
                    self._websocket()
                elif path == "/api/system_stats":
                    self._json(cloud.system_stats)
                elif path == "/api/object_info":
                    self._json(cloud.object_info)
                elif path.startswith("/api/experiment/models/"):
                    self._json([{"name": "tiny.safetensors", "pathIndex": 0}])
                elif (
                    path.startswith("/api/job/") and path.endswith("/status") and job in cloud.jobs
                ):
                    entry = cloud.jobs[job]
                    self._json({key: entry[key] for key in ("id", "status", "created_at")})
                elif path.startswith("/api/jobs/") and path.split("/")[3] in cloud.jobs:
                    self._json(cloud.jobs[path.split("/")[3]])
                elif path == "/api/queue":
                    self._json({"queue_running": [], "queue_pending": []})
                elif path == "/api/view":
                    name = parse_qs(urlsplit(self.path).query)["filename"][0]
                    signed = f"{cloud.storage.url}/signed/{name}?X-Goog-Signature=f4ke&Expires=60"
                    self._reply(302, b"", "text/plain", Location=signed)
                else:
                    self._json({"code": "not_found", "message": path}, 404)

            def do_POST(self) -> None:
                path = self._authorised()
                if path is None:
                    return
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                if path == "/api/prompt" and cloud.busy:
                    cloud.busy -= 1 if cloud.busy > 0 else 0
                    error = {"code": "too_many_requests", "message": "queue full, retry later"}
                    self._json({"error": error}, 429, Retry_After="0")
                elif path == "/api/prompt":
                    self._json(cloud._queue(body))
                elif path in ("/api/queue", "/api/interrupt"):
                    self._json({})
                else:
                    self._json({"code": "not_found", "message": path}, 404)

            def _websocket(self) -> None:
                query = parse_qs(urlsplit(self.path).query)
                if cloud.refuse_socket or query.get("token", [""])[0] != cloud.key:
                    self._json({"code": "forbidden", "message": "no WebSocket"}, 403)
                    return
                key = self.headers["Sec-WebSocket-Key"]
                digest = hashlib.sha1((key + WEBSOCKET_GUID).encode()).digest()
                self.send_response(101, "Switching Protocols")
                self.send_header("Upgrade", "websocket")
                self.send_header("Connection", "Upgrade")
                self.send_header("Sec-WebSocket-Accept", base64.b64encode(digest).decode())
                self.end_headers()
                self.wfile.flush()
                events: queue.Queue[dict[str, Any]] = queue.Queue()
                cloud._sockets[query.get("clientId", [""])[0]] = events
                status = {"status": {"exec_info": {"queue_remaining": 0}}, "sid": "s"}
                events.put({"type": "status", "data": status})
                connection = self.connection
                while not cloud.closing.is_set():
                    with contextlib.suppress(queue.Empty):
                        _send(connection, 0x1, json.dumps(events.get(timeout=0.05)).encode())
                    if select.select([connection], [], [], 0)[0]:
                        frame = _receive(connection)
                        if frame is None or frame[0] == 0x8:
                            with contextlib.suppress(OSError):
                                _send(connection, 0x8, b"")
                            return
                        if frame[0] == 0x9:
                            _send(connection, 0xA, frame[1])

        super().__init__(Handler, "127.0.0.1")

    def _queue(self, body: dict[str, Any]) -> dict[str, Any]:
        """Runs the prompt at once: every node, SaveImage writing one file."""
        job = str(uuid.uuid4())  # Cloud picks the job id
        prompt = body["prompt"]
        save = next(n for n, v in prompt.items() if v["class_type"] == "SaveImage")
        name = next(iter(self.storage.files))
        outputs = {save: {"images": [{"filename": name, "subfolder": "", "type": "output"}]}}
        now = int(time.time() * 1000)
        messages = [
            ["execution_start", {"prompt_id": job, "timestamp": now}],
            ["execution_cached", {"prompt_id": job, "nodes": [], "timestamp": now}],
            ["execution_success", {"prompt_id": job, "timestamp": now + 40}],
        ]
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        self.jobs[job] = {
            "id": job,
            "status": "completed",
            "created_at": stamp,
            "create_time": now // 1000,
            "update_time": now // 1000,
            "outputs": outputs,
            "execution_status": {"status_str": "success", "completed": True, "messages": messages},
        }
        events = self._sockets.get(str(body.get("client_id")))
        if events is not None:
            events.put({"type": "execution_start", "data": {"prompt_id": job}})
            events.put({"type": "execution_cached", "data": {"prompt_id": job, "nodes": []}})
            for node in prompt:
                events.put({"type": "executing", "data": {"node": node, "prompt_id": job}})
            data = {"node": save, "prompt_id": job, "output": outputs[save]}
            events.put({"type": "executed", "data": data})
            events.put({"type": "execution_success", "data": {"prompt_id": job}})
            events.put({"type": "executing", "data": {"node": None, "prompt_id": job}})
        return {"prompt_id": job, "number": len(self.jobs), "node_errors": {}}

    def paths(self) -> list[str]:
        return [seen.path.split("?")[0] for seen in self.requests]
