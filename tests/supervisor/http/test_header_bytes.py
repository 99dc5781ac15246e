"""High 2: a header byte that is not UTF-8 is text at the edge; one bad analytics row costs
no other, and the loss is counted in /metrics."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from corral.supervisor.analytics.writer import AnalyticsRow, AnalyticsWriter
from corral.supervisor.app import create_app
from corral.supervisor.appkeys import ANALYTICS
from corral.supervisor.settings import ApiKeyConfig
from corral.supervisor.store import Store
from tests.support.inproc import eventually, inproc_settings
from tests.support.raw_http import raw_request

ClientFactory = Callable[[web.Application], Awaitable[TestClient[Any, Any]]]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store(tmp_path / "corral.db") as s:
        yield s


def row(**fields: Any) -> AnalyticsRow:
    values: dict[str, Any] = {"ts": 1.0, "method": "GET", "path": "/health", "status": 200}
    return AnalyticsRow(**{"latency_ms": 1.0, **values, **fields})


async def test_a_row_the_database_refuses_costs_no_other_row(store: Store) -> None:
    writer = AnalyticsWriter(store, batch_size=200, flush_interval=30.0)
    for i in range(200):
        # A value SQLite cannot bind stands for any row it refuses.
        writer.record(row(path=f"/r{i}", model=object() if i == 57 else "m"))
    await writer.close()
    assert (writer.written, writer.failed) == (199, 1)
    assert store.db.execute("SELECT COUNT(*) FROM analytics").fetchone()[0] == 199


async def test_a_lone_surrogate_is_stored_as_a_replacement_character(store: Store) -> None:
    writer = AnalyticsWriter(store, batch_size=10, flush_interval=30.0)
    writer.record(row(user_agent="evil\udcff"))
    writer.record(row(user_agent="fine"))
    await writer.close()
    agents = [r[0] for r in store.db.execute("SELECT user_agent FROM analytics ORDER BY id")]
    assert agents == ["evil\ufffd", "fine"]
    assert writer.failed == 0


async def test_a_non_utf8_user_agent_is_recorded_and_nothing_is_lost(
    aiohttp_client: ClientFactory, tmp_path: Path
) -> None:
    client = await aiohttp_client(create_app(inproc_settings(tmp_path)))
    host, port = client.server.host, client.server.port
    assert port is not None
    for agent in (b"evil\xff", b"fine"):
        status, _ = await raw_request(
            host, port, b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: " + agent
        )
        assert status == 200
    writer = client.app[ANALYTICS]
    await eventually(lambda: writer.written + writer.failed >= 2)
    assert (writer.written, writer.failed) == (2, 0)
    metrics = await (await client.get("/metrics")).text()
    assert "corral_analytics_rows_failed_total 0.0" in metrics
    assert "corral_analytics_rows_dropped_total 0.0" in metrics


async def test_a_non_utf8_bearer_is_a_401_not_a_500(
    aiohttp_client: ClientFactory, tmp_path: Path
) -> None:
    key = ApiKeyConfig(name="app", key="sk-0123456789abcdef0123")  # type: ignore[arg-type]
    client = await aiohttp_client(create_app(inproc_settings(tmp_path, api_keys=[key])))
    host, port = client.server.host, client.server.port
    assert port is not None
    for name in (b"Authorization: Bearer \xff", b"x-api-key: \xfe\xff"):
        status, response = await raw_request(
            host, port, b"GET /v1/models HTTP/1.1\r\nHost: 127.0.0.1\r\n" + name
        )
        assert status == 401, response
        assert b'"invalid_api_key"' in response
