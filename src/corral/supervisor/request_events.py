"""The frames of one request waiting for their reader, in bounded memory.

The child's reader task must never wait for one slow HTTP client (it serves every request of
that model), so frames are queued per request. A client that stops reading used to leave one
``Delta`` object per token queued, some 320 bytes each, without limit. Here consecutive deltas
that nobody has read yet are merged into one pending piece of text, so a stalled reader costs
the text itself (a few bytes per token); past ``max_pending_chars`` the request is given up:
its reader gets an error and the caller cancels it in the child.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import TYPE_CHECKING, TypeAlias

from corral.protocol.messages import Delta, Error

if TYPE_CHECKING:
    from corral.supervisor.child_process import RequestEvent

    Event: TypeAlias = RequestEvent

# Far above any answer's text (32768 tokens are ~200 KB): only a reader stalled for good meets it.
MAX_PENDING_CHARS = 4 << 20


class _Pending:
    """Deltas of one choice not yet read, kept as their text parts (and logprobs)."""

    __slots__ = (
        "calls",
        "finish_reason",
        "index",
        "logprobs",
        "parts",
        "request_id",
        "stop_sequence",
        "tokens",
    )

    def __init__(self, delta: Delta) -> None:
        self.request_id = delta.request_id
        self.parts = [delta.text]
        self.tokens = delta.tokens
        self.index = delta.index
        self.logprobs = list(delta.logprobs)
        self.calls = list(delta.tool_calls)
        self.finish_reason = delta.finish_reason
        self.stop_sequence = delta.stop_sequence

    def merges(self, delta: Delta) -> bool:
        """Only text of the same choice merges, and nothing after the choice's end."""
        return delta.index == self.index and self.finish_reason is None

    def add(self, delta: Delta) -> None:
        self.parts.append(delta.text)
        self.tokens += delta.tokens
        self.logprobs.extend(delta.logprobs)
        self.calls.extend(delta.tool_calls)
        self.finish_reason = delta.finish_reason
        self.stop_sequence = delta.stop_sequence

    def take(self) -> Delta:
        return Delta(
            request_id=self.request_id,
            text="".join(self.parts),
            tokens=self.tokens,
            index=self.index,
            logprobs=tuple(self.logprobs),
            finish_reason=self.finish_reason,
            stop_sequence=self.stop_sequence,
            tool_calls=tuple(self.calls),
        )


class RequestEvents:
    def __init__(self, max_pending_chars: int = MAX_PENDING_CHARS) -> None:
        self._items: deque[Event | _Pending] = deque()
        self._changed = asyncio.Event()
        self._pending_chars = 0
        self.max_pending_chars = max_pending_chars
        self.overrun = False

    def put(self, event: Event) -> bool:
        """Queue ``event``; False once the unread text is over the limit (the reader is then
        told, and every later frame is dropped)."""
        if self.overrun:
            return False
        if isinstance(event, Delta):
            self._pending_chars += len(event.text)
            if self._pending_chars > self.max_pending_chars:
                self.overrun = True
                self._items.clear()
                self._pending_chars = 0
                self._items.append(
                    Error(
                        request_id=event.request_id,
                        code="client_too_slow",
                        message="the client stopped reading the response; the request was "
                        f"given up after {self.max_pending_chars} unread characters",
                    )
                )
                self._changed.set()
                return False
            tail = self._items[-1] if self._items else None
            if isinstance(tail, _Pending) and tail.merges(event):
                tail.add(event)
                return True
            self._items.append(_Pending(event))
        else:
            self._items.append(event)
        self._changed.set()
        return True

    async def get(self) -> Event:
        while not self._items:
            self._changed.clear()
            await self._changed.wait()
        item = self._items.popleft()
        if isinstance(item, _Pending):
            self._pending_chars -= sum(len(p) for p in item.parts)
            return item.take()
        return item
