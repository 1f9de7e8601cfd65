"""The HTTP side of one ComfyUI server: requests that name their route when they fail,
follow no redirect (an auth header must not reach another host) but Comfy Cloud's one from
``/api/view`` to a signed URL, fetched without any header; retry HTTP 429 and 503 within a
budget; verify TLS; and stream big downloads to a file."""

from __future__ import annotations

import contextlib
import ssl
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from comfytest.comfy.api import Api
from comfytest.errors import ServerBusy, ServerError

__all__ = ["BUSY", "PROBE_TIMEOUT", "RETRY_BUDGET", "Http", "json_object"]

#: Seconds for the one reachability check made after a connection failed.
PROBE_TIMEOUT = 3.0
#: Answers that mean "not now": too many requests (a full queue) and service unavailable.
BUSY = (429, 503)
#: Seconds one request keeps retrying a busy answer before it is an infrastructure error.
RETRY_BUDGET = 60.0
#: The longest single wait between two tries (a longer Retry-After is cut to it).
MAX_BACKOFF = 10.0


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
        api: Api | None = None,
        retry_budget: float = RETRY_BUDGET,
    ) -> None:
        self.url = url
        self.timeout = timeout
        self.api = api or Api()
        self.headers = {**(dict([header]) if header else {}), **self.api.headers}
        self.retry_budget = retry_budget
        self._failure = failure
        #: For the signed URL a Cloud /view redirects to: no header, no cookie, no redirect.
        self._plain: httpx.Client | None = None
        #: Whether the server answered anything yet (a lost server once answered).
        self.answered = False
        #: The TLS context of an https server; None for plain http, whose requests never
        #: use TLS (loading the system's certificates costs about 50 ms of set-up).
        self.tls: ssl.SSLContext | None = None
        if url.startswith("https://"):
            try:
                cafile = str(ca_bundle) if ca_bundle else None
                self.tls = ssl.create_default_context(cafile=cafile)
            except (OSError, ssl.SSLError) as exc:
                raise ServerError(f"cannot read the CA bundle {ca_bundle}: {exc}", url) from None
        self._client = httpx.Client(
            base_url=url,
            timeout=timeout,
            headers=self.headers,
            verify=self.tls or False,  # False: plain http, no certificate to check
            follow_redirects=False,
        )

    def close(self) -> None:
        self._client.close()
        if self._plain is not None:
            self._plain.close()

    def reachable(self) -> bool:
        """True when the server answers anything at all, within ``PROBE_TIMEOUT``."""
        try:
            self._client.get(self.api.route("/system_stats"), timeout=PROBE_TIMEOUT)
        except httpx.HTTPError:
            return False
        self.answered = True
        return True

    def call(
        self, method: str, path: str, *, ok: tuple[int, ...] = (200,), **kwargs: Any
    ) -> httpx.Response:
        route = self.api.route(path)
        try:
            response = self._send(method, path, stream=False, **kwargs)
        except httpx.TransportError as exc:
            raise self._failure(self.api.redact(f"{method} {route} failed: {exc}")) from None
        except httpx.HTTPError as exc:
            message = self.api.redact(f"{method} {route} failed: {exc}")
            raise ServerError(message, self.url) from None
        self.answered = True
        if response.status_code not in ok:
            raise ServerError(
                f"{method} {route} answered HTTP {response.status_code}{_detail(response)}",
                self.url,
                status=response.status_code,
            )
        return response

    def _send(self, method: str, path: str, *, stream: bool, **kwargs: Any) -> httpx.Response:
        """One request to ``path`` (routed for the server's API), retried while the server
        answers busy (``BUSY``) within ``retry_budget`` seconds, honouring Retry-After; then
        ``ServerBusy``. On Comfy Cloud a redirect from ``/view`` is followed, once, without
        any header (``_signed``)."""
        route = self.api.route(path)
        started, tries = time.monotonic(), 0
        while True:
            request = self._client.build_request(method, route, **kwargs)
            response = self._client.send(request, stream=stream)
            if response.status_code in BUSY:
                tries += 1
                wait = _retry_after(response, tries)
                spent = time.monotonic() - started
                if spent + wait > self.retry_budget:
                    response.read()
                    raise ServerBusy(
                        f"{method} {route} answered HTTP {response.status_code}"
                        f"{_detail(response)}; still busy after {tries} tries in {spent:.0f} s "
                        f"(retry budget {self.retry_budget:g} s): the server is overloaded or "
                        "its queue is full; run again later, or with fewer workers",
                        self.url,
                    )
                response.close()
                time.sleep(wait)
                continue
            if response.is_redirect and self.api.cloud and path == "/view" and method == "GET":
                response.close()
                return self._signed(response, stream)
            return response

    def _signed(self, redirect: httpx.Response, stream: bool) -> httpx.Response:
        """The file behind Cloud's ``/api/view`` redirect: fetched from the signed URL with
        no header and no cookie (the key stays with the server), following nothing more."""
        target = redirect.request.url.join(redirect.headers.get("location", ""))
        shown = f"{target.scheme}://{target.netloc.decode()}{target.path}"  # no signature
        if target.scheme != "https" and not (
            target.scheme == "http" and self.url.startswith("http://")
        ):
            raise ServerError(f"GET /api/view redirected to {shown!r}: not https, not followed")
        if self._plain is None:
            self._plain = httpx.Client(timeout=self.timeout, follow_redirects=False)
        response = self._plain.send(self._plain.build_request("GET", target), stream=stream)
        self._plain.cookies.clear()
        if response.is_redirect:
            response.close()
            raise ServerError(
                f"the signed URL {shown!r} of GET /api/view redirected again (not followed)",
                self.url,
                status=response.status_code,
            )
        return response

    def get_json(self, path: str) -> dict[str, Any]:
        return json_object(self.call("GET", path), self.url)

    def post_quietly(self, path: str, body: dict[str, Any]) -> None:
        """A best-effort POST (interrupting, dequeueing): failures are ignored."""
        with contextlib.suppress(httpx.HTTPError):
            self._client.post(self.api.route(path), json=body)

    def download(self, path: str, params: dict[str, str], to: Path, in_memory: int) -> bytes | Path:
        """The body of GET ``path``: its bytes when at most ``in_memory`` bytes, else
        streamed into the file ``to`` (returned)."""
        route = self.api.route(path)
        try:
            response = self._send("GET", path, stream=True, params=params)
            with contextlib.closing(response):
                self.answered = True
                if response.status_code != 200:
                    response.read()
                    raise ServerError(
                        f"GET {route} answered HTTP {response.status_code}{_detail(response)}",
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
            raise self._failure(f"GET {route} failed: {exc}") from None
        except httpx.HTTPError as exc:
            raise ServerError(f"GET {route} failed: {exc}", self.url) from None


def _retry_after(response: httpx.Response, tries: int) -> float:
    """Seconds to wait before try ``tries + 1``: the server's Retry-After (in seconds) when
    it gives one, else 0.5 s doubling; never more than ``MAX_BACKOFF``."""
    given = response.headers.get("retry-after", "")
    try:
        wait = float(given)
    except ValueError:
        wait = 0.5 * 2 ** (tries - 1)
    return min(max(wait, 0.0), MAX_BACKOFF)


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
