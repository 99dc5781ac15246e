"""``POST /v1/messages`` and ``/v1/messages/count_tokens``: Anthropic's Messages API, run as
any chat generation is."""

from __future__ import annotations

from aiohttp import web

from corral.supervisor.anthropic.render import ANTHROPIC, COUNT
from corral.supervisor.anthropic.schemas import CountTokensRequest, MessagesRequest
from corral.supervisor.anthropic.translate import to_chat_request
from corral.supervisor.http.json_body import read_body
from corral.supervisor.openai.routes import respond


async def messages(request: web.Request) -> web.StreamResponse:
    body = await read_body(request, MessagesRequest)
    return await respond(request, "chat", to_chat_request(body), ANTHROPIC)


async def count_tokens(request: web.Request) -> web.StreamResponse:
    body = await read_body(request, CountTokensRequest)
    return await respond(request, "chat", to_chat_request(body.as_message()), COUNT)


def setup(app: web.Application) -> None:
    app.router.add_post("/v1/messages", messages)
    app.router.add_post("/v1/messages/count_tokens", count_tokens)
