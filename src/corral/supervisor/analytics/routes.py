"""The dashboard API: ``/admin/analytics/summary`` and ``/admin/analytics/export.csv``."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

from aiohttp import web

from corral.supervisor.analytics.queries import AnalyticsFilters, page_from_params
from corral.supervisor.appkeys import QUERIES
from corral.supervisor.errors import BadRequest

_EXPORT_BATCH = 500


def _filters(request: web.Request) -> AnalyticsFilters:
    try:
        return AnalyticsFilters.from_params(request.query)
    except ValueError as exc:
        raise BadRequest(str(exc), code="invalid_filter") from None


def _keyed(rows: list[dict[str, Any]], column: str) -> list[dict[str, Any]]:
    return [{"key": row.pop(column), **row} for row in rows]


async def summary(request: web.Request) -> web.Response:
    filters = _filters(request)
    try:
        limit, offset = page_from_params(request.query)
    except ValueError as exc:
        raise BadRequest(str(exc), code="invalid_page") from None
    queries = request.app[QUERIES]
    raw = await asyncio.to_thread(queries.summary, filters, limit, offset)
    totals = raw["totals"]
    body = {
        "range": raw["range"],
        "totals": {
            **totals,
            "unique_users": totals["unique_principals"],
            "active_users_10m": totals["active_principals_10m"],
        },
        "per_country": _keyed(raw["by_country"], "country"),
        "per_group": _keyed(raw["by_group"], "route_group"),
        "per_user": _keyed(raw["by_principal"], "principal"),
        "per_model": _keyed(raw["by_model"], "model"),
        "latency_ms": raw["latency_ms"],
        "ttft_ms": raw["ttft_ms"],
        "over_time": raw["timeline"],
        "events": raw["events"],
    }
    return web.json_response(body)


async def export_csv(request: web.Request) -> web.StreamResponse:
    filters = _filters(request)
    lines = request.app[QUERIES].export_csv(filters)
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/csv; charset=utf-8",
            "Content-Disposition": 'attachment; filename="corral-analytics.csv"',
        }
    )
    await response.prepare(request)
    while chunk := await asyncio.to_thread(lambda: "".join(itertools.islice(lines, _EXPORT_BATCH))):
        await response.write(chunk.encode())
    await response.write_eof()
    return response


def setup(app: web.Application) -> None:
    app.router.add_get("/admin/analytics/summary", summary)
    app.router.add_get("/admin/analytics/export.csv", export_csv)
