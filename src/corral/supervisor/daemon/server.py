"""Runs the app as a daemon: listen, tell systemd, reload on SIGHUP, drain on SIGTERM.

READY=1 goes out only once the port accepts connections; WATCHDOG=1 is sent from the event
loop itself, so a stuck loop is restarted by systemd; STOPPING=1 precedes the drain.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import signal
import socket
from collections.abc import Callable

from aiohttp import web

from corral.supervisor.app import create_app
from corral.supervisor.appkeys import (
    MANAGER,
    RELOADER,
    SECURITY,
    SETTINGS,
)
from corral.supervisor.daemon.runfile import RunFile, RunningServer
from corral.supervisor.daemon.sdnotify import Notifier, run_watchdog
from corral.supervisor.http.bad_http import ServingRunner
from corral.supervisor.settings import Settings

log = logging.getLogger("corral.server")

STATUS_INTERVAL = 2.0


class PortInUse(Exception):
    """The address is taken: the CLI prints this as one line, not a traceback."""

    def __init__(self, host: str, port: int) -> None:
        super().__init__(
            f"port {port} on {host} is already in use (another Corral, or another program); "
            "pick another with --port N (make serve PORT=N, or CORRAL_PORT=N), "
            "or --port 0 for any free port"
        )


def _bound_port(site: web.TCPSite) -> int:
    server = site._server
    sockets = getattr(server, "sockets", None) or []
    for sock in sockets:
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            return int(sock.getsockname()[1])
    return 0


def _status_line(app: web.Application) -> str:
    views = app[MANAGER].views.values()
    loaded = sum(1 for v in views if v.state == "loaded")
    in_flight = sum(v.in_flight for v in views)
    queued = sum(v.queued for v in views)
    return f"{loaded} models loaded, {in_flight} requests in flight, {queued} queued"


async def _report_status(app: web.Application, notifier: Notifier) -> None:
    last = ""
    while True:
        line = _status_line(app)
        if line != last:
            notifier.status(line)
            last = line
        await asyncio.sleep(STATUS_INTERVAL)


def reload_app(app: web.Application, fresh: Settings) -> None:
    """Swap in reloaded settings without dropping connections or unchanged models: each
    service applies what it can (`reloading.py`); the rest waits for a restart, with a warning."""
    app[RELOADER].reload(fresh)
    app[SECURITY].forget_cache()


async def serve(settings: Settings, reload_settings: Callable[[], Settings] | None = None) -> int:
    notifier = Notifier.from_env()
    app = create_app(settings)
    # handler_cancellation: a client that disconnects cancels its handler, which cancels the
    # generation in the child. The drain on SIGTERM is ours (ModelManager.drain); the
    # runner's shutdown_timeout only bounds handlers that are already ending. ServingRunner:
    # malformed HTTP is an OpenAI-shaped 400 and one info line (http/bad_http.py).
    runner = ServingRunner(
        app,
        handler_cancellation=True,
        shutdown_timeout=settings.child_stop_timeout,
        access_log=None,
        # aiohttp starts this timer when a connection opens and after each response, so it
        # bounds idle keep-alive connections and half-sent request headers alike (its
        # default is 3,630 s).
        keepalive_timeout=settings.http_idle_timeout,
    )
    await runner.setup()
    site = web.TCPSite(runner, settings.host, settings.port, reuse_address=True)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        if exc.errno == errno.EADDRINUSE:
            raise PortInUse(settings.host, settings.port) from None
        raise
    port = _bound_port(site)
    log.info("listening on http://%s:%d", settings.host, port)
    runfile = _announce(settings, port)
    notifier.ready(f"listening on {settings.host}:{port}")

    background = [asyncio.create_task(_report_status(app, notifier), name="sd-status")]
    if (interval := notifier.watchdog_interval()) is not None:
        background.append(asyncio.create_task(run_watchdog(notifier, interval), name="sd-watchdog"))

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    def on_hup() -> None:
        notifier.reloading()
        try:
            if reload_settings is not None:
                reload_app(app, reload_settings())
        except Exception as exc:  # a bad edit keeps the old settings; the daemon stays up
            log.error("reload failed, keeping the old settings: %s", exc)
        notifier.ready(_status_line(app))

    loop.add_signal_handler(signal.SIGHUP, on_hup)
    await stop.wait()
    notifier.stopping()
    grace = app[SETTINGS].current.shutdown_grace  # as reloaded
    log.info("shutting down: draining requests for up to %.0f s", grace)
    await site.stop()  # stop accepting; open connections carry on
    interrupted = await app[MANAGER].drain.drain(grace)
    if interrupted:
        log.warning("grace period over: %d generations were cut short", interrupted)
    # Handlers are finishing now; then the cleanup contexts finalise streams, stop children.
    await runner.cleanup()
    for task in background:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    runfile.remove()
    log.info("stopped")
    return 0


def _announce(settings: Settings, port: int) -> RunFile:
    """Tell CLI commands on this machine which data directory this server uses."""
    runfile = RunFile()
    host = f"[{settings.host}]" if ":" in settings.host else settings.host
    server = RunningServer(
        pid=os.getpid(),
        url=f"http://{host}:{port}",
        data_dir=str(settings.data_dir.resolve()),
        database=str(settings.resolved_database_path.resolve()),
    )
    try:
        runfile.write(server)
    except OSError as exc:  # only a convenience for the CLI: never a reason not to serve
        log.warning("could not write %s: %s", runfile.path, exc)
    return runfile
