"""systemd's notify protocol and reload, against a real supervisor and a real datagram socket."""

from __future__ import annotations

import itertools
import re
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import SupervisorFactory
from tests.support.supervisor_proc import wait_until

pytestmark = pytest.mark.e2e


class NotifySocket:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(30)

    def next(self) -> tuple[float, str]:
        data = self.sock.recv(4096)
        return time.monotonic(), data.decode()

    def until(self, prefix: str) -> list[str]:
        seen = []
        while True:
            _, message = self.next()
            seen.append(message)
            if any(line.startswith(prefix) for line in message.splitlines()):
                return seen


@pytest.fixture
def notify(tmp_path: Path) -> Iterator[NotifySocket]:
    # AF_UNIX paths are limited to ~108 bytes; pytest's tmp paths can be long.
    short = Path("/tmp") / f"corral-notify-{tmp_path.name[-20:]}-{time.monotonic_ns()}"
    sock = NotifySocket(short)
    yield sock
    sock.sock.close()
    short.unlink(missing_ok=True)


def test_ready_watchdog_and_stopping(supervisor: SupervisorFactory, notify: NotifySocket) -> None:
    sup = supervisor(env={"NOTIFY_SOCKET": str(notify.path), "WATCHDOG_USEC": "200000"})
    messages = notify.until("READY=1")
    ready = messages[-1]
    port = int(re.search(r"STATUS=listening on [\d.]+:(\d+)", ready).group(1))  # type: ignore[union-attr]
    # READY means the port already accepts connections.
    with socket.create_connection(("127.0.0.1", port), timeout=5):
        pass
    pings = []
    while len(pings) < 5:
        at, message = notify.next()
        if message == "WATCHDOG=1":
            pings.append(at)
    gaps = [b - a for a, b in itertools.pairwise(pings)]
    # Half of WATCHDOG_USEC (0.1 s); generous bounds for a loaded 2-core machine.
    assert 0.05 < sum(gaps) / len(gaps) < 0.2
    assert sup.proc is not None
    sup.proc.send_signal(signal.SIGTERM)
    notify.until("STOPPING=1")
    assert sup.terminate() == 0


def test_status_lines_report_loaded_models(
    supervisor: SupervisorFactory, notify: NotifySocket
) -> None:
    sup = supervisor(env={"NOTIFY_SOCKET": str(notify.path)})
    notify.until("READY=1")
    with sup.http() as http:
        assert (
            http.post(
                "/v1/chat/completions",
                json={"model": "fake", "messages": [{"role": "user", "content": "x"}]},
            ).status_code
            == 200
        )
    messages = notify.until("STATUS=1 models loaded")
    assert "requests in flight" in messages[-1]


def test_sighup_reloads_presets_without_dropping_loaded_models(
    supervisor: SupervisorFactory, notify: NotifySocket
) -> None:
    sup = supervisor(env={"NOTIFY_SOCKET": str(notify.path)})
    notify.until("READY=1")
    assert sup.config is not None
    with sup.http() as http:
        body = {"model": "fake", "messages": [{"role": "user", "content": "x"}]}
        assert http.post("/v1/chat/completions", json=body).status_code == 200
        assert http.post("/v1/chat/completions", json={**body, "model": "added"}).status_code == 404
        sup.config.write_text(
            sup.config.read_text()
            + '\n[models.added]\nbackend = "fake"\nargs = ["--reply-tokens", "2"]\n'
        )
        assert sup.proc is not None
        sup.proc.send_signal(signal.SIGHUP)
        notify.until("RELOADING=1")
        notify.until("READY=1")
        reply = http.post("/v1/chat/completions", json={**body, "model": "added"})
        assert reply.status_code == 200
        assert reply.json()["choices"][0]["message"]["content"] == "tok0 tok1"
        # The untouched model stayed loaded through the reload.
        assert http.get("/v1/models/fake").json()["state"] == "loaded"
        assert sup.log_text().count("loading fake\n") + sup.log_text().count("loading fake'") == 1

        # A broken edit keeps the old settings and the daemon up.
        sup.config.write_text("this is = not toml [")
        sup.proc.send_signal(signal.SIGHUP)
        sup.wait_for_log("reload failed, keeping the old settings")
        assert http.get("/health").status_code == 200


def test_no_notify_socket_is_a_no_op(supervisor: SupervisorFactory) -> None:
    sup = supervisor()
    wait_until(lambda: httpx.get(sup.base_url + "/health").status_code == 200, 10, "health")


def test_sighup_picks_up_a_new_api_key(supervisor: SupervisorFactory, notify: NotifySocket) -> None:
    first, second = "first-key-0123456789abcdef", "second-key-0123456789abcdef"
    keys = '[[api_keys]]\nname = "a"\nkey = "{}"\n'
    sup = supervisor(keys.format(first), env={"NOTIFY_SOCKET": str(notify.path)})
    notify.until("READY=1")
    assert sup.config is not None
    with sup.http() as http:
        assert (
            http.get("/v1/models", headers={"Authorization": f"Bearer {second}"}).status_code == 401
        )
        sup.config.write_text(sup.config.read_text().replace(first, second))
        assert sup.proc is not None
        sup.proc.send_signal(signal.SIGHUP)
        notify.until("RELOADING=1")
        notify.until("READY=1")
        assert (
            http.get("/v1/models", headers={"Authorization": f"Bearer {second}"}).status_code == 200
        )
        assert (
            http.get("/v1/models", headers={"Authorization": f"Bearer {first}"}).status_code == 401
        )
