"""``/health`` for probes, and ``/admin/server``: what the supervisor and its children are doing."""

from __future__ import annotations

import time
from typing import Any

import psutil
from aiohttp import web

from corral.supervisor.appkeys import MANAGER, STARTED_AT
from corral.supervisor.daemon.version import corral_version


def _process_usage(pid: int | None) -> tuple[int | None, float | None]:
    if pid is None:
        return None, None
    try:
        proc = psutil.Process(pid)
        with proc.oneshot():
            # cpu_percent over no interval compares with the previous call on this object;
            # a fresh object gives the average since the process started, which is honest.
            times = proc.cpu_times()
            age = max(time.time() - proc.create_time(), 1e-3)
            return proc.memory_info().rss, round(100 * (times.user + times.system) / age, 1)
    except psutil.Error:
        return None, None


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


async def server_info(request: web.Request) -> web.Response:
    manager = request.app[MANAGER]
    children: list[dict[str, Any]] = []
    for model_id, child in manager.children().items():
        memory, cpu = _process_usage(child.pid if child.alive else None)
        view = manager.views.get(model_id)
        children.append(
            {
                "model": model_id,
                "pid": child.pid,
                "state": view.state if view is not None else "unknown",
                "memory_bytes": memory,
                "cpu_percent": cpu,
            }
        )
    return web.json_response(
        {
            "version": corral_version(),
            "uptime_s": round(time.monotonic() - request.app[STARTED_AT], 3),
            "queue_depth": sum(v.queued for v in manager.views.values()),
            "supervisor": {
                "pid": psutil.Process().pid,
                "memory_bytes": psutil.Process().memory_info().rss,
            },
            "children": children,
        }
    )


def setup(app: web.Application) -> None:
    app.router.add_get("/health", health)
    app.router.add_get("/admin/server", server_info)
