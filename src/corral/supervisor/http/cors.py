"""CORS: off unless ``cors_origins`` names the browser origins allowed to call the API."""

from __future__ import annotations

from aiohttp import web
from aiohttp.typedefs import Handler

from corral.supervisor.appkeys import SETTINGS

_ALLOW_HEADERS = "Authorization, Content-Type, X-Api-Key, X-Conversation-Id, Last-Event-ID"
_ALLOW_METHODS = "GET, POST, PATCH, DELETE, OPTIONS"


@web.middleware
async def cors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    origin = request.headers.get("Origin")
    allowed = request.app[SETTINGS].current.cors_origins
    if origin is None or not allowed or (origin not in allowed and "*" not in allowed):
        return await handler(request)
    headers = {
        "Access-Control-Allow-Origin": origin,
        "Vary": "Origin",
        "Access-Control-Expose-Headers": "X-Conversation-Id, Retry-After",
    }
    if request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers:
        return web.Response(
            status=204,
            headers={
                **headers,
                "Access-Control-Allow-Methods": _ALLOW_METHODS,
                "Access-Control-Allow-Headers": _ALLOW_HEADERS,
                "Access-Control-Max-Age": "600",
            },
        )
    response = await handler(request)
    if not response.prepared:
        response.headers.update(headers)
    return response
