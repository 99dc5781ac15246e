"""One publisher, many subscribers, none of them able to block it.

``publish`` never waits: each subscriber has a bounded queue, and one that falls that far
behind is cut off (``Lagged``) instead of holding memory or slowing everyone down; an SSE
client then reconnects and starts again from a fresh snapshot.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from typing import Generic, TypeVar

T = TypeVar("T")


class Lagged(Exception):
    """The subscriber fell too far behind and missed items."""


class Subscription(Generic[T]):
    def __init__(self, limit: int) -> None:
        self._queue: asyncio.Queue[T] = asyncio.Queue(limit)
        self.lagged = False

    def _offer(self, item: T) -> None:
        try:
            self._queue.put_nowait(item)
        except asyncio.QueueFull:
            self.lagged = True

    async def get(self) -> T:
        if self.lagged and self._queue.empty():
            raise Lagged()
        return await self._queue.get()

    def drain(self) -> list[T]:
        """Everything queued now, without waiting."""
        items: list[T] = []
        while not self._queue.empty():
            items.append(self._queue.get_nowait())
        return items


class Broadcast(Generic[T]):
    def __init__(self, limit: int = 1024) -> None:
        self._limit = limit
        self._subscribers: set[Subscription[T]] = set()

    def publish(self, item: T) -> None:
        for subscriber in list(self._subscribers):
            subscriber._offer(item)
            if subscriber.lagged:
                self._subscribers.discard(subscriber)

    @contextlib.contextmanager
    def subscribe(self) -> Iterator[Subscription[T]]:
        subscription: Subscription[T] = Subscription(self._limit)
        self._subscribers.add(subscription)
        try:
            yield subscription
        finally:
            self._subscribers.discard(subscription)
