"""The shelf routes: ``/api/version``, ``/api/tags``, ``/api/ps``, ``/api/show``, ``/api/pull``,
``/api/delete``, and the model-building routes Corral refuses (``create``, ``copy``, ``push``)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler

from corral.supervisor.appkeys import CATALOG, DOWNLOADS, MANAGER
from corral.supervisor.daemon.version import corral_version
from corral.supervisor.errors import BadRequest, CorralError
from corral.supervisor.http.json_body import read_body
from corral.supervisor.http.sse import send_sse
from corral.supervisor.models.shelf import ModelAdmin
from corral.supervisor.ollama import models, pulls
from corral.supervisor.ollama.options import refuse
from corral.supervisor.ollama.render import NDJSON, line
from corral.supervisor.ollama.schemas import DeleteBody, PullBody, ShowBody
from corral.supervisor.ollama.show import show as show_model


async def version(request: web.Request) -> web.Response:
    return web.json_response({"version": corral_version()})


async def tags(request: web.Request) -> web.Response:
    return web.json_response(models.tags(request))


async def ps(request: web.Request) -> web.Response:
    return web.json_response(models.running(request))


async def show(request: web.Request) -> web.Response:
    body = await read_body(request, ShowBody)
    if body.verbose:
        raise refuse("verbose", "the vocabulary and merges are not read; leave verbose out")
    entry = models.resolve(request, body.target())
    return web.json_response(await show_model(request, entry))


async def _ndjson(items: AsyncGenerator[dict[str, Any], None]) -> AsyncGenerator[bytes, None]:
    async with contextlib.aclosing(items):
        try:
            async for item in items:
                yield line(item)
        except CorralError as exc:
            yield line({"error": exc.message})


async def pull(request: web.Request) -> web.StreamResponse:
    pulls.require_admin(request)
    body = await read_body(request, PullBody)
    if body.insecure:
        raise refuse("insecure", "the hub is always reached over HTTPS; leave insecure out")
    name = body.target()
    if name is None:
        raise BadRequest("name the model to pull", param="model")
    repo, quant = pulls.reference(name)
    downloads = request.app[DOWNLOADS]
    job = await downloads.pull(repo, quant=quant)  # planned here: a bad name is an HTTP error
    if not body.stream:
        return web.json_response(await pulls.finished(downloads, job.id))
    return await send_sse(request, _ndjson(pulls.progress(downloads, job.id)), NDJSON)


async def delete(request: web.Request) -> web.Response:
    pulls.require_admin(request)
    body = await read_body(request, DeleteBody)
    entry = models.resolve(request, body.target())
    app = request.app
    await ModelAdmin(app[CATALOG], app[MANAGER], app[DOWNLOADS]).delete(entry.id, force=False)
    return web.Response(status=200)  # Ollama answers a delete with an empty 200


def refused(why: str) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        raise BadRequest(why, code="unsupported")

    return handler


CREATE = (
    "Corral does not build models from Modelfiles: put a GGUF file into the models directory, "
    "or pull one, and set its parameters in a preset of Corral's config"
)
COPY = "Corral does not copy models: name the same file in a preset of Corral's config instead"
PUSH = "Corral does not push models to a registry"
