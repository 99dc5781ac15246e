"""Request analytics, write side: the row and the batching writer (queries: analytics_queries).

No request waits on the disk: the HTTP layer calls :meth:`AnalyticsWriter.record`, which only
appends to a bounded in-memory queue, and one writer task inserts the rows in batches from a
worker thread. When the queue is full the row is dropped and counted rather than growing memory
or blocking the request. A crash loses only the rows still queued (normally less than one
batch, at most ``flush_interval`` seconds of traffic); committed batches survive it (WAL).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import math
import sqlite3
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from corral.supervisor.analytics.geoip import GeoIP
from corral.supervisor.analytics.user_agents import MAX_USER_AGENT_CHARS, UserAgentParser
from corral.supervisor.http.client_address import is_private_address
from corral.supervisor.http.headers import safe_text
from corral.supervisor.store import Store

__all__ = ["AnalyticsRow", "AnalyticsWriter", "Enricher", "make_enricher"]

log = logging.getLogger("corral.analytics")

MAX_PATH_CHARS = 512
MAX_BUSY_RETRIES = 5  # times a batch waits for a locked database before it is counted lost


@dataclass(frozen=True, slots=True)
class AnalyticsRow:
    """One HTTP request. ``principal`` is a key or user *name*; nothing here may be a secret."""

    ts: float
    method: str
    path: str
    status: int
    latency_ms: float
    principal: str | None = None
    route_group: str | None = None  # "openai", "streams", "admin", "ui", "auth", "health"...
    action: str | None = None  # e.g. "chat.completions"
    client_ip: str | None = None
    country: str | None = None
    user_agent: str | None = None
    browser: str | None = None
    os: str | None = None
    device: str | None = None
    model: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    ttft_ms: float | None = None
    tokens_per_second: float | None = None
    conversation_id: str | None = None
    audio_seconds_in: float | None = None
    audio_seconds_out: float | None = None

    def to_record(self) -> dict[str, Any]:
        """The row as stored: query string cut off the path (it can carry secrets such as
        ``?key=``), long strings truncated, and the private-address flag computed once here so
        that ``hide_private`` is a cheap filter."""
        record = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        for name, value in record.items():
            if isinstance(value, str):
                record[name] = safe_text(value)  # SQLite refuses a lone surrogate
        record["path"] = record["path"].split("?", 1)[0].split("#", 1)[0][:MAX_PATH_CHARS]
        if record["user_agent"] is not None:
            record["user_agent"] = record["user_agent"][:MAX_USER_AGENT_CHARS]
        record["ip_private"] = int(is_private_address(self.client_ip))
        return record


Enricher = Callable[[AnalyticsRow], AnalyticsRow]


def make_enricher(geoip: GeoIP | None, agents: UserAgentParser | None) -> Enricher:
    """Fill country and browser/OS/device in the writer's thread, off the request path
    (an uncached User-Agent parse costs milliseconds). Fields already set are kept."""

    def enrich(row: AnalyticsRow) -> AnalyticsRow:
        changes: dict[str, Any] = {}
        if geoip is not None and row.country is None and row.client_ip:
            changes["country"] = geoip.country(row.client_ip)
        if agents is not None and row.user_agent and row.browser is None:
            info = agents.parse(row.user_agent)
            changes.update(browser=info.browser, os=info.os, device=info.device)
        return dataclasses.replace(row, **changes) if changes else row

    return enrich


class AnalyticsWriter:
    """The bounded queue and the single task that writes it out in batches.

    ``record`` must be called from the event loop thread. Start with :meth:`start` (or run
    :meth:`run` as a task yourself) and stop with :meth:`close`, which writes what is left.
    """

    def __init__(
        self,
        store: Store,
        *,
        max_queue: int = 10_000,
        batch_size: int = 200,
        flush_interval: float = 1.0,
        enrich: Enricher | None = None,
    ) -> None:
        if max_queue < 1 or batch_size < 1 or flush_interval <= 0:
            raise ValueError("max_queue, batch_size and flush_interval must be positive")
        self._store = store
        self.max_queue = max_queue
        self.enabled = True  # `analytics = false` keeps the writer but records nothing
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self._enrich = enrich
        self._queue: deque[AnalyticsRow] = deque()
        self._wakeup = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        # Serialises take-and-write, so that close() draining while a run() task is still
        # starting cannot write two batches at once or out of order.
        self._write_lock = asyncio.Lock()
        self.dropped = 0  # rows refused because the queue was full or the writer closed
        self.written = 0
        self.failed = 0  # rows lost because a batch could not be written
        self._busy_retries = 0
        self._drop_logged_at = -math.inf

    @property
    def queue_depth(self) -> int:
        return len(self._queue)

    def record(self, row: AnalyticsRow) -> bool:
        """Queue a row without blocking; False (and ``dropped`` + 1) when it cannot be kept."""
        if not self.enabled:
            return False
        if self._stopping or len(self._queue) >= self.max_queue:
            self.dropped += 1
            now = time.monotonic()
            # At most one line a minute: an overload must not also flood the log.
            if now - self._drop_logged_at >= 60.0:
                self._drop_logged_at = now
                log.warning("analytics queue full or closed: %d rows dropped so far", self.dropped)
            return False
        self._queue.append(row)
        # Wake the writer only when it has something new to do: the first row starts the
        # flush timer, a full batch is written at once.
        if len(self._queue) == 1 or len(self._queue) == self.batch_size:
            self._wakeup.set()
        return True

    def start(self) -> asyncio.Task[None]:
        """Run the writer as a task of the running loop."""
        self._task = asyncio.get_running_loop().create_task(self.run(), name="analytics-writer")
        return self._task

    async def run(self) -> None:
        """Write batches until :meth:`close`; a failed batch is logged and the loop goes on."""
        if self._task is None:
            self._task = asyncio.current_task()
        while True:
            await self._wait_for_batch()
            if not self._queue:
                if self._stopping:
                    return
                continue
            await self._write_next()

    async def close(self) -> None:
        """Stop accepting rows, write everything still queued, and wait for the writer."""
        self._stopping = True
        self._wakeup.set()
        task = self._task
        if task is not None and task is not asyncio.current_task() and not task.done():
            # wait() rather than await: a cancelled writer must not look like a cancelled close.
            await asyncio.wait({task})
        while self._queue:  # the writer was never started, or was cancelled
            await self._write_next()

    async def _wait_for_batch(self) -> None:
        while not self._queue and not self._stopping:
            self._wakeup.clear()
            await self._wakeup.wait()
        deadline = asyncio.get_running_loop().time() + self.flush_interval
        while len(self._queue) < self.batch_size and not self._stopping:
            self._wakeup.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout_at(deadline):
                    await self._wakeup.wait()
            if asyncio.get_running_loop().time() >= deadline:
                return

    async def _write_next(self) -> None:
        async with self._write_lock:
            count = min(self.batch_size, len(self._queue))
            batch = [self._queue.popleft() for _ in range(count)]
            if batch:
                await self._write(batch)

    async def _write(self, batch: list[AnalyticsRow]) -> None:
        try:
            bad = await asyncio.to_thread(self._insert, batch)
        except sqlite3.OperationalError as exc:
            # Locked by another process (a backup, the CLI) past the busy timeout: the rows go
            # back to the front of the queue and are tried again a little later, a few times.
            self._busy_retries += 1
            if self._busy_retries <= MAX_BUSY_RETRIES:
                room = self.max_queue - len(self._queue)
                self._queue.extendleft(reversed(batch[:room]))
                self.failed += max(0, len(batch) - room)
                log.warning("analytics: database busy (%s); the batch waits", exc)
                await asyncio.sleep(self.flush_interval)
                return
            self.failed += len(batch)
            log.error(
                "analytics: database busy %d times; %d rows lost", self._busy_retries, len(batch)
            )
            self._busy_retries = 0
        except Exception:
            self.failed += len(batch)
            log.exception("analytics: a batch of %d rows could not be written", len(batch))
        else:
            self._busy_retries = 0
            self.failed += bad
            self.written += len(batch) - bad

    def _insert(self, batch: list[AnalyticsRow]) -> int:
        """Write the batch; returns how many rows could not be written (and were counted)."""
        records = []
        bad = 0
        for row in batch:
            try:
                records.append(self._record(row))
            except Exception:
                bad += 1
                log.exception("analytics: a row could not be written (preparing it failed)")
        db = self._store.db
        table = db.table("analytics")
        try:
            # One transaction per batch: one WAL append instead of one per row, and all or
            # nothing, so the retry below never stores a row twice.
            with db.atomic():
                table.insert_all(records, batch_size=max(len(records), 1))
        except sqlite3.OperationalError:
            raise  # the database is locked or gone: every row would fail alike (see _write)
        except Exception:
            # One row the database refuses must not cost the others: write them one by one.
            log.warning("analytics: a batch failed; writing its %d rows one by one", len(records))
            for record in records:
                try:
                    table.insert(record)
                except Exception:
                    bad += 1
                    log.exception("analytics: a row could not be written and is dropped")
        return bad

    def _record(self, row: AnalyticsRow) -> dict[str, Any]:
        return (self._enrich(row) if self._enrich else row).to_record()
