"""A session's framing: what is stored for an event, and how a replay ends a cut-short answer
(SSE as it always was, NDJSON lines for Ollama)."""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator

import pytest

from corral.supervisor.openai.format import PING
from corral.supervisor.streams.framing import NDJSON, SSE, Framing, with_event_id
from corral.supervisor.streams.replay import replay
from corral.supervisor.streams.sessions import SessionRegistry, SessionState, StreamSession

DONE_LINE = b'{"model":"m","done":true,"done_reason":"stop"}\n'


async def replayed(session: StreamSession, offset: int = 0) -> bytes:
    chunks: AsyncGenerator[bytes, None] = replay(session, session.follow(offset))
    return b"".join([c async for c in chunks])


def test_sse_stores_events_with_ids_and_pings_as_they_are() -> None:
    event = b"data: {}\n\n"
    assert SSE.stored(event, 7) == with_event_id(event, 7)
    assert SSE.stored(PING, 7) == PING
    assert SSE.headers == {}  # a replay's headers are send_sse's own, as before


def test_ndjson_stores_lines_untouched() -> None:
    assert NDJSON.stored(DONE_LINE, 7) == DONE_LINE
    assert NDJSON.headers["Content-Type"] == "application/x-ndjson"


async def test_the_registry_opens_sse_sessions_unless_told() -> None:
    registry = SessionRegistry(ring_capacity=64, total_capacity=256)
    assert (await registry.create("a", None, "m")).framing is SSE
    assert (await registry.create("b", None, "m", NDJSON)).framing is NDJSON


@pytest.mark.parametrize("state", ["cancelled", "failed"])
async def test_an_ndjson_replay_ends_a_cut_short_answer_with_an_error_line(
    state: SessionState,
) -> None:
    session = StreamSession("c", None, "m", ring_capacity=1024, framing=NDJSON)
    session.append(b'{"response":"a","done":false}\n')
    session.finish(state)
    body = await replayed(session)
    assert body.startswith(b'{"response":"a","done":false}\n')
    last = json.loads(body.split(b"\n")[-2])
    assert set(last) == {"error"}
    assert b"data:" not in body


@pytest.mark.parametrize("framing", [SSE, NDJSON])
async def test_a_stream_that_wrote_its_own_end_gets_no_error_even_when_stopped(
    framing: Framing,
) -> None:
    end = DONE_LINE if framing is NDJSON else b"data: [DONE]\n\n"
    session = StreamSession("c", None, "m", ring_capacity=1024, framing=framing)
    session.append(end)
    session.finish("cancelled")  # a stop that came after the last line
    assert await replayed(session) == end


async def test_the_end_is_seen_across_follow_chunks() -> None:
    # A final line bigger than one copy to the follower still counts as the end.
    big = json.dumps({"done": True, "pad": "x" * (70 << 10)}).encode() + b"\n"
    session = StreamSession("c", None, "m", ring_capacity=1 << 20, framing=NDJSON)
    session.append(big)
    session.finish("cancelled")
    assert await replayed(session) == big


async def test_an_ndjson_reader_left_behind_by_the_ring_gets_an_error_line() -> None:
    session = StreamSession("c", None, "m", ring_capacity=64, framing=NDJSON)
    chunks: AsyncGenerator[bytes, None] = replay(session, session.follow(0))
    for i in range(10):  # far more than the ring holds, before the reader reads a byte
        session.append(b'{"response":"%d","done":false}\n' % i)
    session.finish("done")
    body = b"".join([c async for c in chunks])
    assert "behind" in json.loads(body.split(b"\n")[-2])["error"]
    assert b"data:" not in body
