"""The shipped systemd unit and Caddyfiles, checked with the real systemd-analyze and caddy."""

from __future__ import annotations

import asyncio
import fnmatch
import re
import shutil
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from corral.supervisor.settings import Settings, load_settings
from tests.support.caddy import (
    CADDYFILE,
    CADDYFILE_INTERNAL,
    DOMAIN,
    REPO,
    adapt,
    caddy_environment,
    handlers,
    run,
    running_caddy,
    the_handler,
    the_server,
    tool,
)

UNIT = REPO / "systemd" / "corral.service"
GPU_DROPIN = REPO / "systemd" / "gpu.conf"
EXAMPLE_CONFIG = REPO / "systemd" / "corral.toml.example"
SYSTEM_DEPS = REPO / ".ci" / "system-deps.sh"

EXEC_START = "/opt/corral/.venv/bin/corral serve --config /etc/corral/corral.toml"
# Lines systemd-analyze prints about the host's own units (loaded as dependencies), not ours.
HOST_UNIT_DIRS = ("/lib/systemd/", "/usr/lib/systemd/", "/etc/systemd/", "/run/systemd/")
RECV_TIMEOUT = 10.0


# --- systemd -------------------------------------------------------------------------------


def parse_unit(text: str) -> dict[str, dict[str, list[str]]]:
    """Sections -> keys -> every value in order (unit files repeat keys such as Environment=)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        assert current is not None, f"key outside a section: {line!r}"
        key, sep, value = line.partition("=")
        assert sep, f"not a key=value line: {line!r}"
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


def seconds(value: str) -> float:
    units = {"ms": 0.001, "s": 1, "sec": 1, "min": 60, "m": 60, "h": 3600}
    total = 0.0
    for number, unit in re.findall(r"(\d+(?:\.\d+)?)\s*([a-z]*)", value):
        total += float(number) * units[unit or "s"]
    return total


def verifiable_copy(directory: Path, *, exec_start: str = "/bin/true") -> Path:
    """The unit with ExecStart= pointing at a binary that exists here; nothing else changed."""
    text = UNIT.read_text()
    lines = [line for line in text.splitlines() if line.startswith("ExecStart=")]
    assert lines == [f"ExecStart={EXEC_START}"]
    copy = directory / "corral.service"
    copy.write_text(text.replace(lines[0], f"ExecStart={exec_start}"))
    return copy


def verify(unit: Path) -> list[str]:
    """Problems systemd-analyze finds in ``unit`` (and its drop-ins); [] when it is clean."""
    # --recursive-errors=no: a warning about our unit (unknown key, bad value) is a non-zero
    # exit, one about the host's units is not.
    proc = run(tool("systemd-analyze"), "verify", "--recursive-errors=no", "--man=no", str(unit))
    problems = [
        line
        for line in (proc.stdout + proc.stderr).splitlines()
        if line.strip() and not line.startswith(HOST_UNIT_DIRS)
    ]
    if proc.returncode != 0 and not problems:
        problems.append(f"systemd-analyze verify exited {proc.returncode}")
    return problems


def test_unit_verifies(tmp_path: Path) -> None:
    assert verify(verifiable_copy(tmp_path)) == []


def test_unit_verifies_with_gpu_dropin(tmp_path: Path) -> None:
    unit = verifiable_copy(tmp_path)
    dropins = tmp_path / "corral.service.d"
    dropins.mkdir()
    shutil.copy(GPU_DROPIN, dropins / "gpu.conf")
    assert verify(unit) == []


@pytest.mark.parametrize(
    ("where", "line"),
    [("unit", "KillMode=sideways"), ("unit", "Frobnicate=yes"), ("dropin", "DevicePolice=open")],
)
def test_verify_catches_mistakes(tmp_path: Path, where: str, line: str) -> None:
    """The check above can fail: systemd-analyze only warns, and those warnings must count."""
    unit = verifiable_copy(tmp_path)
    if where == "unit":
        unit.write_text(unit.read_text().replace("[Service]\n", f"[Service]\n{line}\n"))
    else:
        (tmp_path / "corral.service.d").mkdir()
        (tmp_path / "corral.service.d" / "gpu.conf").write_text(f"[Service]\n{line}\n")
    assert verify(unit) != []


def test_verify_catches_missing_binary(tmp_path: Path) -> None:
    unit = verifiable_copy(tmp_path, exec_start=str(tmp_path / "no-such-corral"))
    assert any("not executable" in problem for problem in verify(unit))


def test_unit_settings() -> None:
    service = parse_unit(UNIT.read_text())["Service"]

    def one(key: str) -> str:
        values = service.get(key, [])
        assert len(values) == 1, f"{key}= set {len(values)} times"
        return values[0]

    assert one("Type") == "notify"
    assert one("NotifyAccess") == "main"
    assert one("ExecReload") == "/bin/kill -HUP $MAINPID"
    assert one("Restart") == "on-failure"
    assert one("KillMode") == "mixed"
    assert one("StateDirectory") == "corral"
    assert one("ConfigurationDirectory") == "corral"
    assert seconds(one("WatchdogSec")) == 30

    defaults = Settings.model_fields
    drain = defaults["shutdown_grace"].default + defaults["child_stop_timeout"].default
    assert seconds(one("TimeoutStopSec")) > drain

    hardening = {
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "PrivateDevices": "yes",
        "LockPersonality": "yes",
        "RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6",
    }
    for key, value in hardening.items():
        assert one(key) == value, key
    assert "@system-service" in service["SystemCallFilter"]
    # Inherited by the children, whose backends JIT (see the comment in the unit).
    assert "MemoryDenyWriteExecute" not in service
    # A dedicated user, not DynamicUser= (see the comment in the unit).
    assert one("User") == "corral"
    assert "DynamicUser" not in service


def test_gpu_dropin_settings() -> None:
    service = parse_unit(GPU_DROPIN.read_text())["Service"]
    assert service["PrivateDevices"] == ["no"]
    assert service["DevicePolicy"] == ["closed"]
    assert "char-nvidia* rw" in service["DeviceAllow"]


def test_unit_security_exposure(tmp_path: Path) -> None:
    # systemd's own score, 0 (locked down) .. 10 (none); "OK" is below 4.5.
    proc = run(
        tool("systemd-analyze"),
        "security",
        "--offline=yes",
        "--threshold=25",
        "--no-pager",
        str(verifiable_copy(tmp_path)),
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr


def test_example_config_loads() -> None:
    settings = load_settings(EXAMPLE_CONFIG)
    assert (settings.host, settings.port) == ("127.0.0.1", 8080)


# --- caddy ---------------------------------------------------------------------------------


@pytest.fixture
def caddy_env(tmp_path: Path) -> dict[str, str]:
    """Caddy's environment: the domain placeholder set; its data (a local CA) kept in tmp."""
    return caddy_environment(tmp_path)


CADDYFILES = pytest.mark.parametrize(
    "caddyfile", [CADDYFILE, CADDYFILE_INTERNAL], ids=["domain", "internal"]
)


def csp(value: str) -> dict[str, list[str]]:
    directives = (part.split() for part in value.split(";") if part.strip())
    return {name: sources for name, *sources in directives}


@CADDYFILES
def test_caddy_validate(caddyfile: Path, caddy_env: dict[str, str]) -> None:
    proc = run(
        tool("caddy"),
        "validate",
        "--config",
        str(caddyfile),
        "--adapter",
        "caddyfile",
        env=caddy_env,
    )
    assert proc.returncode == 0, proc.stderr
    assert "Valid configuration" in proc.stdout + proc.stderr


@CADDYFILES
def test_caddyfile_is_formatted(caddyfile: Path, caddy_env: dict[str, str]) -> None:
    proc = run(tool("caddy"), "fmt", str(caddyfile), env=caddy_env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == caddyfile.read_text(), f"run `caddy fmt --overwrite {caddyfile}`"


@CADDYFILES
def test_reverse_proxy_streams(caddyfile: Path, caddy_env: dict[str, str]) -> None:
    proxy = the_handler(adapt(caddyfile, caddy_env), "reverse_proxy")
    assert proxy["upstreams"] == [{"dial": "127.0.0.1:8080"}]
    assert proxy["flush_interval"] == -1
    transport = proxy["transport"]
    ten_minutes = 600 * 10**9  # caddy's JSON durations are nanoseconds
    assert transport["read_timeout"] >= ten_minutes
    assert transport["response_header_timeout"] >= ten_minutes
    # Caddy's own X-Forwarded-For is the one Corral trusts; the one header Caddy changes is
    # Host, to the upstream's address, which Corral's DNS-rebinding check answers to (the
    # public name travels in X-Forwarded-Host).
    assert proxy["headers"] == {
        "request": {"set": {"Host": ["{http.reverse_proxy.upstream.hostport}"]}}
    }


@CADDYFILES
def test_encode_never_event_streams(caddyfile: Path, caddy_env: dict[str, str]) -> None:
    encode = the_handler(adapt(caddyfile, caddy_env), "encode")
    assert set(encode["encodings"]) == {"zstd", "gzip"}
    assert set(encode["match"]) == {"headers"}, "only a Content-Type matcher"
    patterns = encode["match"]["headers"]["Content-Type"]

    def compressed(content_type: str) -> bool:
        return any(fnmatch.fnmatchcase(content_type, p) for p in patterns)

    for static in [
        "text/html; charset=utf-8",
        "text/css; charset=utf-8",
        "text/javascript; charset=utf-8",
        "application/javascript",
        "application/json",
        "image/svg+xml",
    ]:
        assert compressed(static), static
    for stream in ["text/event-stream", "text/event-stream; charset=utf-8", "application/x-ndjson"]:
        assert not compressed(stream), stream


@CADDYFILES
def test_security_headers(caddyfile: Path, caddy_env: dict[str, str]) -> None:
    headers = the_handler(adapt(caddyfile, caddy_env), "headers")["response"]
    assert headers["deferred"] is True, "applied over whatever the upstream sent"
    set_ = {name: values[0] for name, values in headers["set"].items()}
    assert set_["X-Content-Type-Options"] == "nosniff"
    assert set_["Referrer-Policy"] in {
        "no-referrer",
        "same-origin",
        "strict-origin-when-cross-origin",
    }

    policy = csp(set_["Content-Security-Policy"])
    assert policy["default-src"] == ["'self'"]
    assert policy["script-src"] == ["'self'"]
    assert policy["style-src"] == ["'self'", "'unsafe-inline'"]
    assert set(policy["img-src"]) == {"'self'", "data:", "blob:"}
    assert policy["connect-src"] == ["'self'"]
    assert policy["object-src"] == ["'none'"]
    assert policy["frame-ancestors"] == ["'none'"]
    sources = [s for values in policy.values() for s in values]
    assert not [s for s in sources if "http" in s or "*" in s], "same origin only, no CDN"

    hsts = set_.get("Strict-Transport-Security")
    if caddyfile == CADDYFILE:
        assert hsts is not None
        max_age = re.fullmatch(r"max-age=(\d+).*", hsts)
        assert max_age is not None
        assert int(max_age.group(1)) >= 180 * 86400
    else:
        assert hsts is None, "no HSTS for localhost / LAN names (see Caddyfile.internal)"


@CADDYFILES
def test_request_body_limit(caddyfile: Path, caddy_env: dict[str, str]) -> None:
    limit = the_handler(adapt(caddyfile, caddy_env), "request_body")["max_size"]
    # At least Corral's own limit, so that Corral answers oversize requests with its own error.
    assert limit >= Settings.model_fields["max_body_bytes"].default


@CADDYFILES
def test_server_timeouts_allow_long_streams(caddyfile: Path, caddy_env: dict[str, str]) -> None:
    server = the_server(adapt(caddyfile, caddy_env))
    assert server.get("write_timeout", 0) == 0, "a write timeout would cut long generations"
    assert server["read_header_timeout"] > 0
    assert "trusted_proxies" not in server, "Caddy must not pass on client X-Forwarded-For"


def test_site_addresses_and_tls(caddy_env: dict[str, str]) -> None:
    domain = the_server(adapt(CADDYFILE, caddy_env))
    assert domain["routes"][0]["match"] == [{"host": [DOMAIN]}]

    internal_config = adapt(CADDYFILE_INTERNAL, caddy_env)
    hosts = the_server(internal_config)["routes"][0]["match"][0]["host"]
    assert set(hosts) == {"localhost", "127.0.0.1", "::1"}
    policies = internal_config["apps"]["tls"]["automation"]["policies"]
    assert [issuer["module"] for p in policies for issuer in p["issuers"]] == ["internal"]


def test_caddyfiles_differ_only_in_site_tls_and_hsts(caddy_env: dict[str, str]) -> None:
    def site_handlers(caddyfile: Path) -> list[dict[str, Any]]:
        found = list(handlers(the_server(adapt(caddyfile, caddy_env))["routes"]))
        for handler in found:
            if handler["handler"] == "headers":
                handler["response"]["set"].pop("Strict-Transport-Security", None)
        return found

    assert site_handlers(CADDYFILE) == site_handlers(CADDYFILE_INTERNAL)


# --- real Caddy in front of a stand-in for Corral -----------------------------------------


# Over 512 bytes, Caddy's minimum_length for compression: a first event this size would be
# compressed (and so buffered) if encode's matcher let event streams through.
FIRST_EVENT = b'data: {"token": "first", "pad": "' + b"x" * 2048 + b'"}\n\n'


class StandIn:
    """Plays Corral behind Caddy: an event stream that holds its last event until released."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.forwarded_for: list[str | None] = []
        self.app = web.Application()
        self.app.router.add_get("/healthz", self.healthz)
        self.app.router.add_get("/", self.page)
        self.app.router.add_post("/v1/chat/completions", self.stream)

    async def healthz(self, request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    async def page(self, request: web.Request) -> web.Response:
        return web.Response(
            text="<!doctype html>" + "<p>corral</p>" * 500, content_type="text/html"
        )

    async def stream(self, request: web.Request) -> web.StreamResponse:
        self.forwarded_for.append(request.headers.get("X-Forwarded-For"))
        content_type = request.query["type"]
        response = web.StreamResponse(headers={"Content-Type": content_type})
        await response.prepare(request)
        await response.write(FIRST_EVENT)
        await asyncio.wait_for(self.release.wait(), RECV_TIMEOUT)
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response


@pytest.fixture
async def behind_caddy(tmp_path: Path) -> AsyncIterator[tuple[StandIn, str, ssl.SSLContext]]:
    """The stand-in on a free port, real Caddy with Caddyfile.internal in front of it: the
    stand-in, Caddy's base URL and a TLS context that trusts Caddy's local CA."""
    stand_in = StandIn()
    runner = web.AppRunner(stand_in.app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    upstream: int = runner.addresses[0][1]
    try:
        # Caddy is ready once a TLS handshake verifies; that needs no upstream, so blocking
        # this event loop (the stand-in's) while Caddy starts is harmless.
        with running_caddy(tmp_path, upstream) as caddy:
            yield stand_in, caddy.base_url, caddy.tls
    finally:
        await runner.cleanup()


# Server-sent events, and the newline-delimited JSON that other API dialects stream.
@pytest.mark.parametrize("content_type", ["text/event-stream", "application/x-ndjson"])
async def test_caddy_streams_tokens_unbuffered(
    behind_caddy: tuple[StandIn, str, ssl.SSLContext], content_type: str
) -> None:
    stand_in, base, tls = behind_caddy
    url = f"{base}/v1/chat/completions?type={content_type}"
    headers = {"Accept-Encoding": "gzip, zstd", "X-Forwarded-For": "203.0.113.9"}
    async with (
        aiohttp.ClientSession(auto_decompress=False) as session,
        session.post(url, json={}, headers=headers, ssl=tls) as response,
    ):
        assert response.status == 200
        assert response.headers["Content-Type"] == content_type
        assert "Content-Encoding" not in response.headers
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        # The stand-in holds the rest of the stream until this first event has arrived: a
        # buffering proxy would time out here.
        first = await asyncio.wait_for(response.content.readuntil(b"\n\n"), RECV_TIMEOUT)
        assert first == FIRST_EVENT
        stand_in.release.set()
        rest = await asyncio.wait_for(response.content.read(), RECV_TIMEOUT)
        assert rest == b"data: [DONE]\n\n"
    # Caddy replaced the client's forged header with the address it saw.
    assert stand_in.forwarded_for == ["127.0.0.1"]


async def test_caddy_compresses_the_web_ui(
    behind_caddy: tuple[StandIn, str, ssl.SSLContext],
) -> None:
    _, base, tls = behind_caddy
    async with (
        aiohttp.ClientSession(auto_decompress=False) as session,
        session.get(f"{base}/", headers={"Accept-Encoding": "gzip"}, ssl=tls) as response,
    ):
        assert response.status == 200
        assert response.headers["Content-Encoding"] == "gzip"
        assert "Content-Security-Policy" in response.headers
        assert "Server" not in response.headers
        await response.read()


# --- .ci/system-deps.sh --------------------------------------------------------------------


def test_system_deps_is_a_quiet_noop_when_satisfied() -> None:
    tool("caddy")
    tool("systemd-analyze")
    proc = run("bash", str(SYSTEM_DEPS))
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "", "")
