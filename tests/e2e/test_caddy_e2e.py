"""Real Caddy (the shipped Caddyfile.internal, `tls internal`) in front of a real supervisor.

HTTPS with certificates from Caddy's own local CA; clients trust exactly that root (taken from
Caddy's data directory under the test's tmp dir), so every request here also checks that the
shipped site serves a valid certificate for 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from corral.supervisor.settings import Settings
from tests.conftest import SupervisorFactory
from tests.support.caddy import Caddy, running_caddy
from tests.support.supervisor_proc import Supervisor

pytestmark = pytest.mark.e2e

# 100 tokens at 20 a second: a generation that lasts about five seconds.
PRESETS = """
[models.fake-5s]
backend = "fake"
args = ["--tokens-per-second", "20", "--reply-tokens", "100"]
"""
REPLY_TOKENS = 100
# Caddy's `encode` leaves responses shorter than this alone (its default minimum_length).
CADDY_MIN_COMPRESS = 512
CHAT = {"model": "fake-5s", "stream": True, "messages": [{"role": "user", "content": "go"}]}

Front = Callable[[Supervisor], Caddy]


@pytest.fixture
def front(tmp_path: Path) -> Iterator[Front]:
    """``front(sup)``: Caddy with the shipped Caddyfile.internal in front of ``sup``."""
    with contextlib.ExitStack() as stack:

        def start(sup: Supervisor) -> Caddy:
            upstream = int(sup.base_url.rsplit(":", 1)[1])
            workdir = tmp_path / "caddy"
            workdir.mkdir()
            return stack.enter_context(running_caddy(workdir, upstream))

        yield start


def https(caddy: Caddy, **kwargs: object) -> httpx.Client:
    return httpx.Client(base_url=caddy.base_url, verify=caddy.tls, timeout=60, **kwargs)  # type: ignore[arg-type]


@dataclass
class Event:
    data: str  # the `data:` payload
    at: float = 0.0  # time.monotonic() when the read that delivered it returned
    had: int = 0  # events the client had once that read returned, this one included


def read_events(response: httpx.Response, stop: Callable[[list[Event]], bool]) -> list[Event]:
    """The response's SSE events as they arrive over the network, until ``stop`` says so."""
    events: list[Event] = []
    buffer = b""
    for chunk in response.iter_bytes():
        buffer += chunk
        *blocks, buffer = buffer.split(b"\n\n")
        new = [
            Event(line.removeprefix("data: "))
            for block in blocks
            for line in block.decode().splitlines()
            if line.startswith("data: ")
        ]
        events += new
        now = time.monotonic()
        for event in new:
            event.at, event.had = now, len(events)
        if stop(events):
            break
    return events


def content_of(event: Event) -> str | None:
    if event.data == "[DONE]":
        return None
    choices = json.loads(event.data).get("choices") or [{}]
    content: str | None = choices[0].get("delta", {}).get("content")
    return content


def tokens_in(body: bytes) -> list[str]:
    events = [
        Event(line.removeprefix("data: "))
        for line in body.decode().splitlines()
        if line.startswith("data: ")
    ]
    return [text.strip() for e in events if (text := content_of(e))]


def test_tokens_stream_through_caddy_unbuffered(
    supervisor: SupervisorFactory, front: Front
) -> None:
    caddy = front(supervisor(PRESETS))
    with (
        https(caddy) as client,
        client.stream(
            "POST",
            "/v1/chat/completions",
            json=CHAT,
            headers={"Accept-Encoding": "gzip, zstd, br"},
        ) as response,
    ):
        assert response.status_code == 200
        assert response.headers["Content-Type"].startswith("text/event-stream")
        assert "Content-Encoding" not in response.headers
        events = read_events(response, lambda seen: seen[-1:] and seen[-1].data == "[DONE]")
    assert events[-1].data == "[DONE]"
    tokens = [e for e in events if content_of(e)]
    assert len(tokens) == REPLY_TOKENS
    first, done = tokens[0], events[-1]
    # When the first token arrived, the client had hardly anything else: Caddy passed it on at
    # once, not in a buffer together with the tokens after it (the whole stream, ~100 events of
    # ~150 bytes, would fit in one of Go's 32 KiB buffers).
    assert first.had <= 5, f"the first token arrived together with {first.had - 1} other events"
    # It arrived while the generation was still running: the rest of the stream came after it,
    # spread out over time as the tokens were generated, not in one burst.
    assert len([e for e in events if e.at > first.at]) >= len(events) - 5
    middle = tokens[len(tokens) // 2]
    assert first.at < middle.at < done.at
    # Tokens come at an even rate: the first half of them took roughly as long as the second.
    first_half, second_half = middle.at - first.at, done.at - middle.at
    assert 1 / 3 < first_half / second_half < 3, (first_half, second_half)


def test_resumable_stream_reattaches_through_caddy(
    supervisor: SupervisorFactory, front: Front
) -> None:
    sup = supervisor(PRESETS)
    caddy = front(sup)
    cid = "caddy-conv-1"
    with https(caddy) as client:
        with client.stream(
            "POST", "/v1/chat/completions", json=CHAT, headers={"X-Conversation-Id": cid}
        ) as response:
            assert response.status_code == 200
            assert response.headers["X-Accel-Buffering"] == "no"
            first = b""
            for chunk in response.iter_raw():
                first += chunk
                if first.count(b"\n\n") >= 3:
                    break
        # The client dropped mid-answer and Caddy closed its upstream request; the generation
        # goes on (the whole answer below proves it: a plain request would be cancelled).
        lookup = client.post("/v1/streams/lookup", json={"conversation_ids": [cid]})
        assert lookup.status_code == 200
        assert lookup.json()["data"][0]["state"] in {"running", "done"}
        with client.stream("GET", f"/v1/stream/{cid}", params={"from": len(first)}) as rest:
            assert rest.status_code == 200
            assert rest.headers["Content-Type"].startswith("text/event-stream")
            tail = rest.read()
        # A replay's first write is the whole ring, far over Caddy's 512-byte minimum: were event
        # streams among the types `encode` compresses, this one would come back compressed.
        whole = client.get(f"/v1/stream/{cid}?from=0", headers={"Accept-Encoding": "gzip, zstd"})
        assert whole.status_code == 200
        assert whole.headers["Content-Type"].startswith("text/event-stream")
        assert "Content-Encoding" not in whole.headers
    assert first + tail == whole.content
    assert whole.content.endswith(b"data: [DONE]\n\n")
    assert tokens_in(whole.content) == [f"tok{i}" for i in range(REPLY_TOKENS)]


SECURITY_HEADERS = ("Content-Security-Policy", "X-Content-Type-Options", "Referrer-Policy")


def test_web_ui_through_caddy_has_security_headers_and_compression(
    supervisor: SupervisorFactory, front: Front
) -> None:
    caddy = front(supervisor(PRESETS))
    with https(caddy) as client:
        page = client.get("/", headers={"Accept-Encoding": "gzip"})
        models = client.get("/v1/models", headers={"Accept-Encoding": "gzip"})
    for response in (page, models):
        assert response.status_code == 200
        for name in SECURITY_HEADERS:
            assert name in response.headers, f"{name} missing on {response.url.path}"
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert "Server" not in response.headers
    assert page.headers["Content-Type"].startswith("text/html")
    assert "default-src 'self'" in page.headers["Content-Security-Policy"]
    # httpx has decoded the bodies (a bad gzip stream would have raised); Caddy compresses the
    # web UI and JSON when they reach its minimum length.
    for response in (page, models):
        big = len(response.content) >= CADDY_MIN_COMPRESS
        encoding = response.headers.get("Content-Encoding")
        assert encoding == ("gzip" if big else None), (response.url.path, len(response.content))
    # The built web UI's index is over the minimum (a fresh clone serves a shorter placeholder
    # page); the models list always is, so compression through Caddy is always exercised.
    assert models.headers["Content-Encoding"] == "gzip"


ANALYTICS = "/admin/analytics/summary"


def test_recorded_client_address_is_the_real_one(
    supervisor: SupervisorFactory, front: Front
) -> None:
    """Caddy (peer 127.0.0.1, the only trusted proxy) passes on the address it saw, 127.0.0.2;
    the X-Forwarded-For the client forged does not get through."""
    if "trusted_proxies" not in Settings.model_fields:
        pytest.fail("Settings has no `trusted_proxies`: the analytics are not wired yet")
    sup = supervisor('trusted_proxies = ["127.0.0.1/32"]\n' + PRESETS)
    caddy = front(sup)
    forged = "203.0.113.9"
    with sup.http() as direct:
        probe = direct.get(ANALYTICS, params={"limit": 10})
        assert probe.status_code == 200, (
            f"GET {ANALYTICS} answered {probe.status_code}: the analytics endpoint is missing"
        )
    transport = httpx.HTTPTransport(local_address="127.0.0.2", verify=caddy.tls)
    with https(caddy, transport=transport) as client:
        response = client.get("/v1/models", headers={"X-Forwarded-For": forged})
        assert response.status_code == 200

    # A background task writes the rows in batches: poll until this one is in. Polls may be
    # recorded too, so poll gently and look further back than they can reach.
    items: list[dict[str, object]] = []
    deadline = time.monotonic() + 30
    with sup.http() as direct:
        while not [i for i in items if i["path"] == "/v1/models"]:
            assert time.monotonic() < deadline, f"no row for /v1/models in {items}"
            time.sleep(0.2)  # a polling interval, not an ordering
            response = direct.get(ANALYTICS, params={"limit": 100})
            assert response.status_code == 200, response.text
            items = response.json()["events"]["items"]
    rows = [i for i in items if i["path"] == "/v1/models"]
    assert [row["client_ip"] for row in rows] == ["127.0.0.2"]
    assert forged not in {i["client_ip"] for i in items}


def test_browser_origin_passes_through_caddy_and_foreign_ones_do_not(
    supervisor: SupervisorFactory, front: Front
) -> None:
    # Caddy sends Host 127.0.0.1:PORT and the public name in X-Forwarded-Host: the page's own
    # origin (the web UI's) is admitted, another site's is refused.
    caddy = front(supervisor(PRESETS))
    body = {**CHAT, "stream": False, "max_tokens": 2}
    with https(caddy) as client:
        own = client.post("/v1/chat/completions", json=body, headers={"Origin": caddy.base_url})
        assert own.status_code == 200, own.text
        evil = client.post(
            "/v1/chat/completions", json=body, headers={"Origin": "https://evil.example"}
        )
        assert evil.status_code == 403
        assert evil.json()["error"]["code"] == "origin_not_allowed"
