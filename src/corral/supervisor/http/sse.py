"""What every SSE response shares, and who owns a request's resources."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator

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


async def send_sse(
    request: web.Request, chunks: AsyncGenerator[bytes, None], headers: dict[str, str] | None = None
) -> web.StreamResponse:
    """Stream ``chunks`` as an SSE response; a client that leaves ends it quietly.

    The generator is closed either way, so whatever it holds (a generation, a session
    follower) is released.
    """
    response = web.StreamResponse(headers={**SSE_HEADERS, **(headers or {})})
    async with contextlib.aclosing(chunks):
        await response.prepare(request)
        with contextlib.suppress(ConnectionResetError):
            async for chunk in chunks:
                await response.write(chunk)
            await response.write_eof()
    return response
