"""Resumable streams and their byte offsets, against the app in process."""

from __future__ import annotations

from tests.supervisor.conftest import AppClient, assert_openai_error

BODY = {
    "model": "fake",
    "messages": [{"role": "user", "content": "hi"}],
    "max_tokens": 8,
    "stream": True,
}


async def test_a_replay_from_any_offset_is_the_tail_of_the_whole_stream(
    app_client: AppClient,
) -> None:
    client = await app_client()
    response = await client.post(
        "/v1/chat/completions", json=BODY, headers={"X-Conversation-Id": "conv-1"}
    )
    assert response.status == 200
    assert response.headers["X-Conversation-Id"] == "conv-1"
    whole = await response.read()
    assert whole.endswith(b"data: [DONE]\n\n")
    for offset in (0, 1, len(whole) // 2, len(whole)):
        replay = await client.get(f"/v1/stream/conv-1?from={offset}")
        assert replay.status == 200
        assert await replay.read() == whole[offset:]


async def test_lookup_knows_only_the_ids_it_is_asked_for(app_client: AppClient) -> None:
    client = await app_client()
    await (
        await client.post(
            "/v1/chat/completions", json=BODY, headers={"X-Conversation-Id": "conv-2"}
        )
    ).read()
    found = await client.post("/v1/streams/lookup", json={"conversation_ids": ["conv-2", "x"]})
    data = (await found.json())["data"]
    assert [d["conversation_id"] for d in data] == ["conv-2"]
    assert data[0]["state"] == "done"


async def test_unknown_ids_bad_ids_and_offsets_past_the_end(app_client: AppClient) -> None:
    client = await app_client()
    unknown = await client.get("/v1/stream/nobody?from=0")
    assert unknown.status == 404
    assert_openai_error(await unknown.json())
    bad = await client.get("/v1/stream/" + "x" * 300)
    assert bad.status == 400
    await (
        await client.post(
            "/v1/chat/completions", json=BODY, headers={"X-Conversation-Id": "conv-3"}
        )
    ).read()
    negative = await client.get("/v1/stream/conv-3?from=-1")
    assert negative.status == 400
    assert_openai_error(await negative.json())


async def test_delete_is_idempotent(app_client: AppClient) -> None:
    client = await app_client()
    await (
        await client.post(
            "/v1/chat/completions", json=BODY, headers={"X-Conversation-Id": "conv-4"}
        )
    ).read()
    assert (await client.delete("/v1/stream/conv-4")).status == 204
    assert (await client.delete("/v1/stream/conv-4")).status == 204
