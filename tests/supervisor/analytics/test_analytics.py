"""Analytics: the batching writer on a real SQLite file, summary filters, CSV export, retention."""

from __future__ import annotations

import asyncio
import csv
import io
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from corral.supervisor.analytics.geoip import GeoIP
from corral.supervisor.analytics.queries import (
    EXPORT_COLUMNS,
    AnalyticsFilters,
    AnalyticsQueries,
    bucket_step,
    page_from_params,
)
from corral.supervisor.analytics.user_agents import UserAgentParser
from corral.supervisor.analytics.writer import AnalyticsRow, AnalyticsWriter, make_enricher
from corral.supervisor.store import Store
from tests.support_mmdb import build_country_mmdb

NOW = 1_700_000_000.0
FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store(tmp_path / "corral.db") as s:
        yield s


@pytest.fixture
def queries(store: Store) -> AnalyticsQueries:
    return AnalyticsQueries(store, clock=lambda: NOW)


def row(**fields: Any) -> AnalyticsRow:
    base: dict[str, Any] = {
        "ts": NOW - 60,
        "method": "POST",
        "path": "/v1/chat/completions",
        "status": 200,
        "latency_ms": 100.0,
        "principal": "alice",
        "route_group": "openai",
        "action": "chat.completions",
        "client_ip": "81.2.69.160",
        "model": "qwen",
    }
    base.update(fields)
    return AnalyticsRow(**base)


def insert(store: Store, rows: list[AnalyticsRow]) -> None:
    store.db.table("analytics").insert_all([r.to_record() for r in rows])


def stored(store: Store) -> list[dict[str, Any]]:
    return list(store.db.query("SELECT * FROM analytics ORDER BY id"))


# -- the writer --------------------------------------------------------------------------


async def test_rows_are_written_with_all_fields(store: Store) -> None:
    writer = AnalyticsWriter(store, flush_interval=0.05)
    task = writer.start()
    full = row(
        path="/v1/chat/completions?api_key=crl-secret#frag",
        country="GB",
        user_agent=FIREFOX,
        browser="Firefox 121",
        os="Linux",
        device=None,
        prompt_tokens=12,
        completion_tokens=34,
        ttft_ms=56.5,
        tokens_per_second=78.25,
        conversation_id="conv-1",
    )
    assert writer.record(full)
    assert writer.record(row(client_ip="10.0.0.5", principal=None, status=401))
    await writer.close()
    assert task.done()
    first, second = stored(store)
    assert first["path"] == "/v1/chat/completions"  # the query string can carry secrets
    for name in ("ts", "method", "status", "latency_ms", "principal", "route_group", "action"):
        assert first[name] == getattr(full, name)
    for name in ("client_ip", "country", "user_agent", "browser", "os", "model"):
        assert first[name] == getattr(full, name)
    for name in ("prompt_tokens", "completion_tokens", "ttft_ms", "tokens_per_second"):
        assert first[name] == getattr(full, name)
    assert first["conversation_id"] == "conv-1"
    assert (first["ip_private"], second["ip_private"]) == (0, 1)
    assert second["principal"] is None
    assert second["status"] == 401
    assert (writer.written, writer.dropped, writer.failed) == (2, 0, 0)
    assert "crl-secret" not in (store.path.read_bytes() + _wal(store)).decode("latin-1")


async def eventually(condition: Callable[[], bool]) -> None:
    for _ in range(500):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not met within 5 s")


def _wal(store: Store) -> bytes:
    wal = Path(str(store.path) + "-wal")
    return wal.read_bytes() if wal.exists() else b""


async def test_a_full_batch_is_written_without_waiting_for_the_interval(store: Store) -> None:
    writer = AnalyticsWriter(store, batch_size=3, flush_interval=30.0)
    writer.start()
    for i in range(3):
        writer.record(row(ts=NOW + i))
    await eventually(lambda: writer.written >= 3)
    await writer.close()
    assert len(stored(store)) == 3


async def test_a_partial_batch_is_written_after_the_flush_interval(store: Store) -> None:
    writer = AnalyticsWriter(store, batch_size=100, flush_interval=0.05)
    writer.start()
    writer.record(row())
    await eventually(lambda: writer.written >= 1)
    assert len(stored(store)) == 1
    await writer.close()


async def test_full_queue_drops_and_counts_instead_of_blocking(store: Store) -> None:
    writer = AnalyticsWriter(store, max_queue=5, batch_size=2)
    results = [writer.record(row(ts=NOW + i)) for i in range(8)]  # writer not running
    assert results == [True] * 5 + [False] * 3
    assert (writer.queue_depth, writer.dropped) == (5, 3)
    await writer.close()  # never started: close writes what is queued
    assert len(stored(store)) == 5
    assert not writer.record(row())  # closed
    assert writer.dropped == 4


async def test_a_failed_batch_is_counted_and_the_writer_goes_on(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    def enrich(r: AnalyticsRow) -> AnalyticsRow:
        if r.path == "/boom":
            raise RuntimeError("disk trouble")
        return r

    writer = AnalyticsWriter(store, batch_size=1, flush_interval=0.01, enrich=enrich)
    writer.start()
    writer.record(row(path="/boom"))
    writer.record(row(path="/fine"))
    await eventually(lambda: writer.written + writer.failed >= 2)
    await writer.close()
    assert (writer.written, writer.failed) == (1, 1)
    assert [r["path"] for r in stored(store)] == ["/fine"]
    assert "could not be written" in caplog.text


async def test_close_drains_a_long_queue_in_batches(store: Store) -> None:
    writer = AnalyticsWriter(store, batch_size=7, flush_interval=10.0)
    writer.start()
    for i in range(50):
        writer.record(row(ts=NOW + i))
    await writer.close()
    assert writer.written == 50
    assert [r["ts"] for r in stored(store)] == [NOW + i for i in range(50)]


async def test_enricher_fills_country_and_user_agent_in_the_writer(
    store: Store, tmp_path: Path
) -> None:
    geoip = GeoIP(build_country_mmdb(tmp_path / "c.mmdb"))
    writer = AnalyticsWriter(store, enrich=make_enricher(geoip, UserAgentParser()))
    writer.record(row(user_agent=FIREFOX))
    writer.record(row(client_ip="127.0.0.1", user_agent=None))
    await writer.close()
    geoip.close()
    public, local = stored(store)
    assert (public["country"], public["browser"], public["os"]) == ("GB", "Firefox 121", "Linux")
    assert (local["country"], local["browser"]) == (None, None)


def test_writer_rejects_nonsense_sizes(store: Store) -> None:
    with pytest.raises(ValueError, match="positive"):
        AnalyticsWriter(store, max_queue=0)


# -- summary -----------------------------------------------------------------------------


@pytest.fixture
def sample(store: Store) -> None:
    rows = [
        row(principal="alice", country="GB", latency_ms=100, ttft_ms=10, prompt_tokens=5,
            completion_tokens=10),
        row(principal="alice", country="GB", latency_ms=200, ttft_ms=20, prompt_tokens=5,
            completion_tokens=20, ts=NOW - 3600),
        row(principal="bob", country="SE", client_ip="89.160.20.1", latency_ms=300,
            model="llama", prompt_tokens=7, completion_tokens=1, ts=NOW - 7200),
        row(principal="bob", country=None, client_ip="10.0.0.9", status=500, latency_ms=400,
            ts=NOW - 86400 * 2),
        row(principal=None, route_group="health", action="health", path="/health",
            method="GET", status=200, latency_ms=1, model=None, client_ip="127.0.0.1",
            ts=NOW - 30),
        row(principal="carol", status=403, latency_ms=5, client_ip="81.2.69.7", ts=NOW - 1200,
            route_group="admin", action="analytics.summary", model=None),
    ]  # fmt: skip
    insert(store, rows)


@pytest.mark.usefixtures("sample")
def test_summary_totals_and_breakdowns(queries: AnalyticsQueries) -> None:
    s = queries.summary()
    t = s["totals"]
    assert t["requests"] == 6
    assert (t["errors"], t["server_errors"]) == (2, 1)
    assert (t["prompt_tokens"], t["completion_tokens"]) == (17, 31)
    assert t["unique_principals"] == 3
    assert t["unique_ips"] == 5
    assert t["active_principals_10m"] == 1  # alice 60 s ago; carol 20 min ago
    assert {r["country"]: r["requests"] for r in s["by_country"]} == {"GB": 2, "SE": 1, None: 3}
    groups = {r["route_group"]: (r["requests"], r["errors"]) for r in s["by_group"]}
    assert groups == {"openai": (4, 1), "health": (1, 0), "admin": (1, 1)}
    principals = {r["principal"]: r for r in s["by_principal"]}
    assert principals["alice"]["requests"] == 2
    assert principals["alice"]["completion_tokens"] == 30
    assert principals["alice"]["last_seen"] == NOW - 60
    models = {r["model"]: r for r in s["by_model"]}
    assert set(models) == {"qwen", "llama"}
    assert (models["qwen"]["requests"], models["qwen"]["prompt_tokens"]) == (3, 10)
    assert s["latency_ms"] == {"p50": 100, "p90": 400, "p99": 400}
    assert s["ttft_ms"] == {"p50": 10, "p90": 20, "p99": 20}
    assert sum(b["requests"] for b in s["timeline"]) == 6
    assert s["range"]["until"] == NOW


def test_percentiles_are_nearest_rank(store: Store, queries: AnalyticsQueries) -> None:
    insert(store, [row(latency_ms=float(v), ttft_ms=None) for v in range(100, 0, -1)])
    s = queries.summary()
    assert s["latency_ms"] == {"p50": 50, "p90": 90, "p99": 99}
    assert s["ttft_ms"] == {"p50": None, "p90": None, "p99": None}


def test_empty_database_summary(queries: AnalyticsQueries) -> None:
    s = queries.summary()
    assert s["totals"]["requests"] == 0
    assert s["by_country"] == []
    assert s["timeline"] == []
    assert s["events"]["items"] == []
    assert s["latency_ms"]["p50"] is None


@pytest.mark.usefixtures("sample")
@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        (AnalyticsFilters(country="GB"), 2),
        (AnalyticsFilters(group="openai"), 4),
        (AnalyticsFilters(user="bob"), 2),
        (AnalyticsFilters(model="llama"), 1),
        (AnalyticsFilters(hide_private=True), 4),
        (AnalyticsFilters(since=NOW - 4000), 4),
        (AnalyticsFilters(until=NOW - 3600), 2),  # exclusive upper bound
        (AnalyticsFilters(since=NOW - 86400, until=NOW - 100), 3),
        (AnalyticsFilters(user="bob", hide_private=True), 1),
        (AnalyticsFilters(user="alice", country="GB", group="openai", since=NOW - 100), 1),
        (AnalyticsFilters(user="alice", country="SE"), 0),
        (AnalyticsFilters(user="x' OR '1'='1"), 0),  # values are parameters, never SQL
    ],
)
def test_filters_stack(queries: AnalyticsQueries, filters: AnalyticsFilters, expected: int) -> None:
    s = queries.summary(filters)
    assert s["totals"]["requests"] == expected
    assert s["events"]["total"] == expected
    assert len(s["events"]["items"]) == expected


@pytest.mark.usefixtures("sample")
def test_events_are_paged_newest_first_and_sortable(queries: AnalyticsQueries) -> None:
    page1 = queries.summary(limit=2)["events"]["items"]
    page2 = queries.summary(limit=2, offset=2)["events"]["items"]
    assert [e["ts"] for e in page1] == [NOW - 30, NOW - 60]
    assert [e["ts"] for e in page2] == [NOW - 1200, NOW - 3600]
    by_latency = queries.summary(order_by="latency_ms", descending=False)["events"]["items"]
    assert [e["latency_ms"] for e in by_latency][:2] == [1, 5]
    assert "ip_private" not in page1[0]  # events have the row's fields
    with pytest.raises(ValueError, match="cannot sort"):
        queries.summary(order_by="latency_ms; DROP TABLE analytics")


def test_filters_from_query_parameters() -> None:
    f = AnalyticsFilters.from_params(
        {"since": "1700000000", "until": "2023-11-14T22:13:20Z", "country": "gb", "group": "",
         "user": " alice ", "hide_private": "true"}
    )  # fmt: skip
    assert f == AnalyticsFilters(
        since=1_700_000_000.0, until=1_700_000_000.0, country="GB", user="alice", hide_private=True
    )
    assert AnalyticsFilters.from_params({"since": "2023-11-14T22:13:20"}).since == NOW
    assert AnalyticsFilters.from_params({}) == AnalyticsFilters()
    for bad in ("yesterday", "nan", "inf"):
        with pytest.raises(ValueError, match="not a time"):
            AnalyticsFilters.from_params({"since": bad})
    assert page_from_params({}) == (50, 0)
    assert page_from_params({"limit": "100000", "offset": "3"}) == (500, 3)
    assert page_from_params({"limit": "0"}) == (1, 0)
    with pytest.raises(ValueError, match="offset must be between"):
        page_from_params({"offset": "-1"})
    with pytest.raises(ValueError, match="integers"):
        page_from_params({"limit": "ten"})


def test_bucket_step_fits_the_range() -> None:
    assert bucket_step(0) == 60
    assert bucket_step(3600) == 60
    assert bucket_step(86400) == 900
    assert bucket_step(30 * 86400) == 6 * 3600
    assert bucket_step(10 * 365 * 86400) == 7 * 86400


@pytest.mark.usefixtures("sample")
def test_timeline_buckets(queries: AnalyticsQueries) -> None:
    s = queries.summary(AnalyticsFilters(since=NOW - 3 * 3600))
    step = s["range"]["step_s"]
    assert step == 300
    assert all(b["ts"] % step == 0 for b in s["timeline"])
    assert sum(b["requests"] for b in s["timeline"]) == 5


# -- CSV export --------------------------------------------------------------------------


@pytest.mark.usefixtures("sample")
def test_export_csv(queries: AnalyticsQueries) -> None:
    lines = list(queries.export_csv(AnalyticsFilters(user="alice")))
    records = list(csv.DictReader(io.StringIO("".join(lines))))
    assert list(records[0]) == list(EXPORT_COLUMNS)
    assert len(records) == 2
    assert records[0]["time_utc"].startswith("2023-11-14T22:12:20")
    assert {r["principal"] for r in records} == {"alice"}


def test_export_columns_are_whitelisted(queries: AnalyticsQueries) -> None:
    header = next(queries.export_csv(columns=["ts", "status"]))
    assert header == "ts,status\r\n"
    with pytest.raises(ValueError, match="unknown columns"):
        queries.export_csv(columns=["ts", "(SELECT key_hash FROM api_keys)"])


def test_export_neutralises_spreadsheet_formulas(store: Store, queries: AnalyticsQueries) -> None:
    insert(store, [row(user_agent='=HYPERLINK("http://evil")', path="/-x")])
    lines = list(queries.export_csv(columns=["user_agent", "path", "status"]))
    assert next(csv.reader(lines[1:])) == ['\'=HYPERLINK("http://evil")', "/-x", "200"]


def test_export_pages_through_many_rows(store: Store, queries: AnalyticsQueries) -> None:
    insert(store, [row(ts=NOW + i) for i in range(2345)])
    lines = queries.export_csv(columns=["ts"])
    assert next(lines) == "ts\r\n"
    assert [float(line) for line in lines] == [NOW + i for i in range(2345)]


# -- retention ---------------------------------------------------------------------------


def test_delete_older_than(store: Store, queries: AnalyticsQueries) -> None:
    insert(store, [row(ts=NOW - d * 86400 - 1) for d in range(10)])
    assert queries.delete_older_than(5) == 5
    assert queries.delete_older_than(5) == 0
    assert sorted(r["ts"] for r in stored(store)) == [NOW - d * 86400 - 1 for d in range(5)][::-1]
    with pytest.raises(ValueError, match="positive"):
        queries.delete_older_than(0)


async def test_sweep_runs_in_a_thread(store: Store) -> None:
    insert(store, [row(ts=1.0), row(ts=4_000_000_000.0)])
    assert await asyncio.to_thread(AnalyticsQueries(store).delete_older_than, 30) == 1
    assert [r["ts"] for r in stored(store)] == [4_000_000_000.0]


def test_timeline_fills_empty_buckets_with_zeros() -> None:
    from corral.supervisor.analytics.queries import fill_timeline

    rows = [{"ts": 120, "requests": 3, "errors": 0, "completion_tokens": 5}]
    filled = fill_timeline(rows, since=0, until=250, step=60)
    assert [r["ts"] for r in filled] == [0, 60, 120, 180, 240]
    assert [r["requests"] for r in filled] == [0, 0, 3, 0, 0]
    assert fill_timeline(rows, since=None, until=250, step=60) == rows
