"""What every SSE response shares, and who owns a request's resources."""

from __future__ import annotations

from aiohttp import web

from corral.supervisor.appkeys import PRINCIPAL

SSE_HEADERS = {
    "Content-Type": "text/event-stream; charset=utf-8",
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",
}


def owner_of(request: web.Request) -> str | None:
    """The key or user a stream session belongs to; everyone is one owner while auth is off."""
    principal = request.get(PRINCIPAL)
    if principal is None or principal.kind == "anonymous":
        return None
    return f"{principal.kind}:{principal.name}"
