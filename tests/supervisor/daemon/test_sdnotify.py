"""The sd_notify protocol against real AF_UNIX datagram sockets that the tests bind."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from corral.supervisor.daemon.sdnotify import CHILD_ENV_DROP, Notifier, run_watchdog

RECV_TIMEOUT = 5.0


@pytest.fixture(params=["path", "abstract"])
def listener(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    """A bound datagram socket and the NOTIFY_SOCKET value that addresses it."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    if request.param == "path":
        path = str(tmp_path / "notify.sock")
        sock.bind(path)
        env_value = path
    else:
        name = f"corral-test-{uuid.uuid4().hex}"
        sock.bind("\0" + name)
        env_value = "@" + name
    sock.settimeout(RECV_TIMEOUT)
    with sock:
        yield sock, env_value


def recv(sock: socket.socket) -> str:
    return sock.recv(4096).decode()


def test_lifecycle_messages(listener: tuple[socket.socket, str]) -> None:
    sock, address = listener
    notifier = Notifier.from_env({"NOTIFY_SOCKET": address})
    assert notifier.enabled

    assert notifier.ready()
    assert recv(sock) == "READY=1"
    assert notifier.ready("listening on 127.0.0.1:8080")
    assert recv(sock) == "READY=1\nSTATUS=listening on 127.0.0.1:8080"
    assert notifier.status("2 models loaded, 3 requests")
    assert recv(sock) == "STATUS=2 models loaded, 3 requests"
    assert notifier.watchdog()
    assert recv(sock) == "WATCHDOG=1"
    assert notifier.stopping()
    assert recv(sock) == "STOPPING=1"


def test_status_is_one_line(listener: tuple[socket.socket, str]) -> None:
    sock, address = listener
    Notifier.from_env({"NOTIFY_SOCKET": address}).status("loading\nREADY=1")
    assert recv(sock) == "STATUS=loading READY=1"


def test_reloading_carries_monotonic_usec(listener: tuple[socket.socket, str]) -> None:
    sock, address = listener
    notifier = Notifier.from_env({"NOTIFY_SOCKET": address})
    before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    assert notifier.reloading()
    after = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    first, second = recv(sock).split("\n")
    assert first == "RELOADING=1"
    key, _, value = second.partition("=")
    assert key == "MONOTONIC_USEC"
    assert before <= int(value) <= after


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ({"WATCHDOG_USEC": "30000000"}, 15.0),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid())}, 15.0),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid() + 1)}, None),
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "soon"}, None),
        ({}, None),
    ],
)
def test_watchdog_interval(extra: dict[str, str], expected: float | None) -> None:
    notifier = Notifier.from_env({"NOTIFY_SOCKET": "/run/systemd/notify", **extra})
    assert notifier.watchdog_interval() == expected


def test_noop_without_notify_socket(caplog: pytest.LogCaptureFixture) -> None:
    notifier = Notifier.from_env({"WATCHDOG_USEC": "30000000"})
    assert not notifier.enabled
    assert notifier.watchdog_interval() is None
    with caplog.at_level(logging.DEBUG, logger="corral.supervisor.daemon.sdnotify"):
        assert not notifier.ready("x")
        assert not notifier.status("x")
        assert not notifier.reloading()
        assert not notifier.stopping()
        assert not notifier.watchdog()
    assert caplog.records == []


def test_from_env_reads_os_environ_by_default(
    listener: tuple[socket.socket, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    sock, address = listener
    monkeypatch.setenv("NOTIFY_SOCKET", address)
    Notifier.from_env().ready()
    assert recv(sock) == "READY=1"


def test_unsupported_address_disables(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="corral.supervisor.daemon.sdnotify"):
        notifier = Notifier.from_env({"NOTIFY_SOCKET": "vsock:2:1234"})
    assert not notifier.enabled
    assert "unsupported NOTIFY_SOCKET" in caplog.text


def test_send_error_is_logged_not_raised(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    notifier = Notifier.from_env({"NOTIFY_SOCKET": str(tmp_path / "gone.sock")})
    with caplog.at_level(logging.DEBUG, logger="corral.supervisor.daemon.sdnotify"):
        assert not notifier.ready()
        assert not notifier.watchdog()
    levels = [(r.levelno, r.getMessage()) for r in caplog.records]
    assert len(levels) == 2
    assert levels[0][0] == logging.WARNING
    assert "READY=1" in levels[0][1]
    assert levels[1][0] == logging.DEBUG  # repeats are quiet


def test_send_recovers_after_failure(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "late.sock"
    notifier = Notifier.from_env({"NOTIFY_SOCKET": str(path)})
    with caplog.at_level(logging.WARNING, logger="corral.supervisor.daemon.sdnotify"):
        assert not notifier.status("early")
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.bind(str(path))
            sock.settimeout(RECV_TIMEOUT)
            assert notifier.status("late")
            assert recv(sock) == "STATUS=late"
        path.unlink()
        assert not notifier.status("gone again")
    assert [r.levelno for r in caplog.records] == [logging.WARNING, logging.WARNING]


async def test_run_watchdog_pings_from_the_loop(listener: tuple[socket.socket, str]) -> None:
    sock, address = listener
    sock.setblocking(False)
    loop = asyncio.get_running_loop()
    notifier = Notifier.from_env({"NOTIFY_SOCKET": address, "WATCHDOG_USEC": "100000"})
    interval = notifier.watchdog_interval()
    assert interval == 0.05

    started = loop.time()
    task = asyncio.create_task(run_watchdog(notifier, interval))
    try:
        stamps = []
        for _ in range(4):
            data = await asyncio.wait_for(loop.sock_recv(sock, 4096), RECV_TIMEOUT)
            assert data == b"WATCHDOG=1"
            stamps.append(loop.time())
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    # Ping k leaves no earlier than k intervals after the start (sleep never returns early) and
    # arrives after it leaves; 10% slack for clock granularity. No upper bound: CI is shared.
    assert stamps[-1] - started >= 3 * interval * 0.9


async def test_run_watchdog_rejects_bad_interval() -> None:
    with pytest.raises(ValueError, match="positive"):
        await run_watchdog(Notifier(None), 0)


def test_child_env_drop_names_the_notify_variables() -> None:
    assert set(CHILD_ENV_DROP) == {"NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"}
