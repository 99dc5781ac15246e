"""Resumable Ollama streams (issue 13), in process with fake children: a streamed ``/api/chat``
or ``/api/generate`` with ``X-Conversation-Id`` survives its client, and ``/v1/stream/{id}``
replays its NDJSON bytes exactly, from 0 or from any line end, with an error line where the
answer was cut short."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from corral.supervisor.app import create_app
from corral.supervisor.appkeys import STREAMS
from corral.supervisor.streams.sessions import StreamSession
from tests.support.inproc import SERVER, eventually, inproc_settings

ClientFactory = Callable[..., Awaitable[TestClient[Any, Any]]]
NDJSON = "application/x-ndjson"


def chat(model: str, **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": "go"}], **extra}


def parsed(body: bytes) -> list[dict[str, Any]]:
    """Every line of an NDJSON body, each of which must be a JSON object."""
    assert body.endswith(b"\n"), body[-80:]
    objects = [json.loads(line) for line in body.split(b"\n")[:-1]]
    assert all(isinstance(o, dict) for o in objects)
    return objects


def line_ends(body: bytes) -> list[int]:
    return [i + 1 for i, byte in enumerate(body) if byte == ord("\n")]


def text_of(objects: list[dict[str, Any]]) -> str:
    return "".join(
        o.get("message", {}).get("content", "") or o.get("response", "") for o in objects
    )


async def client_for(aiohttp_client: ClientFactory, tmp_path: Path) -> TestClient[Any, Any]:
    return await aiohttp_client(create_app(inproc_settings(tmp_path)), server_kwargs=SERVER)


def session_of(client: TestClient[Any, Any], cid: str) -> StreamSession:
    session = client.app[STREAMS].registry.get(cid, None)
    assert session is not None
    return session


async def replay(client: TestClient[Any, Any], cid: str, offset: int) -> bytes:
    response = await client.get(f"/v1/stream/{cid}?from={offset}")
    assert response.status == 200
    assert response.headers["Content-Type"].startswith(NDJSON)
    return await response.read()


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/chat", chat("fake", options={"num_predict": 6})),
        ("/api/generate", {"model": "fake", "prompt": "go", "options": {"num_predict": 6}}),
    ],
)
async def test_a_replay_from_zero_or_any_line_end_is_the_stored_ndjson(
    aiohttp_client: ClientFactory, tmp_path: Path, path: str, body: dict[str, Any]
) -> None:
    client = await client_for(aiohttp_client, tmp_path)
    response = await client.post(path, json=body, headers={"X-Conversation-Id": "olla-1"})
    assert response.status == 200
    assert response.headers["Content-Type"].startswith(NDJSON)
    assert response.headers["X-Conversation-Id"] == "olla-1"
    whole = await response.read()
    objects = parsed(whole)  # no id lines, no comments: every line is JSON
    assert [o["done"] for o in objects] == [False] * (len(objects) - 1) + [True]
    assert objects[-1]["eval_count"] == 6
    assert text_of(objects) == " ".join(f"tok{i}" for i in range(6))
    assert await replay(client, "olla-1", 0) == whole
    for offset in line_ends(whole):
        assert await replay(client, "olla-1", offset) == whole[offset:]


async def test_the_stream_survives_its_client_and_is_replayed_whole(
    aiohttp_client: ClientFactory, tmp_path: Path
) -> None:
    client = await client_for(aiohttp_client, tmp_path)
    body = chat("fake-slow", stream=True, options={"num_predict": 20})
    response = await client.post("/api/chat", json=body, headers={"X-Conversation-Id": "olla-2"})
    assert response.status == 200
    first = await response.content.readline()
    assert json.loads(first)["done"] is False
    session = session_of(client, "olla-2")
    response.close()  # the client goes away mid-stream
    await eventually(lambda: session.finished, seconds=30)
    assert session.state == "done"
    stored = await replay(client, "olla-2", 0)
    assert stored.startswith(first)
    objects = parsed(stored)
    assert objects[-1]["done"] is True
    assert objects[-1]["eval_count"] == 20
    assert text_of(objects) == " ".join(f"tok{i}" for i in range(20))
    middle = line_ends(stored)[len(objects) // 2]
    assert await replay(client, "olla-2", middle) == stored[middle:]


async def test_a_stop_mid_stream_ends_post_and_replay_with_an_error_line(
    aiohttp_client: ClientFactory, tmp_path: Path
) -> None:
    client = await client_for(aiohttp_client, tmp_path)
    body = {"model": "fake-slow", "prompt": "go"}  # generates until stopped
    response = await client.post(
        "/api/generate", json=body, headers={"X-Conversation-Id": "olla-3"}
    )
    assert response.status == 200
    assert json.loads(await response.content.readline())["done"] is False
    assert (await client.delete("/v1/stream/olla-3")).status == 204
    told = await asyncio.wait_for(response.read(), 30)
    stored = await replay(client, "olla-3", 0)
    for body_bytes in (told, stored):
        objects = parsed(body_bytes)
        assert all(o.get("done") is not True for o in objects)
        assert set(objects[-1]) == {"error"}
        assert "stopped" in objects[-1]["error"]
    # What was generated before the stop is stored untouched; the error line is the replay's.
    session = session_of(client, "olla-3")
    assert session.state == "cancelled"
    assert stored.startswith(session.ring.read(0, session.end))
    lookup = await client.post("/v1/streams/lookup", json={"conversation_ids": ["olla-3"]})
    assert (await lookup.json())["data"][0]["state"] == "cancelled"


async def test_a_failed_start_is_the_posts_error_and_the_replays_error_line(
    aiohttp_client: ClientFactory, tmp_path: Path
) -> None:
    client = await client_for(aiohttp_client, tmp_path)
    response = await client.post(
        "/api/chat", json=chat("fake-bad-load"), headers={"X-Conversation-Id": "olla-4"}
    )
    assert response.status >= 400
    error = (await response.json())["error"]
    objects = parsed(await replay(client, "olla-4", 0))
    assert objects == [{"error": error}]
