"""Request analytics, read side: dashboard summary, CSV export and the retention sweep.

Blocking SQLite work: callers run it in a worker thread (``asyncio.to_thread``).
"""

from __future__ import annotations

import csv
import dataclasses
import io
import logging
import math
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from corral.supervisor.analytics.writer import AnalyticsRow
from corral.supervisor.store import Store

log = logging.getLogger("corral.analytics")

# Queries. Every column a client may name (CSV columns, the events sort key) is checked against
# these tuples, and filter values only ever travel as bound parameters: nothing a client sends
# becomes SQL text.
ROW_COLUMNS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(AnalyticsRow))
EXPORT_COLUMNS: tuple[str, ...] = ("time_utc", *ROW_COLUMNS, "ip_private")
SORT_COLUMNS: frozenset[str] = frozenset(
    {"ts", "status", "latency_ms", "ttft_ms", "prompt_tokens", "completion_tokens"}
)
MAX_PAGE = 500
DEFAULT_PAGE = 50
TOP_N = 100  # rows per breakdown (country, group, principal, model)
ACTIVE_WINDOW_S = 600.0
_STEPS_S = (60, 300, 900, 1800, 3600, 3 * 3600, 6 * 3600, 12 * 3600, 86400, 7 * 86400)
_TARGET_BUCKETS = 120
_DELETE_CHUNK = 5000
_EXPORT_PAGE = 1000
_TRUE = frozenset({"1", "true", "yes", "on"})
# A cell starting with one of these is a formula to a spreadsheet; user agents and paths are
# client-chosen text, so such cells get a leading quote (OWASP "CSV injection").
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True)
class AnalyticsFilters:
    """The stackable filters of the summary and the export; all None means everything."""

    since: float | None = None  # unix seconds, inclusive
    until: float | None = None  # unix seconds, exclusive
    country: str | None = None
    group: str | None = None
    user: str | None = None
    model: str | None = None
    hide_private: bool = False

    @classmethod
    def from_params(cls, params: Mapping[str, str]) -> AnalyticsFilters:
        """From query parameters; ValueError (with a message fit for a 400) on bad values."""

        def text(name: str) -> str | None:
            return params.get(name, "").strip() or None

        country = text("country")
        return cls(
            since=_parse_time(params.get("since")),
            until=_parse_time(params.get("until")),
            country=country.upper() if country else None,
            group=text("group"),
            user=text("user"),
            model=text("model"),
            hide_private=params.get("hide_private", "").strip().lower() in _TRUE,
        )

    def where(self, *extra: str) -> tuple[str, list[Any]]:
        """The WHERE clause and its parameters. ``extra`` is constant SQL from this module."""
        clauses, args = list(extra), list[Any]()
        for column, op, value in (
            ("ts", ">=", self.since),
            ("ts", "<", self.until),
            ("country", "=", self.country),
            ("route_group", "=", self.group),
            ("principal", "=", self.user),
            ("model", "=", self.model),
        ):
            if value is not None:
                clauses.append(f"{column} {op} ?")
                args.append(value)
        if self.hide_private:
            clauses.append("ip_private = 0")
        return (" WHERE " + " AND ".join(clauses) if clauses else ""), args


MAX_OFFSET = 1 << 62  # SQLite integers are 64-bit; a larger offset overflowed into a 500


def page_from_params(params: Mapping[str, str]) -> tuple[int, int]:
    """``limit`` (1..500, default 50) and ``offset`` (>= 0) from query parameters."""
    try:
        limit = int(params.get("limit") or DEFAULT_PAGE)
        offset = int(params.get("offset") or 0)
    except ValueError:
        raise ValueError("limit and offset must be integers") from None
    if offset < 0 or offset > MAX_OFFSET:
        raise ValueError(f"offset must be between 0 and {MAX_OFFSET}")
    return max(1, min(limit, MAX_PAGE)), offset


def _parse_time(value: str | None) -> float | None:
    """Unix seconds or ISO 8601 (naive means UTC)."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(f"not a time (unix seconds or ISO 8601): {value!r}") from None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        return parsed.timestamp()
    if not math.isfinite(seconds):
        raise ValueError(f"not a time: {value!r}")
    return seconds


def fill_timeline(
    rows: list[dict[str, Any]], since: float | None, until: float, step: int
) -> list[dict[str, Any]]:
    """Every bucket from ``since`` to ``until``, with zeros where no request fell.

    A chart of only the non-empty buckets would join distant points with a line and pick
    its axis from the data alone; zeros keep the time axis honest.
    """
    if since is None:
        return rows
    found = {int(row["ts"]): row for row in rows}
    first, last = int(since // step) * step, int(until // step) * step
    if (last - first) // step > 10 * _TARGET_BUCKETS:  # a range the step was not chosen for
        return rows
    return [
        found.get(ts, {"ts": ts, "requests": 0, "errors": 0, "completion_tokens": 0})
        for ts in range(first, last + step, step)
    ]


def bucket_step(span_s: float) -> int:
    """The smallest step from a fixed list that draws the span in at most ~120 buckets."""
    for step in _STEPS_S:
        if span_s / step <= _TARGET_BUCKETS:
            return step
    return _STEPS_S[-1]


class AnalyticsQueries:
    """Read side and retention. Blocking: call from a worker thread (``asyncio.to_thread``)."""

    def __init__(self, store: Store, *, clock: Callable[[], float] = time.time) -> None:
        self._store = store
        self._clock = clock

    def _all(self, sql: str, args: Sequence[Any]) -> list[dict[str, Any]]:
        return list(self._store.db.query(sql, list(args)))

    def summary(
        self,
        filters: AnalyticsFilters | None = None,
        limit: int = DEFAULT_PAGE,
        offset: int = 0,
        *,
        order_by: str = "ts",
        descending: bool = True,
    ) -> dict[str, Any]:
        """Everything the dashboard shows, for the filtered rows. JSON-serialisable."""
        if order_by not in SORT_COLUMNS:
            raise ValueError(f"cannot sort by {order_by!r}; one of {sorted(SORT_COLUMNS)}")
        filters = filters or AnalyticsFilters()
        limit, offset = max(1, min(limit, MAX_PAGE)), max(0, offset)
        now = self._clock()
        where, args = filters.where()
        db = self._store.db
        # One read transaction: every figure comes from the same snapshot even while the
        # writer commits batches (WAL readers see a fixed point in time).
        with db.atomic():
            totals = self._all(
                "SELECT COUNT(*) AS requests,"
                # 499 (the client closed the connection) is not an error of ours.
                " COALESCE(SUM(status >= 400 AND status != 499), 0) AS errors,"
                " COALESCE(SUM(status >= 500), 0) AS server_errors,"
                " COALESCE(SUM(prompt_tokens), 0) AS prompt_tokens,"
                " COALESCE(SUM(completion_tokens), 0) AS completion_tokens,"
                " COUNT(DISTINCT principal) AS unique_principals,"
                " COUNT(DISTINCT client_ip) AS unique_ips,"
                f" MIN(ts) AS first_ts FROM analytics{where}",
                args,
            )[0]
            recent = dataclasses.replace(filters, since=now - ACTIVE_WINDOW_S, until=None)
            recent_where, recent_args = recent.where("principal IS NOT NULL")
            totals["active_principals_10m"] = self._all(
                f"SELECT COUNT(DISTINCT principal) AS n FROM analytics{recent_where}", recent_args
            )[0]["n"]
            first_ts = totals.pop("first_ts")
            since = filters.since if filters.since is not None else first_ts
            until = filters.until if filters.until is not None else now
            step = bucket_step(max(0.0, until - since) if since is not None else 0.0)
            result: dict[str, Any] = {
                "range": {"since": since, "until": until, "step_s": step},
                "totals": totals,
                "by_country": self._breakdown("country", "", where, args),
                "by_group": self._breakdown(
                    "route_group",
                    ", COALESCE(SUM(status >= 400 AND status != 499), 0) AS errors",
                    where,
                    args,
                ),
                "by_principal": self._breakdown(
                    "principal",
                    ", COALESCE(SUM(prompt_tokens), 0) AS prompt_tokens,"
                    " COALESCE(SUM(completion_tokens), 0) AS completion_tokens,"
                    " MAX(ts) AS last_seen",
                    where,
                    args,
                ),
                "by_model": self._breakdown(
                    "model",
                    ", COALESCE(SUM(prompt_tokens), 0) AS prompt_tokens,"
                    " COALESCE(SUM(completion_tokens), 0) AS completion_tokens,"
                    " AVG(tokens_per_second) AS avg_tokens_per_second,"
                    " AVG(ttft_ms) AS avg_ttft_ms",
                    *filters.where("model IS NOT NULL"),
                ),
                "latency_ms": self._percentiles("latency_ms", filters),
                "ttft_ms": self._percentiles("ttft_ms", filters),
                "timeline": fill_timeline(
                    self._all(
                        "SELECT CAST(ts / ? AS INTEGER) * ? AS ts, COUNT(*) AS requests,"
                        # 499 (the client closed the connection) is not an error of ours.
                        " COALESCE(SUM(status >= 400 AND status != 499), 0) AS errors,"
                        " COALESCE(SUM(completion_tokens), 0) AS completion_tokens"
                        f" FROM analytics{where} GROUP BY 1 ORDER BY 1",
                        [step, step, *args],
                    ),
                    since,
                    until,
                    step,
                ),
                "events": {
                    "total": totals["requests"],
                    "limit": limit,
                    "offset": offset,
                    "order_by": order_by,
                    "descending": descending,
                    "items": self._events(where, args, order_by, descending, limit, offset),
                },
            }
        return result

    def _breakdown(
        self, column: str, extra_sql: str, where: str, args: Sequence[Any]
    ) -> list[dict[str, Any]]:
        # `column` and `extra_sql` are constants from summary(), never client input. With extra
        # aggregates the unary plus keeps SQLite from walking the (column, ts) index and
        # fetching every row out of order: one table scan is ~4x faster on big tables. A bare
        # count is answered from the index alone, so there the index stays usable.
        group = f"+{column}" if extra_sql else column
        return self._all(
            f"SELECT {column}, COUNT(*) AS requests{extra_sql} FROM analytics{where}"
            f" GROUP BY {group} ORDER BY requests DESC, {column} LIMIT ?",
            [*args, TOP_N],
        )

    def _percentiles(self, column: str, filters: AnalyticsFilters) -> dict[str, float | None]:
        """Nearest-rank p50/p90/p99 computed in SQL with a window function, so that only three
        numbers leave SQLite instead of every latency of the range. The value at rank
        ceil(p*n/100) is the smallest value whose row number rn satisfies 100*rn >= p*n."""
        where, args = filters.where(f"{column} IS NOT NULL")
        row = self._all(
            f"WITH v AS (SELECT {column} AS x, ROW_NUMBER() OVER (ORDER BY {column}) AS rn,"
            f" COUNT(*) OVER () AS n FROM analytics{where})"
            " SELECT MIN(CASE WHEN rn * 100 >= n * 50 THEN x END) AS p50,"
            " MIN(CASE WHEN rn * 100 >= n * 90 THEN x END) AS p90,"
            " MIN(CASE WHEN rn * 100 >= n * 99 THEN x END) AS p99 FROM v",
            args,
        )[0]
        return {key: row[key] for key in ("p50", "p90", "p99")}

    def _events(
        self,
        where: str,
        args: Sequence[Any],
        order_by: str,
        descending: bool,
        limit: int,
        offset: int,
    ) -> list[dict[str, Any]]:
        direction = "DESC" if descending else "ASC"  # one of two constants
        columns = ", ".join(("id", *ROW_COLUMNS))
        return self._all(
            f"SELECT {columns} FROM analytics{where}"
            f" ORDER BY {order_by} {direction}, id {direction} LIMIT ? OFFSET ?",
            [*args, limit, offset],
        )

    def export_csv(
        self, filters: AnalyticsFilters | None = None, columns: Sequence[str] | None = None
    ) -> Iterator[str]:
        """CSV lines (header first), oldest row first. Columns are checked here, before the
        first line, so a bad request fails before a response is started. The rows are read in
        pages, each with the connection of the thread that asks for it, so the iterator may be
        advanced from different worker threads."""
        chosen = tuple(columns) if columns else EXPORT_COLUMNS
        unknown = [c for c in chosen if c not in EXPORT_COLUMNS]
        if unknown:
            raise ValueError(f"unknown columns {unknown}; allowed: {list(EXPORT_COLUMNS)}")
        return self._export_lines(filters or AnalyticsFilters(), chosen)

    def _export_lines(self, filters: AnalyticsFilters, columns: tuple[str, ...]) -> Iterator[str]:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\r\n")

        def line(values: Sequence[Any]) -> str:
            buffer.seek(0)
            buffer.truncate()
            writer.writerow(values)
            return buffer.getvalue()

        yield line(columns)
        selected = ", ".join(c for c in ("id", "ts", *columns) if c != "time_utc")
        last_id = 0
        while True:
            where, args = filters.where("id > ?")
            page = self._all(
                f"SELECT {selected} FROM analytics{where} ORDER BY id LIMIT ?",
                [last_id, *args, _EXPORT_PAGE],
            )
            for row in page:
                yield line([_csv_cell(column, row) for column in columns])
            if len(page) < _EXPORT_PAGE:
                return
            last_id = page[-1]["id"]

    def delete_older_than(self, days: float, *, now: float | None = None) -> int:
        """Delete rows older than ``days``; returns how many. In chunks, each its own short
        transaction, so the analytics writer never waits long for the write lock."""
        if days <= 0:
            raise ValueError("retention days must be positive")
        cutoff = (self._clock() if now is None else now) - days * 86400.0
        deleted = 0
        while True:
            cursor = self._store.db.execute(
                "DELETE FROM analytics WHERE id IN"
                " (SELECT id FROM analytics WHERE ts < ? ORDER BY ts LIMIT ?)",
                [cutoff, _DELETE_CHUNK],
            )
            deleted += cursor.rowcount
            if cursor.rowcount < _DELETE_CHUNK:
                break
        if deleted:
            log.info("analytics retention: deleted %d rows older than %g days", deleted, days)
        return deleted


def _csv_cell(column: str, row: Mapping[str, Any]) -> Any:
    if column == "time_utc":
        return datetime.fromtimestamp(row["ts"], UTC).isoformat(timespec="milliseconds")
    value = row[column]
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value
