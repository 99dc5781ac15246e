"""What every SSE response shares, and who owns a request's resources."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncGenerator

from aiohttp import web

from corral.supervisor.appkeys import FACTS, PRINCIPAL
from corral.supervisor.errors import CorralError

DONE_EVENT = b"data: [DONE]\n\n"
SSE_HEADERS = {
    "Content-Type": "text/event-stream; charset=utf-8",
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",
}


def sse_error(exc: CorralError) -> bytes:
    """An error as an SSE event, for a stream whose status line has already been sent."""
    return b"data: " + json.dumps(exc.body(), separators=(",", ":")).encode() + b"\n\n"


def owner_of(request: web.Request) -> str | None:
    """The key or user a stream session belongs to; everyone is one owner while auth is off."""
    principal = request.get(PRINCIPAL)
    if principal is None or principal.kind == "anonymous":
        return None
    owner: str = principal.owner
    return owner


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
        try:
            try:
                async for chunk in chunks:
                    await response.write(chunk)
            except CorralError as exc:
                # After the status line, an error can only be an event: never a JSON body
                # that the error middleware would write into the middle of the stream.
                await response.write(sse_error(exc) + DONE_EVENT)
            await response.write_eof()
        except ConnectionResetError:
            facts = request.get(FACTS)
            if facts is not None:
                facts.client_closed = True  # recorded as 499, not as a finished 200
    return response
