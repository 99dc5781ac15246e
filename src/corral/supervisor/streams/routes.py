"""Routes to re-attach to, look up and stop resumable streams (llama.cpp server's routes).

The id is in the path (``/v1/stream/{id}``) or, as llama-server takes it, in the query
(``/v1/stream?conv_id={id}``); either way it may contain ``/`` (``conv/model``). A replay
answers in the framing its session was opened with: SSE, or NDJSON for an Ollama stream.
"""

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


def _stream_id(request: web.Request) -> str:
    raw = request.match_info.get("cid")
    if raw is None:
        raw = request.query.get("conv_id")
        if raw is None:
            raise BadRequest("name the stream: /v1/stream?conv_id=ID", param="conv_id")
    return conversation_id(raw)


async def reattach(request: web.Request) -> web.StreamResponse:
    streams = request.app[STREAMS]
    session = streams.get(_stream_id(request), owner_of(request))
    chunks = follow(session, _offset(request))  # offset errors are HTTP errors, before any byte
    return await send_sse(request, chunks, dict(session.framing.headers))


async def stop(request: web.Request) -> web.Response:
    await request.app[STREAMS].registry.stop(_stream_id(request), owner_of(request))
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
    for path in ("/v1/stream", "/v1/stream/{cid:.+}"):
        app.router.add_get(path, reattach)
        app.router.add_delete(path, stop)
    app.router.add_post("/v1/streams/lookup", lookup)
