"""Issue 16: malformed HTTP gets an OpenAI-shaped 400 (431 for headers too large) and one line
at info level, no traceback, from the daemon's own runner (``ServingRunner``) over raw sockets."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from corral.supervisor.app import create_app
from corral.supervisor.http.bad_http import ServingRunner
from tests.support.inproc import inproc_settings
from tests.support.raw_http import raw_request

Address = tuple[str, int]
GUARD = 30.0  # a hang fails the test instead of blocking it; never used to order events


@pytest.fixture
async def daemon(tmp_path: Path) -> AsyncIterator[Address]:
    runner = ServingRunner(
        create_app(inproc_settings(tmp_path)), handler_cancellation=True, access_log=None
    )
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    assert runner.addresses
    host, port = runner.addresses[0][:2]
    yield host, port
    await runner.cleanup()


def _split(response: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = response.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return int(lines[0].split(" ")[1]), {k.lower(): v for k, v in headers.items()}, body


def _openai_error(response: bytes, status: int, code: str) -> str:
    got, headers, body = _split(response)
    assert got == status, response
    assert headers["content-type"].startswith("application/json")
    error = json.loads(body)["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert (error["type"], error["code"]) == ("invalid_request_error", code)
    return str(error["message"])


def _one_quiet_line(caplog: pytest.LogCaptureFixture) -> logging.LogRecord:
    """Every record at most INFO and without a traceback; exactly one says 'malformed'."""
    assert all(r.levelno <= logging.INFO and r.exc_info is None for r in caplog.records)
    malformed = [r for r in caplog.records if "malformed" in r.getMessage()]
    assert len(malformed) == 1, [r.getMessage() for r in caplog.records]
    return malformed[0]


@pytest.mark.parametrize(
    ("head", "fragment"),
    [
        (b"GARBAGE", "Invalid method"),
        (b"GET /health HTTP/9.9\r\nHost: 127.0.0.1", "HTTP version"),
        (b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nBad\x01Header: y", "header"),
        (b"\x16\x03\x01junk", "HTTPS"),
    ],
)
async def test_a_malformed_head_is_an_openai_400_and_one_info_line(
    daemon: Address, caplog: pytest.LogCaptureFixture, head: bytes, fragment: str
) -> None:
    caplog.set_level(logging.INFO)
    status, response = await raw_request(*daemon, head)
    assert fragment in _openai_error(response, 400, "malformed_http")
    assert status == 400
    record = _one_quiet_line(caplog)
    assert record.levelno == logging.INFO
    assert "127.0.0.1" in record.getMessage()


@pytest.mark.parametrize(
    "head",
    [
        b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"a" * 9000,
        b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: 127.0.0.1",
        b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        + b"\r\n".join(b"X-H%d: v" % i for i in range(200)),
    ],
    ids=["header", "request-line", "header-count"],
)
async def test_headers_too_large_are_a_431(
    daemon: Address, caplog: pytest.LogCaptureFixture, head: bytes
) -> None:
    caplog.set_level(logging.INFO)
    _, response = await raw_request(*daemon, head)
    _openai_error(response, 431, "headers_too_large")
    _one_quiet_line(caplog)


async def test_a_bad_chunk_in_the_first_packet_is_a_400(
    daemon: Address, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    head = (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: application/json\r\nTransfer-Encoding: chunked"
    )
    _, response = await raw_request(*daemon, head, b"zz\r\nhello\r\n0\r\n\r\n")
    assert "chunk size" in _openai_error(response, 400, "malformed_http")
    _one_quiet_line(caplog)


async def test_a_bad_chunk_after_the_handler_started_is_a_400_not_a_hang(
    daemon: Address, caplog: pytest.LogCaptureFixture
) -> None:
    """The body arrives after the handler began to read it (``Expect: 100-continue`` orders
    it): aiohttp's parser dropped that body stream silently and the handler waited for ever."""
    caplog.set_level(logging.INFO)
    reader, writer = await asyncio.open_connection(*daemon)
    try:
        writer.write(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n"
            b"Expect: 100-continue\r\n\r\n"
        )
        async with asyncio.timeout(GUARD):
            assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 100")
            writer.write(b"zz\r\nhello\r\n0\r\n\r\n")
            response = await reader.read(-1)  # the server closes: the framing is lost
    finally:
        writer.close()
    assert "chunk size" in _openai_error(response, 400, "malformed_http")
    _one_quiet_line(caplog)


async def test_the_daemon_serves_on_after_malformed_requests(daemon: Address) -> None:
    await raw_request(*daemon, b"GARBAGE")
    status, response = await raw_request(*daemon, b"GET /health HTTP/1.1\r\nHost: 127.0.0.1")
    assert status == 200, response
