"""The HTTP side of one ComfyUI server: requests that name their route when they fail,
never follow a redirect (an auth header must not reach another host), verify TLS, and
stream big downloads to a file."""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from comfytest.errors import ServerError

__all__ = ["PROBE_TIMEOUT", "Http", "json_object"]

#: Seconds for the one reachability check made after a connection failed.
PROBE_TIMEOUT = 3.0


class Http:
    """Requests to the server at ``url``; ``header`` goes with each one, to ``url`` only.

    ``failure(message)`` is what a request that could not reach the server raises (the
    client checks whether the server is gone)."""

    def __init__(
        self,
        url: str,
        *,
        timeout: float,
        header: tuple[str, str] | None,
        ca_bundle: Path | None,
        failure: Callable[[str], ServerError],
    ) -> None:
        self.url = url
        self.timeout = timeout
        self.headers = dict([header]) if header else {}
        self._failure = failure
        #: Whether the server answered anything yet (a lost server once answered).
        self.answered = False
        try:
            self.tls = ssl.create_default_context(cafile=str(ca_bundle) if ca_bundle else None)
        except (OSError, ssl.SSLError) as exc:
            raise ServerError(f"cannot read the CA bundle {ca_bundle}: {exc}", url) from None
        self._client = httpx.Client(
            base_url=url,
            timeout=timeout,
            headers=self.headers,
            verify=self.tls,
            follow_redirects=False,
        )

    def close(self) -> None:
        self._client.close()

    def reachable(self) -> bool:
        """True when the server answers anything at all, within ``PROBE_TIMEOUT``."""
        try:
            self._client.get("/system_stats", timeout=PROBE_TIMEOUT)
        except httpx.HTTPError:
            return False
        self.answered = True
        return True

    def call(
        self, method: str, path: str, *, ok: tuple[int, ...] = (200,), **kwargs: Any
    ) -> httpx.Response:
        try:
            response = self._client.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise self._failure(f"{method} {path} failed: {exc}") from None
        except httpx.HTTPError as exc:
            raise ServerError(f"{method} {path} failed: {exc}", self.url) from None
        self.answered = True
        if response.status_code not in ok:
            raise ServerError(
                f"{method} {path} answered HTTP {response.status_code}{_detail(response)}",
                self.url,
                status=response.status_code,
            )
        return response

    def get_json(self, path: str) -> dict[str, Any]:
        return json_object(self.call("GET", path), self.url)

    def post_quietly(self, path: str, body: dict[str, Any]) -> None:
        """A best-effort POST (interrupting, dequeueing): failures are ignored."""
        with contextlib.suppress(httpx.HTTPError):
            self._client.post(path, json=body)

    def download(self, path: str, params: dict[str, str], to: Path, in_memory: int) -> bytes | Path:
        """The body of GET ``path``: its bytes when at most ``in_memory`` bytes, else
        streamed into the file ``to`` (returned)."""
        try:
            with self._client.stream("GET", path, params=params) as response:
                self.answered = True
                if response.status_code != 200:
                    response.read()
                    raise ServerError(
                        f"GET {path} answered HTTP {response.status_code}{_detail(response)}",
                        self.url,
                        status=response.status_code,
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
                with to.open("wb") as handle:
                    handle.writelines(chunks)
                    for chunk in response.iter_bytes(1 << 20):
                        handle.write(chunk)
                return to
        except httpx.TransportError as exc:
            raise self._failure(f"GET {path} failed: {exc}") from None
        except httpx.HTTPError as exc:
            raise ServerError(f"GET {path} failed: {exc}", self.url) from None


def _detail(response: httpx.Response) -> str:
    """What an unexpected answer said; a redirect is named and never followed."""
    if response.is_redirect:
        return f", a redirect to {response.headers.get('location')!r} (not followed)"
    text = response.text[:500].strip()
    return f": {text}" if text else ""


def json_object(response: httpx.Response, url: str) -> dict[str, Any]:
    try:
        data = response.json()
    except ValueError:
        raise ServerError(f"expected JSON from {response.request.url.path}", url) from None
    if not isinstance(data, dict):
        raise ServerError(f"expected a JSON object from {response.request.url.path}", url)
    return data
