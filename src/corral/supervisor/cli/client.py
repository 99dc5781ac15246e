"""The CLI's HTTP client for the running daemon: JSON calls, admin events, chat streams.

The standard library's urllib is enough for a handful of calls, and keeps the CLI's start-up
fast; every failure becomes a ``CliError`` whose message is the server's own.
"""

from __future__ import annotations

import argparse
import json
import os
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any


def daemon_options() -> argparse.ArgumentParser:
    """``--url`` and ``--api-key``, for every command that talks to the running daemon."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--url",
        default=os.environ.get("CORRAL_URL", "http://127.0.0.1:8080"),
        help="the daemon (env CORRAL_URL; default http://127.0.0.1:8080)",
    )
    common.add_argument(
        "--api-key",
        default=os.environ.get("CORRAL_API_KEY"),
        help="a key, sent as a Bearer token (env CORRAL_API_KEY); admin commands need an "
        "admin key once keys exist",
    )
    return common


class CliError(Exception):
    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status  # the HTTP status, when the daemon answered


class Daemon:
    def __init__(self, url: str, api_key: str | None) -> None:
        self.url = url.rstrip("/")
        self._headers = {"Accept": "application/json"}
        if api_key:
            self._headers["Authorization"] = f"Bearer {api_key}"

    def _open(self, method: str, path: str, body: Any = None, timeout: float | None = 60.0) -> Any:
        data = None if body is None else json.dumps(body).encode()
        headers = dict(self._headers)
        if data is not None:
            headers["Content-Type"] = "application/json"
        request = urllib.request.Request(self.url + path, data, headers, method=method)
        try:
            return urllib.request.urlopen(request, timeout=timeout)
        except urllib.error.HTTPError as exc:
            raise CliError(_error_message(exc), exc.code) from None
        except urllib.error.URLError as exc:
            raise CliError(f"cannot reach the daemon at {self.url}: {exc.reason}") from None

    def call(self, method: str, path: str, body: Any = None) -> Any:
        with self._open(method, path, body) as response:
            return json.loads(response.read())

    def events(self) -> Iterator[tuple[str, Any]]:
        """(event, data) from /admin/events; subscribed on return, not on first use."""
        return _read_events(self._open("GET", "/admin/events", timeout=None))

    def stream(self, path: str, body: Any) -> Iterator[tuple[str, Any]]:
        """POST ``body`` and read the SSE answer until ``data: [DONE]``. The request is sent
        and checked (an HTTP error raises) on return; closing the iterator drops the
        connection, which stops the generation in the model process."""
        return _read_events(self._open("POST", path, body, timeout=None))


def _read_events(response: Any) -> Iterator[tuple[str, Any]]:
    with response:
        name, data = "message", ""
        for raw in response:
            line = raw.decode().rstrip("\r\n")
            if line.startswith("event:"):
                name = line[6:].strip()
            elif line.startswith("data:"):
                data += line[5:].strip()
            elif not line and data:
                if data == "[DONE]":
                    return
                yield name, json.loads(data)
                name, data = "message", ""


def _error_message(exc: urllib.error.HTTPError) -> str:
    try:
        return str(json.loads(exc.read())["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return f"HTTP {exc.code} {exc.reason}"
