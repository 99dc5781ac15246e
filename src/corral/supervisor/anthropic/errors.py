"""Errors on Anthropic's routes in Anthropic's shape: ``{"type": "error", "error": {...}}``.

A middleware rather than a try in the handler, so that what fails before the handler (a
missing key, a forged origin, an oversized body) is said in the same shape. It sits inside
the OpenAI error middleware and renders only ``CorralError`` and HTTP errors on these paths;
anything else stays a logged 500 there.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler

from corral.supervisor.errors import CorralError

PATH = "/v1/messages"
# Anthropic's error types by HTTP status; 5xx are api_error, 503/529 overloaded.
_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    503: "overloaded_error",
    529: "overloaded_error",
}


def error_type(status: int) -> str:
    if status in _TYPES:
        return _TYPES[status]
    return "invalid_request_error" if status < 500 else "api_error"


def error_body(exc: CorralError) -> dict[str, Any]:
    """Anthropic's error, with OpenAI's ``param`` and ``code`` beside its ``type`` and
    ``message``: Anthropic's clients read what they know, and the field is still named."""
    error = {"type": error_type(exc.status), "message": exc.message}
    return {"type": "error", "error": {**error, "param": exc.param, "code": exc.code}}


def is_anthropic_path(path: str) -> bool:
    return path == PATH or path.startswith(PATH + "/")


@web.middleware
async def anthropic_errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if not is_anthropic_path(request.path):
        return await handler(request)
    try:
        return await handler(request)
    except CorralError as exc:
        return error_json(exc)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        error = CorralError(exc.reason if exc.status != 404 else "no such route")
        error.status = exc.status
        return error_json(error)


def error_json(exc: CorralError) -> web.Response:
    headers = dict(exc.headers)  # WWW-Authenticate, Retry-After
    if exc.status == 429:
        headers.setdefault("Retry-After", "1")
    return web.json_response(error_body(exc), status=exc.status, headers=headers)
