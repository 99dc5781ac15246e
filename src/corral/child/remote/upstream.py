"""One HTTP call to the upstream, on whichever replica answers: connect failures and 5xx
before the first byte move on to the next replica; a refusal (4xx) is the client's answer.

Once a response has begun, nothing is retried: bytes may have reached the client.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import httpx

from corral.child.remote.replicas import NoReplica, Replica, ReplicaPool
from corral.child.runtime import RequestFailed

log = logging.getLogger("corral.child.remote")

# The client sent something the upstream refuses: its 400 is the client's 400.
_CLIENT_STATUSES = frozenset({400, 404, 413, 422})
# Busy, not broken: try another replica, but do not eject this one.
_BUSY_STATUSES = frozenset({408, 429})


def _upstream_error(response: httpx.Response) -> tuple[str, str | None, str | None]:
    """The message, param and code of an upstream's error body (OpenAI's shape, or text)."""
    try:
        body: Any = json.loads(response.read() or b"null")
    except (json.JSONDecodeError, UnicodeDecodeError):
        return response.text[:500] or response.reason_phrase, None, None
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        code = error.get("code")
        return (
            str(error.get("message") or response.reason_phrase)[:2000],
            error.get("param") if isinstance(error.get("param"), str) else None,
            str(code) if code is not None else None,
        )
    if isinstance(error, str):  # Ollama's and TGI's {"error": "..."}
        return error[:2000], None, None
    return response.reason_phrase, None, None


class Upstream:
    def __init__(self, pool: ReplicaPool, client: httpx.Client) -> None:
        self.pool = pool
        self.client = client

    def open(
        self, path: str, body: dict[str, Any], affinity: str | None, *, stream: bool
    ) -> tuple[Replica, httpx.Response]:
        """The first replica's response that began well (2xx), counted as outstanding on it
        until the caller's `finish`."""
        tried: set[str] = set()
        errors: list[str] = []
        while True:
            try:
                replica = self.pool.acquire(tried, affinity)
            except NoReplica:
                raise RequestFailed(
                    "upstream_unavailable",
                    "no upstream replica answered: " + "; ".join(errors),
                ) from None
            tried.add(replica.url)
            try:
                response = self._send(replica.url + path, body, stream=stream)
            except httpx.TransportError as exc:
                error = f"{replica.name}: {type(exc).__name__}: {exc or 'no answer'}"
                self.pool.failed(replica, error)
                self.pool.release(replica)
                errors.append(error)
                log.warning("upstream %s failed before the first byte: %s", replica.name, exc)
                continue
            status = response.status_code
            if status < 400:
                return replica, response
            message, param, code = _upstream_error(response)
            response.close()
            self.pool.release(replica)
            error = f"{replica.name} answered {status}: {message}"
            if status >= 500 or status in _BUSY_STATUSES:
                if status >= 500:
                    self.pool.failed(replica, error)
                errors.append(error)
                log.warning("upstream %s", error)
                continue
            where = f"the upstream {replica.name} refused the request ({status}"
            where += f", {code})" if code else ")"
            if status in _CLIENT_STATUSES:
                raise RequestFailed("upstream_bad_request", f"{where}: {message}", param)
            raise RequestFailed("upstream_error", f"{where}: {message}", param)

    def _send(self, url: str, body: dict[str, Any], *, stream: bool) -> httpx.Response:
        request = self.client.build_request("POST", url, json=body)
        try:
            return self.client.send(request, stream=stream)
        except (httpx.RemoteProtocolError, httpx.ReadError):
            # A kept-alive connection the upstream had just closed (llama-server's HTTP library
            # drops idle ones after 5 s): the pool has discarded it; one new connection decides.
            return self.client.send(request, stream=stream)

    def finish(self, replica: Replica, response: httpx.Response) -> None:
        response.close()
        self.pool.release(replica)
