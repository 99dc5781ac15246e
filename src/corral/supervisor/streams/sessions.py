"""Resumable stream sessions: the pure core, with no HTTP in it.

A session holds the SSE bytes of one generation, keyed by the client's conversation id, in a
``RingBuffer``. The producer (the POST handler) appends bytes; any number of followers (the
``GET /v1/stream/{id}`` handlers) replay from an offset and then follow live bytes. The
registry owns the sessions: creation (replacing an older session of the same id), owner
isolation, the TTL sweep, the total memory cap and shutdown.

Everything here runs on the event loop thread; nothing is thread-safe by design.

Memory accounting (``SessionRegistry.usage``): a running session counts its full
``ring_capacity``, since it may grow to that at any moment; a finished session counts the
bytes it actually retains, since it can no longer grow. A new session is admitted only if
usage plus one more ``ring_capacity`` fits in ``total_capacity``, so the sum of retained bytes
can never pass ``total_capacity`` (ring storage overhead aside).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Literal, get_args

from corral.supervisor.streams.conversation_ids import (
    InvalidConversationId,
    validate_conversation_id,
    validate_stream_id,
)
from corral.supervisor.streams.framing import SSE, Framing
from corral.supervisor.streams.ring import (
    OffsetAhead,
    OffsetGone,
    RingBuffer,
    StreamOffsetError,
)

__all__ = [
    "Canceller",
    "InvalidConversationId",
    "OffsetAhead",
    "OffsetGone",
    "RegistryClosed",
    "SessionCapacityExceeded",
    "SessionClosed",
    "SessionInfo",
    "SessionOwnedByOther",
    "SessionRegistry",
    "SessionState",
    "StreamOffsetError",
    "StreamSession",
    "validate_conversation_id",
    "validate_stream_id",
]

log = logging.getLogger(__name__)

SessionState = Literal["running", "done", "cancelled", "failed"]
_FINAL_STATES: frozenset[str] = frozenset(get_args(SessionState)) - {"running"}

# Stops the generation that feeds a session; may be sync or async.
Canceller = Callable[[], Awaitable[None] | None]

DEFAULT_RING_CAPACITY = 4 << 20
DEFAULT_TOTAL_CAPACITY = 256 << 20
FOLLOW_CHUNK = 64 << 10  # bounds each copy handed to a follower


class SessionOwnedByOther(Exception):
    """A create for an id that another owner's session holds (the route answers 404/409)."""


class SessionCapacityExceeded(Exception):
    """Admitting one more session would pass the total memory cap (the route answers 503)."""


class SessionClosed(RuntimeError):
    """An append to a session that is already finished (cancelled, replaced, failed, done)."""


class RegistryClosed(RuntimeError):
    """A create after ``close_all``: the server is shutting down."""


@dataclass(frozen=True, slots=True)
class SessionInfo:
    conversation_id: str
    state: SessionState
    bytes: int  # end offset: bytes produced so far
    model: str
    created_at: float
    finished_at: float | None


class StreamSession:
    """One generation's bytes, with live followers. Create through ``SessionRegistry``."""

    def __init__(
        self,
        conversation_id: str,
        owner: str | None,
        model: str,
        *,
        ring_capacity: int = DEFAULT_RING_CAPACITY,
        clock: Callable[[], float] = time.monotonic,
        framing: Framing = SSE,
    ) -> None:
        self.conversation_id = conversation_id
        self.framing = framing
        self.owner = owner
        self.model = model
        self.ring = RingBuffer(ring_capacity)
        self.state: SessionState = "running"
        self._clock = clock
        self.created_at = clock()
        self.finished_at: float | None = None
        self._canceller: Canceller | None = None
        # Set-and-replace wake-up: followers at the end wait on the current event; any change
        # (append or finish) sets it and drops it, so the next wait gets a fresh one. Created
        # only when someone waits, so appends with no follower waiting allocate nothing.
        self._changed: asyncio.Event | None = None

    @property
    def finished(self) -> bool:
        return self.state != "running"

    @property
    def start(self) -> int:
        return self.ring.start

    @property
    def end(self) -> int:
        return self.ring.end

    def info(self) -> SessionInfo:
        return SessionInfo(
            self.conversation_id,
            self.state,
            self.ring.end,
            self.model,
            self.created_at,
            self.finished_at,
        )

    def set_canceller(self, fn: Canceller | None) -> None:
        """Install what stops the generation; called at most once, by ``cancel``."""
        self._canceller = fn

    def _wake(self) -> None:
        if self._changed is not None:
            self._changed.set()
            self._changed = None

    def append(self, data: bytes) -> int:
        """Store ``data`` and wake followers; returns the new end offset.

        Raises ``SessionClosed`` once the session is finished: a producer that was replaced or
        stopped must not add bytes after followers were told the stream ended.
        """
        if self.finished:
            raise SessionClosed(
                f"stream session {self.conversation_id!r} is {self.state}; append refused"
            )
        end = self.ring.append(data)
        if data:
            self._wake()
        return end

    def finish(self, state: SessionState = "done") -> bool:
        """Mark the session finished and wake followers; returns False if it already was."""
        if state not in _FINAL_STATES:
            raise ValueError(f"finish needs one of {sorted(_FINAL_STATES)}, got {state!r}")
        if self.finished:
            return False
        self.state = state
        self.finished_at = self._clock()
        self._wake()
        return True

    async def cancel(self, state: SessionState = "cancelled") -> bool:
        """Finish as ``state`` and call the canceller; returns False if already finished.

        The state changes before the canceller runs, so followers and appends see the end
        at once even when the canceller awaits. A canceller's error is logged, not raised:
        the session is finished either way, and stop/replace/shutdown must not fail midway.
        """
        if not self.finish(state):
            return False
        await self._run_canceller()
        return True

    async def _run_canceller(self) -> None:
        fn, self._canceller = self._canceller, None  # at most once, even if it fails
        if fn is None:
            return
        try:
            result = fn()
            if result is not None:
                await result
        except Exception:
            log.exception("canceller of stream session %r failed", self.conversation_id)

    def follow(self, offset: int, *, heartbeat: float | None = None) -> AsyncGenerator[bytes, None]:
        """Replay from ``offset``, then follow live bytes until the session finishes.

        This is a plain method, not an async generator, so that a bad offset raises
        ``OffsetGone``/``OffsetAhead`` right here, before anything is sent (400/416).

        It yields stored bytes in chunks of at most ``FOLLOW_CHUNK``, then live bytes, until
        the session is finished and every byte was delivered. A follower whose position drops
        off the ring gets ``OffsetGone`` from the iterator, never a gap (see ``replay``).

        With ``heartbeat``, an idle wait of that many seconds yields ``b""`` so the route can
        send a ``: ping`` comment; that comment is not part of the stream's bytes.
        """
        self.ring.check(offset)
        return self._follow(offset, heartbeat)

    async def _follow(self, pos: int, heartbeat: float | None) -> AsyncGenerator[bytes, None]:
        while True:
            # Raises OffsetGone if the producer overtook us by more than the capacity.
            chunk = self.ring.read(pos, FOLLOW_CHUNK)
            if chunk:
                pos += len(chunk)
                yield chunk
                continue
            if self.finished:
                return
            # No await between the read above and taking the event: no wake-up can be lost.
            if self._changed is None:
                self._changed = asyncio.Event()
            changed = self._changed
            if heartbeat is None:
                await changed.wait()
                continue
            try:
                # Cancelling Event.wait on timeout is harmless; the iterator itself goes on.
                async with asyncio.timeout(heartbeat):
                    await changed.wait()
            except TimeoutError:
                yield b""


class SessionRegistry:
    """All live sessions, by conversation id. See the module docstring for the memory rule."""

    def __init__(
        self,
        ring_capacity: int = DEFAULT_RING_CAPACITY,
        total_capacity: int = DEFAULT_TOTAL_CAPACITY,
        ttl: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if ring_capacity < 1:
            raise ValueError(f"ring_capacity must be at least 1, got {ring_capacity}")
        if total_capacity < ring_capacity:
            raise ValueError(
                f"total_capacity ({total_capacity}) must be at least ring_capacity "
                f"({ring_capacity}), or no session could ever start"
            )
        self.ring_capacity = ring_capacity
        self.total_capacity = total_capacity
        self.ttl = ttl
        self._clock = clock
        self._sessions: dict[str, StreamSession] = {}
        self._closed = False

    def resize(self, ring_capacity: int, total_capacity: int, ttl: float) -> None:
        """New bounds (a reload): new streams get the new ring, the total and TTL apply at the
        next admission and sweep; running streams keep the ring they started with."""
        if total_capacity < ring_capacity:
            raise ValueError("stream_total_bytes must be at least stream_buffer_bytes")
        self.ring_capacity, self.total_capacity, self.ttl = ring_capacity, total_capacity, ttl

    def __len__(self) -> int:
        return len(self._sessions)

    def cost(self, session: StreamSession) -> int:
        return session.ring.retained if session.finished else session.ring.capacity

    def owned_by(self, owner: str | None) -> list[StreamSession]:
        return [s for s in self._sessions.values() if s.owner == owner]

    def forget(self, session: StreamSession) -> None:  # a finished one, before its TTL
        self._sessions.pop(session.conversation_id, None)

    def usage(self) -> int:
        """Accounted bytes: ``ring_capacity`` per running session, retained bytes otherwise."""
        return sum(self.cost(s) for s in self._sessions.values())

    def _expired(self, session: StreamSession, now: float) -> bool:
        return session.finished_at is not None and now - session.finished_at >= self.ttl

    def _find(self, conversation_id: str, owner: str | None) -> StreamSession | None:
        validate_stream_id(conversation_id)
        session = self._sessions.get(conversation_id)
        if session is None or session.owner != owner:
            return None  # another owner's session is indistinguishable from none
        # Expired but not yet swept counts as gone, so the TTL does not depend on sweep timing.
        if self._expired(session, self._clock()):
            del self._sessions[conversation_id]
            return None
        return session

    async def create(
        self, conversation_id: str, owner: str | None, model: str, framing: Framing = SSE
    ) -> StreamSession:
        """Start a session, cancelling and replacing this owner's older one of the same id.

        Raises ``InvalidConversationId``, ``SessionOwnedByOther`` (the id is held by another
        owner's session, finished or not), ``SessionCapacityExceeded`` or ``RegistryClosed``.
        The new session is registered before the old one's canceller is awaited, so a
        concurrent create or lookup never sees a gap.
        """
        validate_stream_id(conversation_id)
        if self._closed:
            raise RegistryClosed("the stream registry is shut down")
        self.sweep()  # expired sessions must not hold memory against a newcomer
        old = self._sessions.get(conversation_id)
        if old is not None and old.owner != owner:
            raise SessionOwnedByOther(
                f"conversation id {conversation_id!r} is in use by another owner"
            )
        used = self.usage() - (self.cost(old) if old is not None else 0)
        if used + self.ring_capacity > self.total_capacity:
            raise SessionCapacityExceeded(
                f"stream sessions use {used} of {self.total_capacity} bytes; a new one "
                f"reserves {self.ring_capacity}"
            )
        session = StreamSession(
            conversation_id,
            owner,
            model,
            ring_capacity=self.ring_capacity,
            clock=self._clock,
            framing=framing,
        )
        self._sessions[conversation_id] = session
        if old is not None:
            await old.cancel()
        return session

    def get(self, conversation_id: str, owner: str | None) -> StreamSession | None:
        """The owner's session with this id, or None (unknown, expired or someone else's)."""
        return self._find(conversation_id, owner)

    def lookup(self, ids: Iterable[str], owner: str | None) -> list[SessionInfo]:
        """Info for each named id that has a session of this owner, in the order given.

        Every id is validated first (``InvalidConversationId``); duplicates are reported once.
        """
        wanted = list(dict.fromkeys(ids))
        for conversation_id in wanted:
            validate_stream_id(conversation_id)
        found = (self._find(conversation_id, owner) for conversation_id in wanted)
        return [s.info() for s in found if s is not None]

    async def stop(self, conversation_id: str, owner: str | None) -> bool:
        """Cancel the owner's session; returns whether it exists. Idempotent.

        The session stays registered as ``cancelled`` until the TTL sweep, so a lookup tells
        what happened and the bytes already produced can still be replayed.
        """
        session = self._find(conversation_id, owner)
        if session is None:
            return False
        await session.cancel()
        return True

    def sweep(self) -> int:
        """Drop sessions finished at least ``ttl`` ago; running ones are never dropped."""
        now = self._clock()
        expired = [cid for cid, s in self._sessions.items() if self._expired(s, now)]
        for conversation_id in expired:
            del self._sessions[conversation_id]
        return len(expired)

    async def close_all(self, state: SessionState = "cancelled") -> int:
        """Shutdown: finish every running session as ``state`` and call its canceller.

        Followers then drain what is stored and end; later creates raise ``RegistryClosed``.
        Returns how many sessions were running.
        """
        self._closed = True
        running = [s for s in self._sessions.values() if not s.finished]
        # Finish them all first, so no follower waits on a canceller that is slow to return.
        for session in running:
            session.finish(state)
        await asyncio.gather(*(s._run_canceller() for s in running))
        return len(running)
