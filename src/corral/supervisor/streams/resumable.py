"""Resumable generations: the streamed body goes into a session that outlives the client.

A producer task owns the generation and appends every byte of the response body to the
conversation's session, framed as its dialect asks (``framing``: SSE events each with an
``id:`` that is the byte offset after it, or NDJSON lines as they are). Clients, the
original one included, are only followers of that session, so a disconnect ends a
follower, never the generation.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass, field

from corral.supervisor.errors import (
    BadRequest,
    Conflict,
    CorralError,
    NotFound,
    RangeNotSatisfiable,
    ServiceUnavailable,
)
from corral.supervisor.models.generation import Generation
from corral.supervisor.streams.framing import FramingName, framing_named
from corral.supervisor.streams.quota import OwnerQuota
from corral.supervisor.streams.replay import replay
from corral.supervisor.streams.ring import OffsetAhead, OffsetGone, StreamOffsetError
from corral.supervisor.streams.sessions import (
    InvalidConversationId,
    RegistryClosed,
    SessionCapacityExceeded,
    SessionClosed,
    SessionOwnedByOther,
    SessionRegistry,
    SessionState,
    StreamSession,
    validate_stream_id,
)

log = logging.getLogger("corral.streams")


def conversation_id(raw: str) -> str:
    try:
        return validate_stream_id(raw)
    except InvalidConversationId as exc:
        raise BadRequest(f"conversation id: {exc}", code="invalid_conversation_id") from None


def cache_key(raw: str | None) -> str | None:
    """The conversation id as the child's KV cache key. Only a hint: an invalid one is no key
    (the resumable path, which needs a valid id, reports it)."""
    try:
        return None if raw is None else validate_stream_id(raw)
    except InvalidConversationId:
        return None


def follow(session: StreamSession, offset: int) -> AsyncGenerator[bytes, None]:
    """Start following ``session`` at ``offset``; offset errors are raised here, before any byte."""
    try:
        return replay(session, session.follow(offset))
    except OffsetGone as exc:
        raise BadRequest(str(exc), param="from", code="offset_gone") from None
    except OffsetAhead as exc:
        raise RangeNotSatisfiable(str(exc), param="from") from None
    except StreamOffsetError as exc:
        raise BadRequest(str(exc), param="from", code="invalid_offset") from None


def _stopped_before_start() -> Conflict:
    return Conflict(
        "the generation was stopped (or replaced) before its model was ready",
        code="stream_stopped",
    )


def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()


@dataclass
class Streams:
    """The registry plus the producer tasks it runs; one per application."""

    registry: SessionRegistry
    quota: OwnerQuota | None = None
    _producers: set[asyncio.Task[None]] = field(default_factory=set)

    async def open(
        self, cid: str, owner: str | None, model: str, framing: FramingName = "sse"
    ) -> StreamSession:
        if self.quota is not None:
            self.quota.admit(cid, owner)
        try:
            return await self.registry.create(cid, owner, model, framing_named(framing))
        except SessionOwnedByOther:
            # As for every other route: another owner's session is indistinguishable from
            # none. A 409 told a caller that the id exists.
            raise NotFound(f"no stream for conversation '{cid}' may be started here") from None
        except SessionCapacityExceeded:
            raise ServiceUnavailable(
                "too many resumable streams are buffered; try again shortly",
                code="stream_capacity",
                headers={"Retry-After": "5"},
            ) from None
        except RegistryClosed:
            raise ServiceUnavailable("the server is shutting down") from None

    def start(
        self,
        session: StreamSession,
        generation: Generation,
        body: AsyncGenerator[bytes, None],
        on_end: Callable[[SessionState], Awaitable[object]] | None = None,
    ) -> asyncio.Future[None]:
        """Run the generation for ``session`` in a task of its own, from the wait for its model
        on: a client that leaves while the model loads (a reload, a phone switching apps) must
        not take the generation with it. The future resolves once the model has started the
        generation, or holds the error that kept it from starting, for the POST to answer."""
        started: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        # Read the outcome even when no POST waits for it any more: no "never retrieved" noise.
        started.add_done_callback(lambda f: f.cancelled() or f.exception())
        task = asyncio.create_task(
            self._produce(session, generation, body, started, on_end),
            name=f"stream:{session.conversation_id}",
        )
        # A task cancelled before its first step never runs its body, so its ``finally`` would
        # not close the generation: the done callback does it then.
        task.add_done_callback(lambda t: self._closed_unstarted(t, session, generation, started))
        self._producers.add(task)
        task.add_done_callback(self._producers.discard)
        session.set_canceller(lambda: _cancel(task))
        return started

    def _closed_unstarted(
        self,
        task: asyncio.Task[None],
        session: StreamSession,
        generation: Generation,
        started: asyncio.Future[None],
    ) -> None:
        if not started.done():
            started.set_exception(_stopped_before_start())
        if task.cancelled() and generation.done is None:
            session.finish("cancelled")
            closing = asyncio.create_task(generation.close())  # idempotent if it ran
            self._producers.add(closing)
            closing.add_done_callback(self._producers.discard)

    async def _produce(
        self,
        session: StreamSession,
        generation: Generation,
        body: AsyncGenerator[bytes, None],
        started: asyncio.Future[None],
        on_end: Callable[[SessionState], Awaitable[object]] | None = None,
    ) -> None:
        state: SessionState = "failed"
        try:
            try:
                await generation.start()
            except CorralError as exc:
                started.set_exception(exc)
                # A reader that re-attaches learns why, as the POST did from its status.
                for event in session.framing.error(exc):
                    session.append(session.framing.stored(event, session.end))
                await body.aclose()
                return
            started.set_result(None)
            async with contextlib.aclosing(body):
                async for chunk in body:
                    session.append(session.framing.stored(chunk, session.end))
            state = "done" if generation.done is not None else "failed"
        except asyncio.CancelledError:
            state = "cancelled"
            if not started.done():
                started.set_exception(_stopped_before_start())
        except SessionClosed:
            return  # replaced, stopped or shut down: the session is final already
        except CorralError as exc:
            log.warning("stream %s failed: %s", session.conversation_id, exc.message)
        finally:
            # Final before the generation's cleanup awaits the child: a reader that has just
            # read the last event and asks for the session must find it ended.
            session.finish(state)
            await generation.close()
            if on_end is not None:
                await on_end(session.state)  # after finish: readers are not kept waiting

    def get(self, cid: str, owner: str | None) -> StreamSession:
        session = self.registry.get(cid, owner)
        if session is None:
            raise NotFound(f"no stream for conversation '{cid}' (unknown or expired)")
        return session

    async def close(self) -> None:
        await self.registry.close_all()
        for task in list(self._producers):
            task.cancel()
        await asyncio.gather(*self._producers, return_exceptions=True)
