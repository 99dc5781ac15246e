"""CORS: off unless ``cors_origins`` names the browser origins allowed to call the API.

A preflight reflects the request headers the browser asks for when each one is in the allowed
set or starts with an allowed prefix: the official OpenAI and Anthropic JavaScript SDKs send a
family of ``x-stainless-*`` headers (one more with each release) besides their own, and a
fixed list would break the next SDK version. The CORS headers of an actual response are added
when it is prepared, so streamed (SSE) responses, which a handler prepares itself, carry them
as well as plain and error responses.
"""

from __future__ import annotations

from aiohttp import web
from aiohttp.typedefs import Handler

from corral.supervisor.appkeys import SETTINGS

_ALLOWED_HEADERS = frozenset(
    {
        "accept",
        "authorization",
        "content-type",
        "last-event-id",
        "x-api-key",
        "x-conversation-id",
        "idempotency-key",
        "openai-organization",
        "openai-project",
        "openai-beta",
        "anthropic-version",
        "anthropic-beta",
        "anthropic-dangerous-direct-browser-access",
    }
)
_ALLOWED_PREFIXES = ("x-stainless-",)
_ALLOW_METHODS = "GET, POST, PATCH, DELETE, OPTIONS"
_EXPOSE_HEADERS = "X-Conversation-Id, Retry-After"


def _allowed_origin(request: web.Request) -> str | None:
    origin = request.headers.get("Origin")
    allowed = request.app[SETTINGS].current.cors_origins
    if origin is None or not allowed or (origin not in allowed and "*" not in allowed):
        return None
    return origin


def allowed_request_headers(requested: str) -> str:
    """The headers of ``Access-Control-Request-Headers`` that Corral lets a browser send."""
    names = (name.strip().lower() for name in requested.split(","))
    kept = [
        name
        for name in names
        if name in _ALLOWED_HEADERS or (name.startswith(_ALLOWED_PREFIXES) and _is_token(name))
    ]
    return ", ".join(dict.fromkeys(kept))


def _is_token(name: str) -> bool:
    return all(char.isalnum() or char in "-_" for char in name) and name.isascii()


def _add_vary(response: web.StreamResponse, *names: str) -> None:
    present = [v.strip() for v in response.headers.get("Vary", "").split(",") if v.strip()]
    lowered = {v.lower() for v in present}
    present += [name for name in names if name.lower() not in lowered]
    response.headers["Vary"] = ", ".join(present)


@web.middleware
async def cors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Answer preflights from allowed origins; everything else goes on to the routes."""
    origin = _allowed_origin(request)
    if (
        origin is None
        or request.method != "OPTIONS"
        or "Access-Control-Request-Method" not in request.headers
    ):
        return await handler(request)
    headers = {
        "Access-Control-Allow-Origin": origin,
        "Access-Control-Allow-Methods": _ALLOW_METHODS,
        "Access-Control-Max-Age": "600",
    }
    requested = allowed_request_headers(request.headers.get("Access-Control-Request-Headers", ""))
    if requested:
        headers["Access-Control-Allow-Headers"] = requested
    return web.Response(status=204, headers=headers)


async def add_cors_headers(request: web.Request, response: web.StreamResponse) -> None:
    """``on_response_prepare``: the CORS headers of an actual (not preflight) response."""
    if not request.app[SETTINGS].current.cors_origins:
        return
    # With CORS on, every answer depends on the Origin (and a preflight on what it asks
    # for), so a shared cache must not hand one origin's answer to another.
    if request.method == "OPTIONS":
        _add_vary(
            response, "Origin", "Access-Control-Request-Method", "Access-Control-Request-Headers"
        )
    else:
        _add_vary(response, "Origin")
    origin = _allowed_origin(request)
    if origin is None or "Access-Control-Allow-Methods" in response.headers:
        return
    response.headers["Access-Control-Allow-Origin"] = origin
    response.headers["Access-Control-Expose-Headers"] = _EXPOSE_HEADERS
