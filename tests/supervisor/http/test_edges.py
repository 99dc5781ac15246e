"""The Low list of issue 16, in-process: 499 for clients that leave, Retry-After on every 429,
CORS headers on errors, another owner's stream id is a 404, a locked database is a 503 and
delays analytics rows instead of losing them."""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient

from corral.supervisor.analytics.writer import AnalyticsRow, AnalyticsWriter
from corral.supervisor.app import create_app
from corral.supervisor.appkeys import ANALYTICS, CREDENTIALS, SECURITY, STORE
from corral.supervisor.errors import TooManyRequests
from corral.supervisor.http.errors import error_response
from corral.supervisor.store import Store
from tests.support.inproc import SERVER, eventually, inproc_settings

ClientFactory = Callable[..., Awaitable[TestClient[Any, Any]]]
SLOW = {"model": "fake-slow", "stream": True, "messages": [{"role": "user", "content": "go"}]}


@contextmanager
def locked(path: Path) -> Iterator[None]:
    """Another process's write lock on the database file."""
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")
    try:
        yield
    finally:
        other.execute("ROLLBACK")
        other.close()


async def test_a_client_that_leaves_is_recorded_as_499_and_is_no_error(
    aiohttp_client: ClientFactory, tmp_path: Path
) -> None:
    client = await aiohttp_client(create_app(inproc_settings(tmp_path)), server_kwargs=SERVER)
    response = await client.post("/v1/chat/completions", json=SLOW)
    await response.content.readuntil(b"tok1")
    response.close()  # the tab is closed mid-answer
    writer = client.app[ANALYTICS]
    await eventually(lambda: writer.written >= 1, seconds=30)
    rows = client.app[STORE].db.execute("SELECT path, status FROM analytics").fetchall()
    assert ("/v1/chat/completions", 499) in rows
    metrics = await (await client.get("/metrics")).text()
    assert 'status="499"' in metrics
    assert 'status="500"' not in metrics
    summary = await (await client.get("/admin/analytics/summary")).json()
    assert summary["totals"]["errors"] == 0


def test_every_429_says_when_to_retry() -> None:
    assert error_response(TooManyRequests("slow down")).headers["Retry-After"] == "1"
    given = TooManyRequests("slow down", headers={"Retry-After": "7"})
    assert error_response(given).headers["Retry-After"] == "7"


async def test_error_responses_carry_cors_headers_for_allowed_origins(
    aiohttp_client: ClientFactory, tmp_path: Path
) -> None:
    settings = inproc_settings(tmp_path, cors_origins=["https://app.example.org"])
    client = await aiohttp_client(create_app(settings))
    origin = {"Origin": "https://app.example.org"}
    for response in (
        await client.get("/v1/models/nope", headers=origin),
        await client.post("/v1/chat/completions", json={}, headers=origin),
    ):
        assert response.status in (400, 404)
        assert response.headers["Access-Control-Allow-Origin"] == "https://app.example.org"


async def test_another_owners_stream_id_is_a_404(
    aiohttp_client: ClientFactory, tmp_path: Path
) -> None:
    client = await aiohttp_client(create_app(inproc_settings(tmp_path)), server_kwargs=SERVER)
    first = client.app[CREDENTIALS].create_key("first")
    second = client.app[CREDENTIALS].create_key("second")
    client.app[SECURITY].forget_cache()
    held = {"Authorization": f"Bearer {first}", "X-Conversation-Id": "shared"}
    response = await client.post("/v1/chat/completions", json=SLOW, headers=held)
    assert response.status == 200
    taken = {"Authorization": f"Bearer {second}", "X-Conversation-Id": "shared"}
    response = await client.post("/v1/chat/completions", json=SLOW, headers=taken)
    assert response.status == 404
    await client.delete("/v1/stream/shared", headers={"Authorization": f"Bearer {first}"})


async def test_a_locked_database_is_a_503_for_conversation_writes(
    aiohttp_client: ClientFactory, tmp_path: Path
) -> None:
    settings = inproc_settings(tmp_path)
    client = await aiohttp_client(create_app(settings))
    with locked(settings.resolved_database_path):
        response = await client.post("/api/conversations", json={"id": "c1"})
    assert response.status == 503
    assert response.headers["Retry-After"] == "2"
    assert (await response.json())["error"]["code"] == "database_busy"
    assert (await client.post("/api/conversations", json={"id": "c1"})).status == 201


async def test_analytics_rows_wait_out_a_locked_database(tmp_path: Path) -> None:
    path = tmp_path / "corral.db"
    with Store(path, busy_timeout_s=0.05) as store:
        writer = AnalyticsWriter(store, batch_size=10, flush_interval=0.05)
        row = AnalyticsRow(ts=1.0, method="GET", path="/health", status=200, latency_ms=1.0)
        with locked(path):
            for _ in range(3):
                writer.record(row)
            writer.start()
            await eventually(lambda: writer._busy_retries >= 1)
        await writer.close()
        assert (writer.written, writer.failed) == (3, 0)
