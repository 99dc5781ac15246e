"""Low: connection hygiene of the real daemon. Half-sent requests and idle keep-alive
connections are closed after ``http_idle_timeout``; malformed HTTP is one log line."""

from __future__ import annotations

import socket

import pytest

from tests.conftest import SupervisorFactory

pytestmark = pytest.mark.e2e


def connect(base_url: str) -> socket.socket:
    host, port = base_url.removeprefix("http://").rsplit(":", 1)
    sock = socket.create_connection((host, int(port)), timeout=30)
    return sock


def closed_by_server(sock: socket.socket) -> bool:
    """Read until the server closes; the 30 s socket timeout fails the test otherwise."""
    while True:
        chunk = sock.recv(4096)
        if not chunk:
            return True


def test_half_sent_headers_and_idle_connections_are_closed(supervisor: SupervisorFactory) -> None:
    sup = supervisor("http_idle_timeout = 1\n")
    with connect(sup.base_url) as half:
        half.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")  # and nothing more
        assert closed_by_server(half)
    with connect(sup.base_url) as idle:
        idle.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert idle.recv(4096).startswith(b"HTTP/1.1 200")
        assert closed_by_server(idle)  # kept alive, then closed once idle


def test_malformed_http_is_a_400_and_one_log_line(supervisor: SupervisorFactory) -> None:
    sup = supervisor()
    for garbage in (
        b"GET /health HTTP/1.1\r\nHost: x\r\nBad\x01Header: y\r\n\r\n",
        b"\x16\x03\x01junk\r\n\r\n",
    ):
        with connect(sup.base_url) as sock:
            sock.sendall(garbage)
            assert sock.recv(4096).split(b" ", 2)[1] == b"400"
    with connect(sup.base_url) as sock:  # the daemon is fine
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        assert sock.recv(4096).startswith(b"HTTP/1.1 200")
    log = sup.log_text()
    assert "Traceback" not in log
    assert "level=error" not in log
    assert "malformed HTTP request" in log
