"""High 3: the supervisor saves a finished (or stopped) answer into its stored conversation,
once, whoever is watching. In-process with fake children."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient

from corral.supervisor.app import create_app
from corral.supervisor.appkeys import STREAMS
from tests.support.inproc import SERVER, eventually, inproc_settings

ClientFactory = Callable[..., Awaitable[TestClient[Any, Any]]]
QUESTION = {"role": "user", "content": "go"}
ANSWER = " ".join(f"tok{i}" for i in range(8))


async def setup(aiohttp_client: ClientFactory, tmp_path: Path, cid: str) -> Any:
    client = await aiohttp_client(create_app(inproc_settings(tmp_path)), server_kwargs=SERVER)
    created = await client.post("/api/conversations", json={"id": cid, "messages": [QUESTION]})
    assert created.status == 201
    return client


async def generate(client: Any, cid: str, model: str = "fake") -> Any:
    body = {"model": model, "stream": True, "messages": [QUESTION]}
    return await client.post("/v1/chat/completions", json=body, headers={"X-Conversation-Id": cid})


async def messages_when_saved(client: Any, cid: str) -> list[dict[str, Any]]:
    """The stored messages once the generation's producer (which saves) has ended."""
    streams = client.app[STREAMS]
    await eventually(lambda: streams.registry.get(cid, None) is not None, seconds=30)
    await eventually(lambda: not streams._producers, seconds=30)
    body = await (await client.get(f"/api/conversations/{cid}")).json()
    messages: list[dict[str, Any]] = body["messages"]
    return messages


async def test_an_answer_nobody_watched_is_in_the_conversation(
    aiohttp_client: ClientFactory, tmp_path: Path
) -> None:
    client = await setup(aiohttp_client, tmp_path, "c1")
    response = await generate(client, "c1")
    response.close()  # the phone is closed at once; no tab ever sees the end
    messages = await messages_when_saved(client, "c1")
    assert [m["role"] for m in messages] == ["user", "assistant"]
    assert messages[1]["content"] == ANSWER
    assert messages[1]["finish_reason"] == "stop"
    assert messages[1]["stats"]["completion_tokens"] == 8


async def test_the_ui_saving_too_leaves_one_answer(
    aiohttp_client: ClientFactory, tmp_path: Path
) -> None:
    client = await setup(aiohttp_client, tmp_path, "c2")
    await (await generate(client, "c2")).read()
    # The tab saw the end and saves the answer its own way (the whole list, replaced).
    ui = [QUESTION, {"role": "assistant", "content": ANSWER}]
    assert (await client.patch("/api/conversations/c2", json={"messages": ui})).status == 200
    messages = await messages_when_saved(client, "c2")
    assert len(messages) == 2
    # A later generation for it (regenerate) whose question was answered already adds nothing.
    await (await generate(client, "c2")).read()
    assert len(await messages_when_saved(client, "c2")) == 2


async def test_a_stopped_answer_is_saved_with_its_reason(
    aiohttp_client: ClientFactory, tmp_path: Path
) -> None:
    client = await setup(aiohttp_client, tmp_path, "c3")
    response = await generate(client, "c3", "fake-slow")
    assert response.status == 200
    await response.content.readuntil(b"tok2")  # a few tokens in
    assert (await client.delete("/v1/stream/c3")).status == 204
    messages = await messages_when_saved(client, "c3")
    assert messages[1]["role"] == "assistant"
    assert messages[1]["content"].startswith("tok0 tok1 tok2")
    assert messages[1]["finish_reason"] == "cancelled"


async def test_a_generation_without_a_stored_conversation_writes_nothing(
    aiohttp_client: ClientFactory, tmp_path: Path
) -> None:
    client = await aiohttp_client(create_app(inproc_settings(tmp_path)), server_kwargs=SERVER)
    await (await generate(client, "nowhere")).read()
    assert (await client.get("/api/conversations/nowhere")).status == 404
