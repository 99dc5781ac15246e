"""Ollama's error shape, ``{"error": "message"}``, on Ollama's routes.

Errors are raised and rendered once, the OpenAI way, by the app's error middleware (the
origin check, auth, bad bodies, a model that fails); this middleware, just outside it,
rewrites the rendered body for Ollama's routes and keeps the status and headers (Retry-After,
WWW-Authenticate). Ollama's clients read ``error`` as a string: an OpenAI error object there
would reach their users as a dict's repr. The field the error is about is named in the text.
"""

from __future__ import annotations

import json
from collections.abc import Collection

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from corral.supervisor.http.errors import errors_middleware

_BODY_HEADERS = frozenset({"content-type", "content-length"})


def message_of(error: dict[str, object]) -> str:
    message = str(error.get("message") or "error")
    param = error.get("param")
    if isinstance(param, str) and param and param not in message:
        message = f"{message} ({param})"
    return message


def ollama_errors(paths: Collection[str]) -> Middleware:
    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        response = await handler(request)
        if (
            request.path not in paths
            or response.status < 400
            or not isinstance(response, web.Response)
            or not isinstance(response.body, bytes)
        ):
            return response
        try:
            error = json.loads(response.body).get("error")
        except (ValueError, AttributeError):
            return response
        if not isinstance(error, dict):
            return response
        headers = {k: v for k, v in response.headers.items() if k.lower() not in _BODY_HEADERS}
        return web.json_response(
            {"error": message_of(error)}, status=response.status, headers=headers
        )

    return middleware


def install(app: web.Application, paths: Collection[str]) -> None:
    """Just outside the error middleware: every error it renders passes through here, and
    CORS (further out) still sees the rewritten response."""
    middlewares = app.middlewares
    middlewares.insert(middlewares.index(errors_middleware), ollama_errors(paths))
