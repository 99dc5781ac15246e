"""``/api/conversations``: the web UI's conversations, each caller seeing only its own."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from corral.supervisor.appkeys import CONVERSATIONS, PRINCIPAL, STORE
from corral.supervisor.conversations.store import (
    ConversationPatch,
    Conversations,
    Limits,
    NewConversation,
    owner_for,
)
from corral.supervisor.http.json_body import read_body


def _owner(request: web.Request) -> str:
    return owner_for(request.get(PRINCIPAL))


async def list_conversations(request: web.Request) -> web.Response:
    data = await request.app[CONVERSATIONS].summaries(_owner(request))
    return web.json_response({"data": data})


async def create_conversation(request: web.Request) -> web.Response:
    body = await read_body(request, NewConversation)
    created = await request.app[CONVERSATIONS].create(_owner(request), body)
    return web.json_response(created, status=201)


async def get_conversation(request: web.Request) -> web.Response:
    cid = request.match_info["cid"]
    return web.json_response(await request.app[CONVERSATIONS].get(_owner(request), cid))


async def patch_conversation(request: web.Request) -> web.Response:
    body = await read_body(request, ConversationPatch)
    cid = request.match_info["cid"]
    return web.json_response(await request.app[CONVERSATIONS].update(_owner(request), cid, body))


async def delete_conversation(request: web.Request) -> web.Response:
    await request.app[CONVERSATIONS].delete(_owner(request), request.match_info["cid"])
    return web.Response(status=204)


def setup(app: web.Application, limits: Limits | None = None) -> None:
    """Add the routes; the service is built at start-up, after the store is open."""

    async def service(app: web.Application) -> AsyncIterator[None]:
        app[CONVERSATIONS] = Conversations(app[STORE], limits)
        yield

    app.cleanup_ctx.append(service)
    app.router.add_get("/api/conversations", list_conversations)
    app.router.add_post("/api/conversations", create_conversation)
    app.router.add_get("/api/conversations/{cid}", get_conversation)
    app.router.add_patch("/api/conversations/{cid}", patch_conversation)
    app.router.add_delete("/api/conversations/{cid}", delete_conversation)
