"""What a follower of a session receives: the stored bytes, then an honest end.

The ring holds the response body as the generation wrote it. A generation that was stopped or
failed never wrote its ``[DONE]``, and a reader that fell further behind than the ring holds
cannot be given the bytes it missed. Either way the reader is told so in the stream itself,
in the session's framing (an SSE error event and ``[DONE]``, or an NDJSON ``{"error": ...}``
line), since its status line went out long ago: an empty 200, or a JSON error body written
into an event stream, tells a client nothing it can act on.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator

from corral.supervisor.errors import CorralError, ServiceUnavailable
from corral.supervisor.streams.ring import OffsetGone
from corral.supervisor.streams.sessions import StreamSession


class StreamStopped(CorralError):
    status = 499
    type = "invalid_request_error"
    code = "stream_stopped"


def ending_for(session: StreamSession) -> CorralError | None:
    """The error a reader is told at the end of a session that did not finish its answer."""
    if session.state == "cancelled":
        return StreamStopped("the generation was stopped before it finished")
    if session.state == "failed":
        return ServiceUnavailable(
            "the generation failed before it finished; send the request again",
            code="stream_failed",
        )
    return None


async def replay(
    session: StreamSession, chunks: AsyncGenerator[bytes, None]
) -> AsyncGenerator[bytes, None]:
    """``chunks`` (from ``session.follow``), with an error where the answer is cut short."""
    framing = session.framing
    tail = b""
    async with contextlib.aclosing(chunks):
        try:
            async for chunk in chunks:
                if chunk:
                    tail = framing.tail(tail, chunk)
                yield chunk
        except OffsetGone:
            gone = CorralError(
                "this reader fell further behind than the stream buffer holds; look the "
                "stream up and re-attach, or send the request again",
                code="offset_gone",
            )
            for event in framing.error(gone):
                yield event
            return
    if not framing.ended(tail) and (error := ending_for(session)) is not None:
        for event in framing.error(error):
            yield event
