"""Real Caddy for the tests: the shipped Caddyfiles adapted to JSON, and Caddy run on loopback.

Caddy listens on port 0 and the test reads the port it got from ``/proc`` (the one TCP socket
in LISTEN state that the Caddy process holds), so no test races another program for a port.
Its local CA lives in the test's tmp dir (``XDG_DATA_HOME``); clients trust exactly that root.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import ssl
import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support.supervisor_proc import wait_until

REPO = Path(__file__).resolve().parents[2]
CADDYFILE = REPO / "caddy" / "Caddyfile"
CADDYFILE_INTERNAL = REPO / "caddy" / "Caddyfile.internal"
CADDYFILE_FLEET = REPO / "caddy" / "Caddyfile.fleet"
DOMAIN = "corral.example.test"
TOOL_TIMEOUT = 60


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(
            f"{name} is not installed: run `bash .ci/system-deps.sh` as root "
            "(it installs Debian's caddy and systemd packages)",
            pytrace=False,
        )
    return path


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args,
        capture_output=True,
        text=True,
        timeout=TOOL_TIMEOUT,
        env=env,
        stdin=subprocess.DEVNULL,
        check=False,
    )


def caddy_environment(home: Path) -> dict[str, str]:
    """Caddy's environment: the domain placeholder set; its data (a local CA) under ``home``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CORRAL_")}
    env.update(
        HOME=str(home),
        XDG_DATA_HOME=str(home / "data"),
        XDG_CONFIG_HOME=str(home / "config"),
        CORRAL_DOMAIN=DOMAIN,
    )
    return env


def root_certificate(env: dict[str, str]) -> Path:
    """Where Caddy keeps the root of its local CA (``tls internal``) for this environment."""
    return Path(env["XDG_DATA_HOME"]) / "caddy" / "pki" / "authorities" / "local" / "root.crt"


def adapt(caddyfile: Path, env: dict[str, str]) -> dict[str, Any]:
    proc = run(
        tool("caddy"), "adapt", "--config", str(caddyfile), "--adapter", "caddyfile", env=env
    )
    assert proc.returncode == 0, proc.stderr
    config: dict[str, Any] = json.loads(proc.stdout)
    return config


def handlers(node: Any) -> Iterator[dict[str, Any]]:
    """Every handler object anywhere in an adapted config."""
    if isinstance(node, dict):
        if "handler" in node:
            yield node
        for value in node.values():
            yield from handlers(value)
    elif isinstance(node, list):
        for item in node:
            yield from handlers(item)


def the_handler(config: dict[str, Any], name: str) -> dict[str, Any]:
    found = [h for h in handlers(config) if h["handler"] == name]
    assert len(found) == 1, f"expected one {name} handler, found {len(found)}"
    return found[0]


def the_server(config: dict[str, Any]) -> dict[str, Any]:
    servers = config["apps"]["http"]["servers"]
    assert len(servers) == 1
    server: dict[str, Any] = next(iter(servers.values()))
    return server


def runnable_config(caddyfile: Path, env: dict[str, str], upstream: int | Sequence[int]) -> str:
    """The shipped Caddyfile as JSON, moved onto loopback port 0 with no side effects: no admin
    endpoint, no :80 redirect server, no CA installed into the system trust store. Only the
    listener, the upstream port and those side effects change; every handler stays as shipped."""
    config = adapt(caddyfile, env)
    config["admin"] = {"disabled": True}
    server = the_server(config)
    server["listen"] = ["127.0.0.1:0"]
    # TLS on a listener that is not the HTTPS port (443) has to be asked for; the certificates
    # still come from the shipped `tls` settings (the local CA for Caddyfile.internal).
    server["tls_connection_policies"] = [{}]
    server["automatic_https"] = {"disable_redirects": True}
    ports = [upstream] if isinstance(upstream, int) else list(upstream)
    the_handler(config, "reverse_proxy")["upstreams"] = [{"dial": f"127.0.0.1:{p}"} for p in ports]
    config["apps"]["pki"] = {"certificate_authorities": {"local": {"install_trust": False}}}
    return json.dumps(config)


def listening_tcp_ports(pid: int) -> list[int]:
    """Ports of the TCP sockets in LISTEN state that process ``pid`` holds."""
    inodes = set()
    with contextlib.suppress(FileNotFoundError):
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(FileNotFoundError):
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
    ports = []
    for table in ("tcp", "tcp6"):
        with contextlib.suppress(FileNotFoundError), open(f"/proc/{pid}/net/{table}") as f:
            next(f)  # header
            for line in f:
                fields = line.split()
                local, state, inode = fields[1], fields[3], fields[9]
                if state == "0A" and inode in inodes:  # 0A: TCP_LISTEN
                    ports.append(int(local.rsplit(":", 1)[1], 16))
    return ports


@dataclass
class Caddy:
    """A running Caddy: its process, the HTTPS base URL and a TLS context for its local CA."""

    proc: subprocess.Popen[bytes]
    log: Path
    base_url: str
    tls: ssl.SSLContext

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]


@contextlib.contextmanager
def running_caddy(
    workdir: Path,
    upstream: int | Sequence[int],
    *,
    caddyfile: Path = CADDYFILE_INTERNAL,
    timeout: float = 30.0,
) -> Iterator[Caddy]:
    """Caddy with ``caddyfile`` in front of ``127.0.0.1:upstream`` until the block ends (of each
    port in turn for several upstreams, which replace the shipped Caddyfile's nodes).

    Ready means a TLS handshake that verifies against Caddy's own root succeeds, which needs
    no upstream: usable from an async fixture whose event loop serves the upstream."""
    env = caddy_environment(workdir)
    config = workdir / "caddy.json"
    config.write_text(runnable_config(caddyfile, env, upstream))
    log = workdir / "caddy.log"
    with log.open("wb") as log_file:
        proc = subprocess.Popen(
            [tool("caddy"), "run", "--config", str(config)],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    try:
        ports: list[int] = []

        def listening() -> bool:
            if proc.poll() is not None:
                raise AssertionError(f"caddy exited: {log.read_text()[-3000:]}")
            ports[:] = listening_tcp_ports(proc.pid)
            return bool(ports)

        wait_until(listening, timeout, "caddy to listen")
        assert len(ports) == 1, f"caddy listens on {ports}; expected one port"
        port = ports[0]
        root = root_certificate(env)
        contexts: list[ssl.SSLContext] = []

        def handshakes() -> bool:
            if proc.poll() is not None:
                raise AssertionError(f"caddy exited: {log.read_text()[-3000:]}")
            # Caddy creates its CA, then the certificates, then completes handshakes. Checked as
            # the clients connect: to 127.0.0.1, verified against that address, without SNI.
            with contextlib.suppress(OSError):  # ssl.SSLError and FileNotFoundError too
                tls = ssl.create_default_context(cafile=str(root))
                with (
                    socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
                    tls.wrap_socket(raw, server_hostname="127.0.0.1"),
                ):
                    contexts.append(tls)
                    return True
            return False

        try:
            wait_until(handshakes, timeout, "caddy to serve TLS")
        except TimeoutError as exc:
            raise AssertionError(f"{exc}; caddy's log:\n{log.read_text()[-3000:]}") from None
        yield Caddy(proc, log, f"https://127.0.0.1:{port}", contexts[0])
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
