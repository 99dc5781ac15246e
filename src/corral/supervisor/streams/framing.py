"""How a session's bytes are framed, chosen by the dialect that opened it.

SSE (OpenAI, Anthropic, Responses): each stored event carries an ``id:`` line that is the byte
offset after it, idle ``: ping`` comments are stored as they are, and an error or an end the
answer never reached is an error event followed by ``[DONE]``. NDJSON (Ollama): the lines are
stored untouched, so the offset after any line end is a resume point (``?from=N``); there are
no comments to ping with, and an error is an ``{"error": "..."}`` line, as Ollama writes one.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from corral.supervisor.errors import CorralError
from corral.supervisor.http.sse import DONE_EVENT, sse_error
from corral.supervisor.openai.format import PING

FramingName = Literal["sse", "ndjson"]

_ID_LINE_OVERHEAD = len(b"id: \n")


def with_event_id(event: bytes, offset: int) -> bytes:
    """Prefix ``event`` (which starts at ``offset``) with ``id: <offset after the event>``.

    The id line is part of the event, so its own length counts; the digits are solved for.
    """
    digits = len(str(offset + len(event) + _ID_LINE_OVERHEAD))
    while True:
        end = offset + _ID_LINE_OVERHEAD + digits + len(event)
        if len(str(end)) == digits:
            return b"id: %d\n" % end + event
        digits += 1


@dataclass(frozen=True)
class Framing:
    name: FramingName
    headers: Mapping[str, str]
    """What a replay's response adds to the SSE headers (its Content-Type)."""

    def stored(self, chunk: bytes, offset: int) -> bytes:
        """``chunk`` of the body as the session keeps it, when it starts at ``offset``."""
        if self.name == "ndjson" or chunk == PING:
            return chunk
        return with_event_id(chunk, offset)

    def error(self, exc: CorralError) -> tuple[bytes, ...]:
        """The stream's last words for ``exc``: what a client of this framing reads as an error
        that ends the stream."""
        if self.name == "ndjson":
            return (_ndjson_line({"error": exc.message}),)
        return sse_error(exc), DONE_EVENT

    def tail(self, tail: bytes, chunk: bytes) -> bytes:
        """What ``ended`` needs of the stream so far, ``tail`` before ``chunk`` arrived: the
        last chunk for SSE (whose end, ``[DONE]``, is written in one piece), the last line
        for NDJSON, however many chunks it spans."""
        if self.name == "sse":
            return chunk
        joined = tail + chunk
        return joined[joined.rfind(b"\n", 0, len(joined) - 1) + 1 :]

    def ended(self, tail: bytes) -> bool:
        """Whether a stream whose ``tail`` is this wrote its own end (a final answer or an
        error), so that a replay adds none."""
        if self.name == "sse":
            return tail.endswith(DONE_EVENT)
        if not tail.endswith(b"\n"):
            return False
        try:
            obj = json.loads(tail)
        except ValueError:
            return False
        return isinstance(obj, dict) and (obj.get("done") is True or "error" in obj)


def _ndjson_line(obj: dict[str, str]) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"


SSE = Framing("sse", {})
NDJSON = Framing("ndjson", {"Content-Type": "application/x-ndjson"})


def framing_named(name: FramingName) -> Framing:
    return NDJSON if name == "ndjson" else SSE
