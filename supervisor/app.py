"""``create_app(settings)``: builds the whole supervisor; resources live in ``cleanup_ctx``."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from importlib.metadata import PackageNotFoundError, version

from aiohttp import web

from corral.supervisor import openai_routes, stream_routes, webui
from corral.supervisor.appkeys import CATALOG, MANAGER, SETTINGS, STARTED_AT, STREAMS
from corral.supervisor.catalog import Catalog
from corral.supervisor.http_errors import errors_middleware
from corral.supervisor.model_manager import ModelManager
from corral.supervisor.resumable import Streams
from corral.supervisor.settings import LiveSettings, Settings
from corral.supervisor.stream_sessions import SessionRegistry


def corral_version() -> str:
    try:
        return version("corral")
    except PackageNotFoundError:
        return "0+unknown"


async def _models(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS].current
    catalog = Catalog(settings)
    manager = ModelManager(catalog, settings)
    app[CATALOG] = catalog
    app[MANAGER] = manager
    actor = asyncio.create_task(manager.run(), name="model-manager")
    yield
    await manager.close()
    actor.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await actor


async def _streams(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS].current
    streams = Streams(
        SessionRegistry(
            ring_capacity=settings.stream_buffer_bytes,
            total_capacity=settings.stream_total_bytes,
            ttl=settings.stream_ttl,
        )
    )
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
    app = web.Application(client_max_size=settings.max_body_bytes, middlewares=[errors_middleware])
    app[SETTINGS] = LiveSettings(settings)
    app[STARTED_AT] = time.monotonic()
    app.cleanup_ctx.append(_models)
    app.cleanup_ctx.append(_streams)  # cleaned up first (reverse order), while children live
    app.router.add_get("/health", health)
    openai_routes.setup(app)
    stream_routes.setup(app)
    webui.setup(app)
    return app
