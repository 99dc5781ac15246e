"""The resumable-stream producer: event ids, and cleanup when cancelled before it starts."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator

from corral.supervisor.streams.framing import with_event_id
from corral.supervisor.streams.resumable import Streams
from corral.supervisor.streams.sessions import SessionRegistry


def test_event_id_is_the_offset_after_the_event_itself() -> None:
    event = b'data: {"x":1}\n\n'
    for start in (0, 7, 90, 95, 99_990, 10**9 - 20):
        framed = with_event_id(event, start)
        end = int(framed.split(b"\n", 1)[0].removeprefix(b"id: "))
        assert end == start + len(framed)
        assert framed.endswith(event)


class FakeGeneration:
    def __init__(self) -> None:
        self.done = None
        self.closed = 0

    async def start(self) -> None:
        """The model is ready at once (the producer waits for it since issue 16)."""

    async def close(self) -> None:
        self.closed += 1


async def test_producer_cancelled_before_its_first_step_still_closes_the_generation() -> None:
    streams = Streams(SessionRegistry())
    session = await streams.registry.create("c1", None, "m")
    generation = FakeGeneration()

    async def body() -> AsyncGenerator[bytes, None]:
        yield b"data: never\n\n"

    streams.start(session, generation, body())  # type: ignore[arg-type]
    await session.cancel()  # before the producer task ever ran
    for _ in range(5):
        await asyncio.sleep(0)
    assert generation.closed == 1
    assert session.state == "cancelled"
    assert session.end == 0
    await streams.close()


async def test_producer_appends_ids_and_finishes_done() -> None:
    streams = Streams(SessionRegistry())
    session = await streams.registry.create("c2", None, "m")
    generation = FakeGeneration()

    async def body() -> AsyncGenerator[bytes, None]:
        yield b"data: a\n\n"
        yield b": ping\n\n"
        generation.done = object()  # type: ignore[assignment]
        yield b"data: [DONE]\n\n"

    streams.start(session, generation, body())  # type: ignore[arg-type]
    chunks = [c async for c in session.follow(0)]
    data = b"".join(chunks)
    assert data == b"id: 16\ndata: a\n\n: ping\n\nid: 45\ndata: [DONE]\n\n"
    assert data.endswith(b"data: [DONE]\n\n")
    assert session.state == "done"
    assert generation.closed == 1
    await streams.close()
