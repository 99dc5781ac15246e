"""Routes to re-attach to, look up and stop resumable streams (llama.cpp server's routes)."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import BaseModel, Field

from corral.supervisor.appkeys import STREAMS
from corral.supervisor.errors import BadRequest
from corral.supervisor.http.json_body import read_body
from corral.supervisor.http.sse import owner_of, send_sse
from corral.supervisor.streams.resumable import conversation_id, follow

MAX_LOOKUP_IDS = 256


class LookupRequest(BaseModel):
    conversation_ids: list[str] = Field(max_length=MAX_LOOKUP_IDS)


def _offset(request: web.Request) -> int:
    raw = request.query.get("from", request.headers.get("Last-Event-ID", "0"))
    try:
        return int(raw)
    except ValueError:
        raise BadRequest("'from' is a byte offset (a whole number)", param="from") from None


async def reattach(request: web.Request) -> web.StreamResponse:
    streams = request.app[STREAMS]
    session = streams.get(conversation_id(request.match_info["cid"]), owner_of(request))
    chunks = follow(session, _offset(request))  # offset errors are HTTP errors, before any byte
    return await send_sse(request, chunks)


async def stop(request: web.Request) -> web.Response:
    cid = conversation_id(request.match_info["cid"])
    await request.app[STREAMS].registry.stop(cid, owner_of(request))
    return web.Response(status=204)


async def lookup(request: web.Request) -> web.Response:
    body = await read_body(request, LookupRequest)
    ids = [conversation_id(cid) for cid in body.conversation_ids]
    infos = request.app[STREAMS].registry.lookup(ids, owner_of(request))
    data: list[dict[str, Any]] = [
        {"conversation_id": i.conversation_id, "state": i.state, "bytes": i.bytes, "model": i.model}
        for i in infos
    ]
    return web.json_response({"data": data})


def setup(app: web.Application) -> None:
    app.router.add_get("/v1/stream/{cid}", reattach)
    app.router.add_delete("/v1/stream/{cid}", stop)
    app.router.add_post("/v1/streams/lookup", lookup)
