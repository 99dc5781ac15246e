"""``POST /v1/responses`` in process, over the real app and fake children: the response
object, its events, and what is refused because Corral keeps no responses.

The fake model answers ``tok0 tok1 ... tok7``, so the texts here are exact.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from tests.supervisor.conftest import AppClient, assert_openai_error

BODY: dict[str, Any] = {"model": "fake", "input": "hi"}
TEXT = "tok0 tok1 tok2 tok3 tok4 tok5 tok6 tok7"


def sse_events(raw: bytes) -> list[dict[str, Any]]:
    out = []
    for block in raw.decode().split("\n\n"):
        lines = [line for line in block.split("\n") if line and not line.startswith("id: ")]
        if not lines:
            continue
        head, data = lines
        payload = json.loads(data.removeprefix("data: "))
        assert head == f"event: {payload['type']}"
        out.append(payload)
    return out


async def test_a_response_object_echoes_its_request(app_client: AppClient) -> None:
    client = await app_client()
    request = {**BODY, "instructions": "be kind", "temperature": 0.5, "max_output_tokens": 20,
               "metadata": {"ticket": "7"}, "store": False}  # fmt: skip
    response = await client.post("/v1/responses", json=request)
    assert response.status == 200
    body = await response.json()
    assert body["id"].startswith("resp_")
    assert (body["object"], body["status"], body["model"]) == ("response", "completed", "fake")
    assert body["output"] == [{"type": "message", "id": body["output"][0]["id"],
                               "status": "completed", "role": "assistant", "content": [
                                   {"type": "output_text", "text": TEXT, "annotations": [],
                                    "logprobs": []}]}]  # fmt: skip
    # The instructions are a system message: two more words for the fake model to count.
    assert body["usage"] == {"input_tokens": 3, "input_tokens_details": {"cached_tokens": 0},
                             "output_tokens": 8, "output_tokens_details": {"reasoning_tokens": 0},
                             "total_tokens": 11}  # fmt: skip
    assert (body["instructions"], body["temperature"], body["max_output_tokens"]) == (
        "be kind", 0.5, 20)  # fmt: skip
    assert (body["metadata"], body["store"], body["previous_response_id"]) == (
        {"ticket": "7"}, False, None)  # fmt: skip


async def test_max_output_tokens_makes_an_incomplete_response(app_client: AppClient) -> None:
    client = await app_client()
    body = await (await client.post("/v1/responses", json={**BODY, "max_output_tokens": 2})).json()
    assert body["status"] == "incomplete"
    assert body["incomplete_details"] == {"reason": "max_output_tokens"}
    assert body["output"][0]["content"][0]["text"] == "tok0 tok1"
    assert body["output"][0]["status"] == "incomplete"


async def test_input_items_reach_the_model(app_client: AppClient) -> None:
    client = await app_client()
    items = [{"role": "developer", "content": "one two"},
             {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "three"}]},
             {"role": "assistant", "content": [{"type": "output_text", "text": "four"}]},
             {"role": "user", "content": "five"}]  # fmt: skip
    body = await (await client.post("/v1/responses", json={**BODY, "input": items})).json()
    assert body["usage"]["input_tokens"] == 5


async def test_a_stream_is_the_documented_events_and_no_done(app_client: AppClient) -> None:
    client = await app_client()
    whole = await (await client.post("/v1/responses", json=BODY)).json()
    response = await client.post("/v1/responses", json={**BODY, "stream": True})
    assert response.status == 200
    raw = await response.read()
    assert b"[DONE]" not in raw
    events = sse_events(raw)
    kinds = [e["type"] for e in events]
    assert kinds[:4] == ["response.created", "response.in_progress",
                         "response.output_item.added", "response.content_part.added"]  # fmt: skip
    assert kinds[-4:] == ["response.output_text.done", "response.content_part.done",
                          "response.output_item.done", "response.completed"]  # fmt: skip
    assert set(kinds[4:-4]) == {"response.output_text.delta"}
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    text = "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta")
    assert text == whole["output"][0]["content"][0]["text"]
    final = events[-1]["response"]
    assert final["output"][0]["content"][0]["text"] == text
    assert final["usage"]["output_tokens"] == 8


async def test_a_resumable_stream_replays_the_events(app_client: AppClient) -> None:
    client = await app_client()
    response = await client.post("/v1/responses", json={**BODY, "stream": True},
                                 headers={"X-Conversation-Id": "resp-1"})  # fmt: skip
    whole = await response.read()
    assert sse_events(whole)[-1]["type"] == "response.completed"
    replay = await client.get("/v1/stream/resp-1?from=0")
    assert await replay.read() == whole


REFUSED = [
    ({"previous_response_id": "resp_123"}, "previous_response_id"),
    ({"conversation": "conv_1"}, "conversation"),
    ({"store": True}, "store"),
    ({"background": True}, "background"),
    ({"reasoning": {"effort": "low"}}, "reasoning"),
    ({"include": ["message.output_text.logprobs"]}, "include"),
    ({"top_logprobs": 2}, "top_logprobs"),
    ({"max_tool_calls": 3}, "max_tool_calls"),
    ({"truncation": "auto"}, "truncation"),
    ({"service_tier": "flex"}, "service_tier"),
    ({"prompt": {"id": "pmpt_1"}}, "prompt"),
    ({"text": {"verbosity": "low"}}, "text.verbosity"),
    ({"stream": True, "stream_options": {"include_obfuscation": True}},
     "stream_options.include_obfuscation"),
    ({"tools": [{"type": "web_search"}]}, "tools.0.type"),
    ({"tools": [{"type": "file_search", "vector_store_ids": ["vs_1"]}]}, "tools.0.type"),
    ({"input": [{"type": "item_reference", "id": "msg_1"}]}, "input.0.type"),
    ({"input": [{"type": "reasoning", "id": "rs_1", "summary": []}]}, "input.0.type"),
    ({"input": [{"role": "user", "content": [{"type": "input_image", "image_url": "x"}]}]},
     "input.0.content.0.type"),
    ({"input": [{"role": "user", "content": "x", "colour": "red"}]}, "input.0.colour"),
    ({"input": []}, "input"),
    ({"frobnicate": 1}, "frobnicate"),
    ({"temperature": 3}, "temperature"),
    ({"max_output_tokens": 0}, "max_output_tokens"),
]  # fmt: skip


@pytest.mark.parametrize(("change", "param"), REFUSED)
async def test_what_corral_cannot_honour_is_a_400_naming_it(
    app_client: AppClient, change: dict[str, Any], param: str
) -> None:
    client = await app_client()
    response = await client.post("/v1/responses", json={**BODY, **change})
    assert response.status == 400, await response.text()
    assert_openai_error(await response.json(), param=param)


async def test_fields_that_ask_for_nothing_are_accepted(app_client: AppClient) -> None:
    client = await app_client()
    harmless = {"store": False, "reasoning": {"effort": None}, "include": [], "truncation": "disabled",
                "service_tier": "auto", "top_logprobs": 0, "user": "u-1",
                "text": {"format": {"type": "text"}}, "prompt_cache_key": "k"}  # fmt: skip
    response = await client.post("/v1/responses", json={**BODY, **harmless})
    assert response.status == 200, await response.text()


async def test_keep_alive_zero_unloads_the_model_when_the_response_is_done(
    app_client: AppClient,
) -> None:
    client = await app_client()

    async def state() -> str:
        models = (await (await client.get("/v1/models")).json())["data"]
        return str(next(m["state"] for m in models if m["id"] == "fake"))

    assert (await client.post("/v1/responses", json={**BODY, "keep_alive": 0})).status == 200
    for _ in range(500):  # polled with a deadline: the unload runs after the answer
        if await state() == "unloaded":
            break
        await asyncio.sleep(0.01)
    assert await state() == "unloaded"


async def test_a_child_that_dies_mid_stream_ends_it_with_an_error_event(
    app_client: AppClient,
) -> None:
    client = await app_client(
        models={"fake-crash": {"backend": "fake", "args": ["--crash-after", "3"]}},
        default_model="fake-crash",
    )
    response = await client.post("/v1/responses", json={**BODY, "model": "fake-crash",
                                                        "stream": True})  # fmt: skip
    assert response.status == 200
    events = sse_events(await response.read())
    assert events[0]["type"] == "response.created"
    assert events[-1]["type"] == "error"
    assert events[-1]["code"] == "model_failed"
    assert "response.completed" not in [e["type"] for e in events]
