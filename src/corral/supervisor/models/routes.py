"""``/admin/*`` for models and downloads: thin handlers over ModelAdmin and DownloadManager.

Auth is the app's middleware's business (admin key, or loopback while no keys exist).

    GET  /admin/models                      every model (state, size, memory, keep-alive...)
    POST /admin/models/pull                 {repo, revision?, files?, include?, quant?} -> 202
    POST /admin/models/cancel               {job}
    POST /admin/models/load | unload        {model}
    POST /admin/models/delete               {model, force?}
    GET  /admin/downloads                   every job
    POST /admin/downloads/resume            {job} -> 202
    GET  /admin/events                      SSE: the current state, then every change
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncGenerator
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from corral.supervisor.appkeys import CATALOG, DOWNLOADS, MANAGER, SETTINGS, SHUTTING_DOWN
from corral.supervisor.http.json_body import read_body
from corral.supervisor.http.sse import send_sse
from corral.supervisor.models.events import Event, event_stream
from corral.supervisor.models.shelf import ModelAdmin

MAX_NAMES = 1000


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PullBody(_Body):
    repo: str = Field(min_length=1, max_length=256)
    revision: str | None = Field(default=None, min_length=1, max_length=256)
    files: list[str] = Field(default=[], max_length=MAX_NAMES)
    include: list[str] = Field(default=[], max_length=MAX_NAMES)
    # One model's files by quantisation tag (Q4_K_M) or file stem; "*" picks the default.
    quant: str | None = Field(default=None, min_length=1, max_length=256)


class JobBody(_Body):
    job: str = Field(min_length=1, max_length=128)


class ModelBody(_Body):
    model: str = Field(min_length=1, max_length=256)


class DeleteBody(ModelBody):
    force: bool = False


def _admin(request: web.Request) -> ModelAdmin:
    app = request.app
    return ModelAdmin(app[CATALOG], app[MANAGER], app[DOWNLOADS])


async def list_models(request: web.Request) -> web.Response:
    return web.json_response({"object": "list", "data": _admin(request).items()})


async def pull(request: web.Request) -> web.Response:
    body = await read_body(request, PullBody)
    job = await request.app[DOWNLOADS].pull(
        body.repo, body.revision, tuple(body.files), tuple(body.include), body.quant
    )
    return web.json_response(job.event(), status=202)


async def cancel(request: web.Request) -> web.Response:
    body = await read_body(request, JobBody)
    return web.json_response((await request.app[DOWNLOADS].cancel(body.job)).event())


async def resume(request: web.Request) -> web.Response:
    body = await read_body(request, JobBody)
    return web.json_response((await request.app[DOWNLOADS].resume(body.job)).event(), status=202)


async def load(request: web.Request) -> web.Response:
    body = await read_body(request, ModelBody)
    return web.json_response(await _admin(request).load(body.model), status=202)


async def unload(request: web.Request) -> web.Response:
    body = await read_body(request, ModelBody)
    return web.json_response(await _admin(request).unload(body.model))


async def delete(request: web.Request) -> web.Response:
    body = await read_body(request, DeleteBody)
    return web.json_response(await _admin(request).delete(body.model, force=body.force))


async def list_downloads(request: web.Request) -> web.Response:
    jobs = request.app[DOWNLOADS].jobs()
    return web.json_response({"object": "list", "data": [job.event() for job in jobs]})


def _sse(event: str, data: Any) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


async def _encoded(events: AsyncGenerator[Event, None]) -> AsyncGenerator[bytes, None]:
    async with contextlib.aclosing(events):
        async for name, data in events:
            yield b": ping\n\n" if name is None else _sse(name, data)


async def events(request: web.Request) -> web.StreamResponse:
    app = request.app
    stream = event_stream(
        _admin(request),
        app[SHUTTING_DOWN],
        ping_interval=app[SETTINGS].current.sse_ping_interval,
    )
    return await send_sse(request, _encoded(stream))


def setup(app: web.Application) -> None:
    app.router.add_get("/admin/models", list_models)
    app.router.add_post("/admin/models/pull", pull)
    app.router.add_post("/admin/models/cancel", cancel)
    app.router.add_post("/admin/models/load", load)
    app.router.add_post("/admin/models/unload", unload)
    app.router.add_post("/admin/models/delete", delete)
    app.router.add_get("/admin/downloads", list_downloads)
    app.router.add_post("/admin/downloads/resume", resume)
    app.router.add_get("/admin/events", events)
