"""``create_app(settings)``: builds the whole supervisor; resources live in ``cleanup_ctx``."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator

from aiohttp import web

from corral.supervisor.analytics import routes as analytics_routes
from corral.supervisor.analytics.geoip import GeoIP
from corral.supervisor.analytics.metrics import Metrics, metrics_route
from corral.supervisor.analytics.queries import AnalyticsQueries
from corral.supervisor.analytics.user_agents import UserAgentParser
from corral.supervisor.analytics.writer import AnalyticsWriter, make_enricher
from corral.supervisor.appkeys import (
    ANALYTICS,
    CATALOG,
    CLIENT_IP,
    CREDENTIALS,
    GEOIP,
    MANAGER,
    METRICS,
    QUERIES,
    SECURITY,
    SETTINGS,
    STARTED_AT,
    STORE,
    STREAMS,
)
from corral.supervisor.auth import routes as auth_routes
from corral.supervisor.auth.policy import (
    Security,
    auth_middleware,
    build_credentials,
    open_without_keys,
)
from corral.supervisor.conversations import routes as conversation_routes
from corral.supervisor.daemon.version import corral_version
from corral.supervisor.errors import CorralError
from corral.supervisor.http import routes as server_routes
from corral.supervisor.http import static_ui as webui
from corral.supervisor.http.client_address import ClientIPResolver
from corral.supervisor.http.cors import cors_middleware
from corral.supervisor.http.errors import errors_middleware
from corral.supervisor.http.origin import origin_middleware
from corral.supervisor.http.request_log import request_log_middleware
from corral.supervisor.models import routes as admin_routes
from corral.supervisor.models.catalog import Catalog
from corral.supervisor.models.manager import ModelManager
from corral.supervisor.openai import routes as openai_routes
from corral.supervisor.settings import LiveSettings, Settings
from corral.supervisor.store import Store
from corral.supervisor.streams import routes as stream_routes
from corral.supervisor.streams.quota import OwnerQuota
from corral.supervisor.streams.resumable import Streams
from corral.supervisor.streams.sessions import SessionRegistry

log = logging.getLogger("corral.server")
DAY = 86400.0


async def _storage(app: web.Application) -> AsyncIterator[None]:
    """SQLite, credentials, GeoIP and the analytics writer; the daily retention sweep."""
    settings = app[SETTINGS].current
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    store = Store(settings.resolved_database_path)
    credentials = build_credentials(store, settings)
    geoip = GeoIP(settings.geoip_database)
    app[STORE] = store
    app[CREDENTIALS] = credentials
    app[SECURITY] = Security(credentials, open_without_keys=open_without_keys(settings))
    app[GEOIP] = geoip
    app[QUERIES] = AnalyticsQueries(store)
    writer: AnalyticsWriter | None = None
    if settings.analytics:
        writer = AnalyticsWriter(
            store,
            max_queue=settings.analytics_queue_size,
            enrich=make_enricher(geoip, UserAgentParser()),
        )
        app[ANALYTICS] = writer
        writer.start()

    async def daily() -> None:
        while True:
            days = app[SETTINGS].current.analytics_retention_days
            try:
                await asyncio.to_thread(app[QUERIES].delete_older_than, days)
                await asyncio.to_thread(credentials.delete_expired_sessions)
                geoip.reload_if_changed()
            except Exception:  # a locked database today must not end the sweeps for good
                log.exception("daily housekeeping failed; it runs again tomorrow")
            await asyncio.sleep(DAY)

    housekeeping = asyncio.create_task(daily(), name="daily-housekeeping")
    yield
    housekeeping.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await housekeeping
    if writer is not None:
        await writer.close()  # flush what is queued: at most the last batch is ever lost
    geoip.close()
    store.close()


async def _models(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS].current
    catalog = Catalog(settings)
    manager = ModelManager(catalog, settings)
    app[CATALOG] = catalog
    app[MANAGER] = manager
    actor = asyncio.create_task(manager.run(), name="model-manager")
    for name in settings.preload:
        try:
            await manager.load(catalog.resolve(name))
        except CorralError as exc:  # a bad preload must not keep the server from starting
            log.error("preload of %s failed: %s", name, exc.message)
    yield
    await manager.close()
    actor.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await actor


async def _streams(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS].current
    registry = SessionRegistry(
        ring_capacity=settings.stream_buffer_bytes,
        total_capacity=settings.stream_total_bytes,
        ttl=settings.stream_ttl,
    )
    per_owner = settings.stream_bytes_per_owner or settings.stream_total_bytes // 4
    streams = Streams(registry, OwnerQuota(registry, max(per_owner, registry.ring_capacity)))
    app[STREAMS] = streams

    async def sweep() -> None:
        while True:
            await asyncio.sleep(min(30.0, max(settings.stream_ttl / 4, 0.1)))
            streams.registry.sweep()

    sweeper = asyncio.create_task(sweep(), name="stream-sweep")
    yield
    sweeper.cancel()
    # Before the children stop: every follower gets a clean end, no reader hangs.
    await streams.close()


async def health(request: web.Request) -> web.Response:
    views = request.app[MANAGER].views.values()
    return web.json_response(
        {
            "status": "ok",
            "version": corral_version(),
            "uptime_s": round(time.monotonic() - request.app[STARTED_AT], 3),
            "models_loaded": sum(1 for v in views if v.state == "loaded"),
        }
    )


def create_app(settings: Settings) -> web.Application:
    # Outermost first: the request log sees the final status of everything, errors included;
    # errors render what the origin check and auth raise.
    app = web.Application(
        client_max_size=settings.max_body_bytes,
        middlewares=[
            request_log_middleware,
            cors_middleware,  # outside errors: error responses carry CORS headers too
            errors_middleware,
            origin_middleware,  # before auth: a forged request is refused whoever it claims
            auth_middleware,
        ],
    )
    app[SETTINGS] = LiveSettings(settings)
    app[STARTED_AT] = time.monotonic()
    app[CLIENT_IP] = ClientIPResolver(settings.trusted_proxies)
    metrics = Metrics()
    app[METRICS] = metrics
    metrics.watch_app(app)
    app.cleanup_ctx.append(_storage)
    app.cleanup_ctx.append(_models)
    app.cleanup_ctx.append(_streams)  # cleaned up first (reverse order), while children live
    app.router.add_get("/health", health)
    openai_routes.setup(app)
    stream_routes.setup(app)
    auth_routes.setup(app)
    conversation_routes.setup(app)
    analytics_routes.setup(app)
    server_routes.setup(app)
    admin_routes.setup(app)  # models and downloads; their cleanup context stops download jobs
    app.router.add_get("/metrics", metrics_route)
    webui.setup(app)
    return app
