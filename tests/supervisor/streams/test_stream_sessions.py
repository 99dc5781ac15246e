"""Resumable stream sessions and their registry, without HTTP.

No test sleeps to order events. A follower runs in a task that pushes each chunk onto a
queue; when the test's ``await queue.get()`` returns, the follower has already run on to its
next suspension point, which (with nothing more buffered) is the wait for new bytes.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass, field
from typing import TypeVar

import pytest

from corral.supervisor.streams.sessions import (
    InvalidConversationId,
    OffsetAhead,
    OffsetGone,
    RegistryClosed,
    SessionCapacityExceeded,
    SessionClosed,
    SessionInfo,
    SessionOwnedByOther,
    SessionRegistry,
    StreamSession,
    validate_conversation_id,
)

T = TypeVar("T")
GUARD = 5.0  # a bug fails the test instead of hanging it; never used to order events
_END = object()


async def guarded(aw: Awaitable[T]) -> T:
    return await asyncio.wait_for(aw, GUARD)


@dataclass
class FakeClock:
    now: float = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Follower:
    """Drains ``session.follow(offset)`` in a task; chunks arrive on ``queue``."""

    iterator: AsyncIterator[bytes]
    queue: asyncio.Queue[bytes | object] = field(default_factory=asyncio.Queue)
    received: bytearray = field(default_factory=bytearray)
    task: asyncio.Task[None] | None = None

    def start(self) -> Follower:
        self.task = asyncio.ensure_future(self._run())
        return self

    async def _run(self) -> None:
        async for chunk in self.iterator:
            self.received += chunk
            self.queue.put_nowait(chunk)
        self.queue.put_nowait(_END)

    async def next_chunk(self) -> bytes:
        item = await guarded(self.queue.get())
        assert isinstance(item, bytes), "follower ended early"
        return item

    async def finished(self) -> bytes:
        assert self.task is not None
        await guarded(self.task)
        return bytes(self.received)


def follow(session: StreamSession, offset: int) -> Follower:
    return Follower(session.follow(offset)).start()


async def collect(session: StreamSession, offset: int = 0) -> bytes:
    return b"".join([chunk async for chunk in session.follow(offset)])


def make_session(capacity: int = 1024) -> StreamSession:
    return StreamSession("c1", None, "m", ring_capacity=capacity, clock=FakeClock())


# -- conversation ids ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "value", ["a", "A-z_0.9:x", "0" * 128, "550e8400-e29b-41d4-a716-446655440000"]
)
def test_valid_conversation_ids(value: str) -> None:
    assert validate_conversation_id(value) == value


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", "must not be empty"),
        ("x" * 129, "129 characters"),
        ("a/b", "only ASCII letters"),
        ("a b", "only ASCII letters"),
        ("caf\u00e9", "only ASCII letters"),
        ("\u0661\u0662", "only ASCII letters"),  # Arabic-Indic digits are not [0-9]
        ("abc\n", "only ASCII letters"),
        ("../etc", "only ASCII letters"),
    ],
)
def test_invalid_conversation_ids(value: str, message: str) -> None:
    with pytest.raises(InvalidConversationId, match=message):
        validate_conversation_id(value)


# -- a single session ---------------------------------------------------------------------


async def test_follow_from_zero_after_the_end_gives_every_byte() -> None:
    session = make_session()
    session.append(b"data: 1\n\n")
    session.append(b"data: 2\n\n")
    session.finish()
    assert await guarded(collect(session)) == b"data: 1\n\ndata: 2\n\n"
    assert await guarded(collect(session, session.end)) == b""


async def test_follow_from_zero_during_generation_gives_every_byte() -> None:
    session = make_session()
    session.append(b"first ")
    reader = follow(session, 0)
    assert await reader.next_chunk() == b"first "
    session.append(b"second ")
    assert await reader.next_chunk() == b"second "
    session.append(b"third")
    session.finish()
    assert await reader.finished() == b"first second third"


async def test_follow_from_a_middle_offset() -> None:
    session = make_session()
    session.append(b"0123456789")
    reader = follow(session, 4)
    assert await reader.next_chunk() == b"456789"
    session.append(b"ab")
    session.finish()
    assert await reader.finished() == b"456789ab"


async def test_stored_bytes_come_in_bounded_chunks() -> None:
    session = make_session(capacity=300_000)
    payload = bytes(range(256)) * 1000
    session.append(payload)
    session.finish()
    chunks = [c async for c in session.follow(0)]
    assert b"".join(chunks) == payload
    assert max(map(len, chunks)) <= 64 * 1024


async def test_two_followers_at_once() -> None:
    session = make_session()
    session.append(b"a")
    one, two = follow(session, 0), follow(session, 0)
    assert await one.next_chunk() == b"a"
    assert await two.next_chunk() == b"a"
    session.append(b"b")
    assert await one.next_chunk() == b"b"
    assert await two.next_chunk() == b"b"
    session.finish("done")
    assert await one.finished() == await two.finished() == b"ab"


async def test_blocked_follower_is_woken_by_append() -> None:
    session = make_session()
    reader = follow(session, 0)
    session.append(b"x")
    assert await reader.next_chunk() == b"x"
    # The follower has nothing left to read: it is parked on the wake-up event.
    assert session._changed is not None
    assert not reader.queue.qsize()
    session.append(b"y")
    assert await reader.next_chunk() == b"y"
    session.finish()
    assert await reader.finished() == b"xy"


async def test_finish_wakes_blocked_followers() -> None:
    session = make_session()
    session.append(b"x")
    readers = [follow(session, 0), follow(session, 1)]
    assert await readers[0].next_chunk() == b"x"
    assert session._changed is not None
    session.finish("failed")
    assert [await r.finished() for r in readers] == [b"x", b""]
    assert session.state == "failed"


async def test_bad_offsets_raise_before_anything_is_yielded() -> None:
    session = make_session(capacity=4)
    session.append(b"abcdef")  # start 2, end 6
    with pytest.raises(OffsetGone, match="offsets 2 to 6 are available"):
        session.follow(1)
    with pytest.raises(OffsetAhead):
        session.follow(7)


async def test_overflow_old_offset_gone_live_tail_still_followable() -> None:
    session = make_session(capacity=8)
    session.append(b"0123456789")
    with pytest.raises(OffsetGone):
        session.follow(0)
    tail = follow(session, session.start)
    assert await tail.next_chunk() == b"23456789"
    session.append(b"ab")
    session.finish()
    assert await tail.finished() == b"23456789ab"


async def test_follower_that_falls_off_the_ring_gets_offset_gone_not_a_gap() -> None:
    session = make_session(capacity=8)
    session.append(b"abc")
    reader = follow(session, 0)
    assert await reader.next_chunk() == b"abc"
    session.append(b"0123456789")  # position 3 is overwritten before the follower reads it
    assert reader.task is not None
    with pytest.raises(OffsetGone):
        await guarded(reader.task)
    assert bytes(reader.received) == b"abc"


async def test_finish_is_idempotent_and_refuses_later_appends() -> None:
    clock = FakeClock()
    session = StreamSession("c", "k", "m", clock=clock)
    assert session.finish("done") is True
    clock.now += 5
    assert session.finish("failed") is False
    assert (session.state, session.finished_at) == ("done", 1000.0)
    with pytest.raises(SessionClosed, match="done"):
        session.append(b"late")
    with pytest.raises(ValueError, match="finish needs"):
        make_session().finish("running")


async def test_cancel_marks_cancelled_before_an_async_canceller_returns() -> None:
    session = make_session()
    release = asyncio.Event()
    calls: list[str] = []

    async def canceller() -> None:
        calls.append(session.state)
        await release.wait()

    session.set_canceller(canceller)
    cancelling = asyncio.ensure_future(session.cancel())
    reader = follow(session, 0)
    assert await reader.finished() == b""  # ended while the canceller is still waiting
    release.set()
    assert await guarded(cancelling) is True
    assert calls == ["cancelled"]
    assert await session.cancel() is False
    assert calls == ["cancelled"]


async def test_heartbeat_yields_empty_chunk_when_idle() -> None:
    session = make_session()
    it = session.follow(0, heartbeat=0.001)
    assert await guarded(anext(it)) == b""  # idle: a ping slot, not stream bytes
    session.append(b"z")
    assert await guarded(anext(it)) == b"z"
    session.finish()
    with pytest.raises(StopAsyncIteration):
        await guarded(anext(it))


# -- the registry -------------------------------------------------------------------------


async def test_create_get_and_lookup() -> None:
    clock = FakeClock()
    reg = SessionRegistry(ring_capacity=64, total_capacity=1024, clock=clock)
    session = await reg.create("c1", "alice", "llama")
    session.append(b"12345")
    assert reg.get("c1", "alice") is session
    assert reg.get("nope", "alice") is None
    assert reg.lookup(["nope", "c1", "c1"], "alice") == [
        SessionInfo("c1", "running", 5, "llama", 1000.0, None)
    ]
    with pytest.raises(InvalidConversationId):
        reg.lookup(["c1", "bad id"], "alice")
    with pytest.raises(InvalidConversationId):
        reg.get("", "alice")


async def test_owner_isolation() -> None:
    reg = SessionRegistry(ring_capacity=64, total_capacity=1024)
    mine = await reg.create("c1", "alice", "m")
    assert reg.get("c1", "bob") is None
    assert reg.get("c1", None) is None
    assert reg.lookup(["c1"], "bob") == []
    assert await reg.stop("c1", "bob") is False
    assert mine.state == "running"
    with pytest.raises(SessionOwnedByOther):
        await reg.create("c1", "bob", "m")
    assert reg.get("c1", "alice") is mine
    mine.finish()
    with pytest.raises(SessionOwnedByOther):  # finished but not expired: still alice's
        await reg.create("c1", "bob", "m")


async def test_replace_cancels_old_session_and_ends_its_followers() -> None:
    reg = SessionRegistry(ring_capacity=64, total_capacity=1024)
    old = await reg.create("c1", "alice", "m")
    cancelled = asyncio.Event()
    old.set_canceller(cancelled.set)
    old.append(b"old")
    reader = follow(old, 0)
    assert await reader.next_chunk() == b"old"
    new = await reg.create("c1", "alice", "m2")
    assert cancelled.is_set()
    assert old.state == "cancelled"
    assert await reader.finished() == b"old"
    assert reg.get("c1", "alice") is new
    assert (new.state, new.end) == ("running", 0)
    with pytest.raises(SessionClosed):
        old.append(b"late bytes from the old producer")


async def test_stop_is_idempotent() -> None:
    reg = SessionRegistry(ring_capacity=64, total_capacity=1024)
    calls: list[int] = []
    session = await reg.create("c1", None, "m")
    session.set_canceller(lambda: calls.append(1))
    session.append(b"abc")
    reader = follow(session, 0)
    assert await reader.next_chunk() == b"abc"
    assert await reg.stop("c1", None) is True
    assert await reader.finished() == b"abc"
    assert await reg.stop("c1", None) is True
    assert calls == [1]
    assert reg.lookup(["c1"], None)[0].state == "cancelled"
    assert await collect(session) == b"abc"  # still replayable until the TTL
    assert await reg.stop("other", None) is False


async def test_failing_canceller_still_cancels() -> None:
    reg = SessionRegistry(ring_capacity=64, total_capacity=1024)
    session = await reg.create("c1", None, "m")

    def boom() -> None:
        raise RuntimeError("child is gone")

    session.set_canceller(boom)
    assert await reg.stop("c1", None) is True
    assert session.state == "cancelled"


async def test_sweep_drops_old_finished_sessions_and_keeps_running_ones() -> None:
    clock = FakeClock()
    reg = SessionRegistry(ring_capacity=64, total_capacity=1024, ttl=300.0, clock=clock)
    running = await reg.create("run", None, "m")
    early = await reg.create("early", None, "m")
    late = await reg.create("late", None, "m")
    early.finish()
    clock.now += 100
    late.finish("failed")
    clock.now += 199.5
    assert reg.sweep() == 0
    clock.now += 0.5  # early finished exactly ttl ago
    assert reg.sweep() == 1
    assert reg.get("early", None) is None
    assert reg.get("late", None) is late
    clock.now += 10_000
    assert reg.sweep() == 1
    assert reg.sweep() == 0
    assert reg.get("run", None) is running
    assert len(reg) == 1


async def test_expired_session_is_gone_before_the_sweep_runs() -> None:
    clock = FakeClock()
    reg = SessionRegistry(ring_capacity=64, total_capacity=1024, ttl=10.0, clock=clock)
    session = await reg.create("c1", "alice", "m")
    session.finish()
    clock.now += 10
    assert reg.get("c1", "alice") is None
    assert reg.lookup(["c1"], "alice") == []
    # Once expired, the id is free again, for another owner too.
    assert (await reg.create("c1", "bob", "m")).owner == "bob"


async def test_capacity_refusal_and_accounting() -> None:
    reg = SessionRegistry(ring_capacity=10, total_capacity=25)
    a = await reg.create("a", None, "m")
    await reg.create("b", None, "m")
    assert reg.usage() == 20  # each running session reserves its whole ring
    with pytest.raises(SessionCapacityExceeded, match="20 of 25"):
        await reg.create("c", None, "m")
    # Replacing does not need room for both the old and the new session.
    a = await reg.create("a", None, "m")
    a.append(b"xyz")
    a.finish()
    assert reg.usage() == 13  # a finished session counts only what it retains
    await reg.create("c", None, "m")
    assert reg.usage() == 23


async def test_capacity_frees_expired_sessions_first() -> None:
    clock = FakeClock()
    reg = SessionRegistry(ring_capacity=10, total_capacity=10, ttl=1.0, clock=clock)
    first = await reg.create("a", None, "m")
    first.append(b"0123456789")
    first.finish()
    with pytest.raises(SessionCapacityExceeded):
        await reg.create("b", None, "m")
    clock.now += 1
    await reg.create("b", None, "m")


def test_registry_rejects_inconsistent_capacities() -> None:
    with pytest.raises(ValueError, match="total_capacity"):
        SessionRegistry(ring_capacity=10, total_capacity=5)
    with pytest.raises(ValueError, match="ring_capacity"):
        SessionRegistry(ring_capacity=0)


async def test_close_all_finalises_everything_and_refuses_new_sessions() -> None:
    reg = SessionRegistry(ring_capacity=64, total_capacity=1024)
    running = await reg.create("r", None, "m")
    done = await reg.create("d", None, "m")
    done.finish()
    calls: list[str] = []

    async def canceller() -> None:
        calls.append("r")

    running.set_canceller(canceller)
    done.set_canceller(lambda: calls.append("d"))
    running.append(b"partial")
    reader = follow(running, 0)
    assert await reader.next_chunk() == b"partial"
    assert await reg.close_all() == 1
    assert await reader.finished() == b"partial"
    assert (running.state, done.state) == ("cancelled", "done")
    assert calls == ["r"]
    with pytest.raises(RegistryClosed):
        await reg.create("new", None, "m")


async def test_close_all_with_another_state() -> None:
    reg = SessionRegistry(ring_capacity=64, total_capacity=1024)
    session = await reg.create("r", None, "m")
    await reg.close_all(state="failed")
    assert session.state == "failed"
