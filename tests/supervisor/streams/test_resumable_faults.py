"""Resumable streams under faults (issue 16, High 4 and Medium 8), in-process with fake children:
a disconnect or a stop while the model loads, replays of stopped and failed sessions, and a
reader that falls further behind than the ring holds."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator, Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient

from corral.supervisor.app import create_app
from corral.supervisor.appkeys import MANAGER, STREAMS
from corral.supervisor.streams.replay import replay
from corral.supervisor.streams.sessions import StreamSession
from tests.support.inproc import SERVER, eventually, inproc_settings

ClientFactory = Callable[..., Awaitable[TestClient[Any, Any]]]
DONE = b"data: [DONE]\n\n"


def chat(model: str) -> dict[str, Any]:
    return {"model": model, "stream": True, "messages": [{"role": "user", "content": "go"}]}


def events(body: bytes) -> list[Any]:
    lines = [line for line in body.decode().splitlines() if line.startswith("data: ")]
    return [line[6:] if line == "data: [DONE]" else json.loads(line[6:]) for line in lines]


def content(body: bytes) -> str:
    parts = [e["choices"][0]["delta"].get("content") for e in events(body)[:-1] if "choices" in e]
    return "".join(p for p in parts if p)


def state_of(client: TestClient[Any, Any], model: str) -> str | None:
    view = client.app[MANAGER].views.get(model)
    return view.state if view is not None else None


async def test_a_disconnect_during_the_model_load_does_not_lose_the_generation(
    aiohttp_client: ClientFactory, tmp_path: Path
) -> None:
    client = await aiohttp_client(create_app(inproc_settings(tmp_path)), server_kwargs=SERVER)
    headers = {"X-Conversation-Id": "reload-1"}
    post = asyncio.create_task(
        client.post("/v1/chat/completions", json=chat("fake-slow-load"), headers=headers)
    )
    await eventually(lambda: state_of(client, "fake-slow-load") == "loading")
    post.cancel()  # the page reloads while the model is still loading
    session = client.app[STREAMS].registry.get("reload-1", None)
    assert session is not None
    await eventually(lambda: session.finished, seconds=30)
    assert session.state == "done"
    replayed = await (await client.get("/v1/stream/reload-1?from=0")).read()
    assert replayed.endswith(DONE)
    assert content(replayed) == " ".join(f"tok{i}" for i in range(8))


async def test_a_stop_during_the_load_ends_the_waiting_post_at_once(
    aiohttp_client: ClientFactory, tmp_path: Path
) -> None:
    client = await aiohttp_client(create_app(inproc_settings(tmp_path)), server_kwargs=SERVER)
    headers = {"X-Conversation-Id": "stop-1"}
    post = asyncio.create_task(
        client.post("/v1/chat/completions", json=chat("fake-slow-load"), headers=headers)
    )
    await eventually(lambda: state_of(client, "fake-slow-load") == "loading")
    assert (await client.delete("/v1/stream/stop-1")).status == 204
    response = await post
    assert response.status == 409
    assert (await response.json())["error"]["code"] == "stream_stopped"
    assert state_of(client, "fake-slow-load") == "loading"  # it answered before the load ended
    replayed = await (await client.get("/v1/stream/stop-1?from=0")).read()
    assert events(replayed)[-2]["error"]["code"] == "stream_stopped"
    assert replayed.endswith(DONE)


async def test_a_replay_of_a_failed_start_says_why(
    aiohttp_client: ClientFactory, tmp_path: Path
) -> None:
    client = await aiohttp_client(create_app(inproc_settings(tmp_path)), server_kwargs=SERVER)
    headers = {"X-Conversation-Id": "fail-1"}
    post = await client.post("/v1/chat/completions", json=chat("fake-bad-load"), headers=headers)
    assert post.status == 502
    code = (await post.json())["error"]["code"]
    replay_response = await client.get("/v1/stream/fail-1?from=0")
    assert replay_response.status == 200
    replayed = await replay_response.read()
    assert events(replayed)[-2]["error"]["code"] == code
    assert replayed.endswith(DONE)
    lookup = await client.post("/v1/streams/lookup", json={"conversation_ids": ["fail-1"]})
    assert (await lookup.json())["data"][0]["state"] == "failed"


async def test_a_reader_that_falls_behind_the_ring_gets_an_error_event_and_done(
    aiohttp_client: ClientFactory, tmp_path: Path
) -> None:
    settings = inproc_settings(tmp_path, stream_buffer_bytes=4096)
    client = await aiohttp_client(create_app(settings), server_kwargs=SERVER)
    headers = {"X-Conversation-Id": "slow-1"}
    slow = await client.post("/v1/chat/completions", json=chat("fake-long"), headers=headers)
    assert slow.status == 200
    session = client.app[STREAMS].registry.get("slow-1", None)
    assert session is not None
    # The client reads nothing until the generation (some 15 MB of events) ran far past it.
    await eventually(lambda: session.finished, seconds=120)
    body = await slow.read()
    assert body.startswith(b"id: ")  # events from the start, then the end it is told about
    assert events(body)[-2]["error"]["code"] == "offset_gone"
    assert body.endswith(DONE)
    # The replayable part is whole events; the error is an event, not a JSON body.
    assert b"\n\n{" not in body


async def test_replay_ends_a_stopped_session_with_an_error_event() -> None:
    session = StreamSession("c", None, "m", ring_capacity=64)
    session.append(b"data: {}\n\n")
    session.finish("cancelled")
    chunks: AsyncGenerator[bytes, None] = replay(session, session.follow(0))
    body = b"".join([c async for c in chunks])
    assert body.startswith(b"data: {}\n\n")
    assert events(body)[-2]["error"]["code"] == "stream_stopped"
    assert body.endswith(DONE)
