"""``POST /v1/responses``: OpenAI's Responses API, stateless, run as any chat generation is."""

from __future__ import annotations

from aiohttp import web

from corral.supervisor.http.json_body import read_body
from corral.supervisor.openai.routes import respond
from corral.supervisor.responses.events import dialect_for
from corral.supervisor.responses.schemas import ResponsesRequest
from corral.supervisor.responses.translate import to_chat_request


async def responses(request: web.Request) -> web.StreamResponse:
    body = await read_body(request, ResponsesRequest)
    return await respond(request, "chat", to_chat_request(body), dialect_for(body))


def setup(app: web.Application) -> None:
    app.router.add_post("/v1/responses", responses)
