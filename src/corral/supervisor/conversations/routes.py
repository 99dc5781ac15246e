"""``/api/conversations``: the web UI's conversations, each caller seeing only its own.

``GET /api/conversations?q=TEXT`` searches titles and message text instead (search.py).
``POST /api/attachments/pdf-text`` (the PDF's bytes) answers its text (pdf_text.py).
"""

from __future__ import annotations

from aiohttp import web

from corral.supervisor.appkeys import CONVERSATIONS, PRINCIPAL, STORE
from corral.supervisor.conversations.pdf_text import pdf_text
from corral.supervisor.conversations.search import ConversationSearch
from corral.supervisor.conversations.store import (
    ConversationPatch,
    NewConversation,
    owner_for,
)
from corral.supervisor.errors import BadRequest
from corral.supervisor.http.json_body import read_body

MAX_QUERY_CHARS = 500


def _owner(request: web.Request) -> str:
    return owner_for(request.get(PRINCIPAL))


async def list_conversations(request: web.Request) -> web.Response:
    query = request.query.get("q")
    if query is not None:
        if len(query) > MAX_QUERY_CHARS:
            raise BadRequest(f"q is at most {MAX_QUERY_CHARS} characters", param="q")
        hits = await ConversationSearch(request.app[STORE]).search(_owner(request), query)
        return web.json_response({"data": hits})
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


async def extract_pdf_text(request: web.Request) -> web.Response:
    return web.json_response(await pdf_text(await request.read()))


def setup(app: web.Application) -> None:
    app.router.add_get("/api/conversations", list_conversations)
    app.router.add_post("/api/conversations", create_conversation)
    app.router.add_get("/api/conversations/{cid}", get_conversation)
    app.router.add_patch("/api/conversations/{cid}", patch_conversation)
    app.router.add_delete("/api/conversations/{cid}", delete_conversation)
    app.router.add_post("/api/attachments/pdf-text", extract_pdf_text)
