"""The one wiring point: every long-lived service of the supervisor is built here.

Each cleanup context builds a group of services at start-up, puts them under their `AppKey`s
and stops them at shutdown; route modules only register routes and read those keys.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from aiohttp import web

from corral.supervisor.analytics.geoip import GeoIP
from corral.supervisor.analytics.queries import AnalyticsQueries
from corral.supervisor.analytics.user_agents import UserAgentParser
from corral.supervisor.analytics.writer import AnalyticsWriter, make_enricher
from corral.supervisor.appkeys import (
    ANALYTICS,
    CATALOG,
    CONVERSATIONS,
    CREDENTIALS,
    DOWNLOADS,
    GEOIP,
    MANAGER,
    QUERIES,
    RELOADER,
    SECURITY,
    SETTINGS,
    SHUTTING_DOWN,
    STORE,
    STREAMS,
)
from corral.supervisor.auth.policy import (
    ACCESS_SETTINGS,
    Security,
    apply_access_settings,
    build_credentials,
    open_without_keys,
)
from corral.supervisor.broadcast import Lagged
from corral.supervisor.conversations.store import Conversations
from corral.supervisor.errors import CorralError
from corral.supervisor.hub.downloads import DownloadManager
from corral.supervisor.models.catalog import CATALOG_SETTINGS, Catalog
from corral.supervisor.models.limits import MANAGER_SETTINGS
from corral.supervisor.models.manager import ModelManager
from corral.supervisor.remote.mounts import RemoteMounts
from corral.supervisor.settings import Settings
from corral.supervisor.store import Store
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
    reloader = app[RELOADER]
    reloader.on(ACCESS_SETTINGS, lambda s: apply_access_settings(credentials, s))
    reloader.on(["geoip_database"], lambda s: geoip.use(s.geoip_database))
    app[STORE] = store
    app[CREDENTIALS] = credentials
    app[SECURITY] = Security(credentials, open_without_keys=open_without_keys(settings))
    app[GEOIP] = geoip
    app[QUERIES] = AnalyticsQueries(store)
    writer = AnalyticsWriter(
        store,
        max_queue=settings.analytics_queue_size,
        enrich=make_enricher(geoip, UserAgentParser()),
    )

    def analytics(s: Settings) -> None:
        writer.enabled, writer.max_queue = s.analytics, s.analytics_queue_size

    analytics(settings)
    reloader.on(["analytics", "analytics_queue_size"], analytics)
    app[ANALYTICS] = writer
    writer.start()

    stopping = asyncio.Event()

    async def daily() -> None:
        # Stopped by ``stopping``, never cancelled: a cancel would leave a sweep running in its
        # thread while the store closes its connection under it (a segfault in sqlite).
        while not stopping.is_set():
            days = app[SETTINGS].current.analytics_retention_days
            try:
                await asyncio.to_thread(app[QUERIES].delete_older_than, days)
                await asyncio.to_thread(credentials.delete_expired_sessions)
                geoip.reload_if_changed()
            except Exception:  # a locked database today must not end the sweeps for good
                log.exception("daily housekeeping failed; it runs again tomorrow")
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(DAY):
                    await stopping.wait()

    housekeeping = asyncio.create_task(daily(), name="daily-housekeeping")
    yield
    stopping.set()
    await housekeeping  # lets a sweep in its thread finish before the store closes
    await writer.close()  # flush what is queued: at most the last batch is ever lost
    geoip.close()
    store.close()


async def _models(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS].current
    catalog = Catalog(settings)
    manager = ModelManager(catalog, settings)
    downloads = DownloadManager(settings)
    app[CATALOG] = catalog
    app[MANAGER] = manager
    app[DOWNLOADS] = downloads
    reloader = app[RELOADER]
    reloader.on(CATALOG_SETTINGS, catalog.apply)  # before the manager, which reads the catalog
    reloader.on(MANAGER_SETTINGS, manager.apply)
    reloader.on(["hub"], downloads.apply)
    actor = asyncio.create_task(manager.run(), name="model-manager")
    shelf_watch = asyncio.create_task(_refresh_on_download(catalog, downloads), name="shelf")
    mounts = RemoteMounts(catalog, settings)
    reloader.on(["models"], mounts.apply)
    mounting = asyncio.create_task(mounts.run(), name="remote-mounts")
    # Remote models start with the server: their child health-checks the upstream, so the
    # shelf shows it reachable or not before the first request.
    remote = [e.id for e in catalog.entries().values() if e.backend == "remote"]
    for name in [*settings.preload, *remote]:
        try:
            await manager.load(catalog.resolve(name).id)
        except CorralError as exc:  # a bad preload must not keep the server from starting
            log.error("preload of %s failed: %s", name, exc.message)
    yield
    mounting.cancel()
    shelf_watch.cancel()
    await downloads.close()
    await manager.close()
    actor.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.gather(actor, shelf_watch, mounting)


def _per_owner(settings: Settings) -> int:
    """One key's or user's share of the stream memory: a quarter of it unless configured."""
    share = settings.stream_bytes_per_owner or settings.stream_total_bytes // 4
    return max(share, settings.stream_buffer_bytes)


async def _refresh_on_download(catalog: Catalog, downloads: DownloadManager) -> None:
    """A finished download puts new files on the shelf: the catalog scans again at once."""
    with downloads.events.subscribe() as jobs:
        while True:
            try:
                job = await jobs.get()
            except Lagged:
                catalog.refresh()  # missed some: refresh anyway, cheap and always right
                continue
            if job.state == "finished":
                catalog.refresh()


async def _conversations(app: web.Application) -> AsyncIterator[None]:
    app[CONVERSATIONS] = Conversations(app[STORE])
    yield


async def _stop_event_streams(app: web.Application) -> None:
    """Before the server waits for open handlers, end the long-lived admin event streams."""
    app[SHUTTING_DOWN].set()


def install(app: web.Application) -> None:
    """Build every long-lived service in the app's cleanup contexts, in dependency order."""
    app[SHUTTING_DOWN] = asyncio.Event()
    app.cleanup_ctx.append(_storage)
    app.cleanup_ctx.append(_conversations)
    app.cleanup_ctx.append(_models)
    app.cleanup_ctx.append(_streams)  # cleaned up first (reverse order), while children live
    app.on_shutdown.append(_stop_event_streams)


async def _streams(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS].current
    registry = SessionRegistry(
        ring_capacity=settings.stream_buffer_bytes,
        total_capacity=settings.stream_total_bytes,
        ttl=settings.stream_ttl,
    )
    quota = OwnerQuota(registry, _per_owner(settings))
    streams = Streams(registry, quota)
    app[STREAMS] = streams

    def resize(s: Settings) -> None:
        registry.resize(s.stream_buffer_bytes, s.stream_total_bytes, s.stream_ttl)
        quota.per_owner_bytes = _per_owner(s)

    app[RELOADER].on(
        ["stream_buffer_bytes", "stream_total_bytes", "stream_ttl", "stream_bytes_per_owner"],
        resize,
    )

    async def sweep() -> None:
        while True:
            await asyncio.sleep(min(30.0, max(streams.registry.ttl / 4, 0.1)))
            streams.registry.sweep()

    sweeper = asyncio.create_task(sweep(), name="stream-sweep")
    yield
    sweeper.cancel()
    # Before the children stop: every follower gets a clean end, no reader hangs.
    await streams.close()
