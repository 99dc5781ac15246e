"""JSON-lines framing: one message per ``\\n``-terminated line, bounded in size.

The splitter is shared by both ends: the supervisor feeds it from an asyncio stream, the
child from a blocking file. A bad line never stops the reader: it becomes a ``ProtocolError``
that names the request it belonged to, when that can be recovered, and reading goes on with
the next line.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pydantic import BaseModel, TypeAdapter, ValidationError

MAX_FRAME_BYTES = 1 << 20  # a token delta is tiny; 1 MiB leaves room for long prompts

T = TypeVar("T")


class ProtocolError(Exception):
    """A frame that could not be decoded. ``request_id`` is set when the frame named one."""

    def __init__(self, message: str, request_id: str | None = None) -> None:
        super().__init__(message)
        self.request_id = request_id


def encode(message: BaseModel) -> bytes:
    line = message.model_dump_json(exclude_none=True).encode() + b"\n"
    if len(line) > MAX_FRAME_BYTES:
        raise ProtocolError(f"frame of {len(line)} bytes exceeds {MAX_FRAME_BYTES}")
    return line


def _request_id_of(line: bytes) -> str | None:
    try:
        raw: Any = json.loads(line)
    except ValueError:
        return None
    if isinstance(raw, dict):
        rid = raw.get("request_id", raw.get("job_id"))
        if isinstance(rid, str):
            return rid
    return None


def decode(adapter: TypeAdapter[T], line: bytes) -> T:
    """Parse one line (without its newline) into a message of ``adapter``'s union."""
    try:
        return adapter.validate_json(line)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "frame"
        raise ProtocolError(
            f"invalid frame: {where}: {first['msg']}", _request_id_of(line)
        ) from None


@dataclass
class LineSplitter:
    """Splits a byte stream into lines, replacing any line over ``max_bytes`` by an error."""

    max_bytes: int = MAX_FRAME_BYTES
    _buffer: bytearray = field(default_factory=bytearray)
    _discarding: bool = False

    def feed(self, data: bytes) -> Iterator[bytes | ProtocolError]:
        self._buffer += data
        while True:
            newline = self._buffer.find(b"\n")
            if newline < 0:
                if len(self._buffer) > self.max_bytes and not self._discarding:
                    self._discarding = True
                    yield ProtocolError(f"frame exceeds {self.max_bytes} bytes; dropped")
                if self._discarding:
                    self._buffer.clear()
                return
            line = bytes(self._buffer[:newline])
            del self._buffer[: newline + 1]
            if self._discarding:
                self._discarding = False  # the tail of an oversized frame ends here
                continue
            if len(line) > self.max_bytes:
                yield ProtocolError(
                    f"frame of {len(line)} bytes exceeds {self.max_bytes}; dropped",
                    _request_id_of(line),
                )
            elif line.strip():
                yield line

    @property
    def pending(self) -> int:
        return len(self._buffer)
