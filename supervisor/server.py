"""Runs the app: listen, wait for SIGTERM/SIGINT, drain, stop children, exit 0."""

from __future__ import annotations

import asyncio
import logging
import signal
import socket

from aiohttp import web

from corral.supervisor.app import create_app
from corral.supervisor.settings import Settings

log = logging.getLogger("corral.server")


def _bound_port(site: web.TCPSite) -> int:
    server = site._server
    sockets = getattr(server, "sockets", None) or []
    for sock in sockets:
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            return int(sock.getsockname()[1])
    return 0


async def serve(settings: Settings) -> int:
    app = create_app(settings)
    # handler_cancellation: a client that disconnects cancels its handler, which cancels the
    # generation in the child. shutdown_timeout is the drain grace on SIGTERM.
    runner = web.AppRunner(
        app,
        handler_cancellation=True,
        shutdown_timeout=settings.shutdown_grace,
        access_log=None,
    )
    await runner.setup()
    site = web.TCPSite(runner, settings.host, settings.port, reuse_address=True)
    await site.start()
    port = _bound_port(site)
    log.info("listening on http://%s:%d", settings.host, port)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("shutting down: draining requests for up to %.0f s", settings.shutdown_grace)
    # Stops accepting, waits for in-flight requests up to the grace period, then runs the
    # cleanup contexts (which stop every child).
    await runner.cleanup()
    log.info("stopped")
    return 0
