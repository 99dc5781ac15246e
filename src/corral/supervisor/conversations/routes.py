"""``/api/conversations``: the web UI's conversations, each caller seeing only its own."""

from __future__ import annotations

from aiohttp import web

from corral.supervisor.appkeys import CONVERSATIONS, PRINCIPAL
from corral.supervisor.conversations.store import (
    ConversationPatch,
    NewConversation,
    owner_for,
)
from corral.supervisor.openai.schemas import parse_body


def _owner(request: web.Request) -> str:
    return owner_for(request.get(PRINCIPAL))


async def list_conversations(request: web.Request) -> web.Response:
    data = await request.app[CONVERSATIONS].summaries(_owner(request))
    return web.json_response({"data": data})


async def create_conversation(request: web.Request) -> web.Response:
    body = parse_body(NewConversation, await request.read())
    created = await request.app[CONVERSATIONS].create(_owner(request), body)
    return web.json_response(created, status=201)


async def get_conversation(request: web.Request) -> web.Response:
    cid = request.match_info["cid"]
    return web.json_response(await request.app[CONVERSATIONS].get(_owner(request), cid))


async def patch_conversation(request: web.Request) -> web.Response:
    body = parse_body(ConversationPatch, await request.read())
    cid = request.match_info["cid"]
    return web.json_response(await request.app[CONVERSATIONS].update(_owner(request), cid, body))


async def delete_conversation(request: web.Request) -> web.Response:
    await request.app[CONVERSATIONS].delete(_owner(request), request.match_info["cid"])
    return web.Response(status=204)


def setup(app: web.Application) -> None:
    app.router.add_get("/api/conversations", list_conversations)
    app.router.add_post("/api/conversations", create_conversation)
    app.router.add_get("/api/conversations/{cid}", get_conversation)
    app.router.add_patch("/api/conversations/{cid}", patch_conversation)
    app.router.add_delete("/api/conversations/{cid}", delete_conversation)
