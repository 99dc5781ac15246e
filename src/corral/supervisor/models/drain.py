"""The shutdown drain: the generations running over HTTP, and how to end them at shutdown."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Protocol


class Interruptible(Protocol):
    async def interrupt(self) -> None: ...


class Drain:
    """Tracks running generations; at shutdown, lets them finish for a grace period and then
    interrupts the rest, so each ends like a finished one (a final chunk and ``[DONE]``) and
    no client sees a cut connection."""

    def __init__(self) -> None:
        self._running: set[Interruptible] = set()
        self._idle = asyncio.Event()
        self._idle.set()

    def track(self, generation: Interruptible) -> None:
        self._running.add(generation)
        self._idle.clear()

    def untrack(self, generation: Interruptible) -> None:
        self._running.discard(generation)
        if not self._running:
            self._idle.set()

    @property
    def running(self) -> int:
        return len(self._running)

    async def drain(self, grace: float) -> int:
        """Wait up to ``grace`` seconds for the running generations, then interrupt the rest;
        returns how many were interrupted."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(grace):
                await self._idle.wait()
        left = list(self._running)
        await asyncio.gather(*(g.interrupt() for g in left), return_exceptions=True)
        return len(left)
