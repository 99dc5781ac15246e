"""llama-server's stream routes: the id in the query (``/v1/stream?conv_id=``) as well as in the
path, and ids with ``/`` in them (``conv/model``), with the same offsets, auth and ownership."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from corral.supervisor.app import create_app
from corral.supervisor.appkeys import CREDENTIALS, SECURITY
from corral.supervisor.streams.conversation_ids import (
    InvalidConversationId,
    validate_conversation_id,
    validate_stream_id,
)
from tests.supervisor.conftest import AppClient, assert_openai_error
from tests.support.inproc import SERVER, inproc_settings

ClientFactory = Callable[..., Awaitable[TestClient[Any, Any]]]
BODY = {
    "model": "fake",
    "messages": [{"role": "user", "content": "hi"}],
    "max_tokens": 8,
    "stream": True,
}
SLOW = {"model": "fake-slow", "stream": True, "messages": [{"role": "user", "content": "go"}]}


@pytest.mark.parametrize("value", ["chat-7/fake", "user:1/conv/qwen2.5-coder:0.5b", "a/b"])
def test_stream_ids_take_slashes_between_parts(value: str) -> None:
    assert validate_stream_id(value) == value
    with pytest.raises(InvalidConversationId):
        validate_conversation_id(value)  # saved conversations keep the plain rule


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("/abs", "non-empty parts"),
        ("trailing/", "non-empty parts"),
        ("a//b", "non-empty parts"),
        ("a/../b", "non-empty parts"),
        ("./a", "non-empty parts"),
        ("a/..", "non-empty parts"),
        ("a\\b", "only ASCII letters"),
        ("a/b c", "only ASCII letters"),
        ("x/" * 64 + "x", "129 characters"),
    ],
)
def test_stream_ids_refuse_path_tricks(value: str, message: str) -> None:
    with pytest.raises(InvalidConversationId, match=message):
        validate_stream_id(value)


async def test_a_slashed_id_replays_by_path_and_by_query(app_client: AppClient) -> None:
    client = await app_client()
    cid = "chat-7/fake"
    response = await client.post(
        "/v1/chat/completions", json=BODY, headers={"X-Conversation-Id": cid}
    )
    assert response.status == 200
    assert response.headers["X-Conversation-Id"] == cid
    whole = await response.read()
    assert whole.endswith(b"data: [DONE]\n\n")
    for offset in (0, len(whole) // 2, len(whole)):
        by_path = await client.get(f"/v1/stream/{cid}", params={"from": offset})
        assert by_path.status == 200
        assert await by_path.read() == whole[offset:]
        by_query = await client.get("/v1/stream", params={"conv_id": cid, "from": offset})
        assert by_query.status == 200
        assert await by_query.read() == whole[offset:]
    encoded = await client.get("/v1/stream/chat-7%2Ffake?from=0")
    assert encoded.status == 200
    assert await encoded.read() == whole


async def test_delete_by_query_stops_the_generation(app_client: AppClient) -> None:
    client = await app_client()
    cid = "run/fake-slow"
    response = await client.post(
        "/v1/chat/completions", json=SLOW, headers={"X-Conversation-Id": cid}
    )
    assert response.status == 200
    stopped = await client.delete("/v1/stream", params={"conv_id": cid})
    assert stopped.status == 204
    assert (await client.delete("/v1/stream", params={"conv_id": cid})).status == 204
    found = await client.post("/v1/streams/lookup", json={"conversation_ids": [cid]})
    assert [d["state"] for d in (await found.json())["data"]] == ["cancelled"]
    assert (await response.read()).endswith(b"data: [DONE]\n\n")


async def test_query_form_errors(app_client: AppClient) -> None:
    client = await app_client()
    missing = await client.get("/v1/stream")
    assert missing.status == 400
    assert_openai_error(await missing.json(), param="conv_id")
    for bad in ("a//b", "/a", "a/../b", "x" * 129):
        response = await client.get("/v1/stream", params={"conv_id": bad})
        assert response.status == 400, bad
        assert_openai_error(await response.json(), code="invalid_conversation_id")
    unknown = await client.get("/v1/stream", params={"conv_id": "nobody/here"})
    assert unknown.status == 404
    refused = await client.post(
        "/v1/chat/completions", json=BODY, headers={"X-Conversation-Id": "a//b"}
    )
    assert refused.status == 400
    assert_openai_error(await refused.json(), code="invalid_conversation_id")


async def test_the_query_form_needs_the_owner_and_a_key(
    aiohttp_client: ClientFactory, tmp_path: Path
) -> None:
    client = await aiohttp_client(create_app(inproc_settings(tmp_path)), server_kwargs=SERVER)
    first = client.app[CREDENTIALS].create_key("first")
    second = client.app[CREDENTIALS].create_key("second")
    client.app[SECURITY].forget_cache()
    cid = {"conv_id": "shared/fake-slow"}
    held = {"Authorization": f"Bearer {first}", "X-Conversation-Id": cid["conv_id"]}
    response = await client.post("/v1/chat/completions", json=SLOW, headers=held)
    assert response.status == 200
    assert (await client.get("/v1/stream", params=cid)).status == 401
    other = {"Authorization": f"Bearer {second}"}
    assert (await client.get("/v1/stream", params=cid, headers=other)).status == 404
    assert (await client.delete("/v1/stream", params=cid, headers=other)).status == 204
    owner = {"Authorization": f"Bearer {first}"}
    found = await client.post(
        "/v1/streams/lookup", json={"conversation_ids": [cid["conv_id"]]}, headers=owner
    )
    assert [d["state"] for d in (await found.json())["data"]] == ["running"]
    assert (await client.delete("/v1/stream", params=cid, headers=owner)).status == 204
    assert (await response.read()).endswith(b"data: [DONE]\n\n")
