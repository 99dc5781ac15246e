"""``POST /v1/messages`` in process, over the real app and fake children: Anthropic's shapes,
its events, its errors, its key header, and what every Corral route shares (resumable streams).

The fake model answers ``tok0 tok1 ... tok7``, so the texts here are exact.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from typing import Any

import pytest

from tests.supervisor.conftest import AppClient

BODY: dict[str, Any] = {
    "model": "fake",
    "max_tokens": 50,
    "messages": [{"role": "user", "content": "hi"}],
}
KEY = "sk-anthropic-0123456789abcdef"


def sse_events(raw: bytes) -> list[dict[str, Any]]:
    """Each event's data, checked against its ``event:`` line (a resumable stream's ``id:``
    lines, its byte offsets, are skipped)."""
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


def assert_anthropic_error(body: Any, kind: str, *, mentions: str = "") -> None:
    assert set(body) == {"type", "error"}, body
    assert body["type"] == "error"
    assert set(body["error"]) == {"type", "message", "param", "code"}, body
    assert body["error"]["type"] == kind, body
    assert mentions in body["error"]["message"], body


async def test_a_message_has_anthropics_shape(app_client: AppClient) -> None:
    client = await app_client()
    response = await client.post(
        "/v1/messages", json=BODY, headers={"anthropic-version": "2023-06-01"}
    )
    assert response.status == 200
    body = await response.json()
    assert body["id"].startswith("msg_")
    assert body["id"] != "msg_"
    body.pop("id")
    assert body == {
        "type": "message",
        "role": "assistant",
        "model": "fake",
        "content": [{"type": "text", "text": "tok0 tok1 tok2 tok3 tok4 tok5 tok6 tok7"}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": 1, "output_tokens": 8, "cache_creation_input_tokens": 0,
                  "cache_read_input_tokens": 0},
    }  # fmt: skip


async def test_max_tokens_stops_the_answer_and_says_so(app_client: AppClient) -> None:
    client = await app_client()
    body = await (await client.post("/v1/messages", json={**BODY, "max_tokens": 2})).json()
    assert body["content"] == [{"type": "text", "text": "tok0 tok1"}]
    assert body["stop_reason"] == "max_tokens"
    assert body["usage"]["output_tokens"] == 2


async def test_stop_sequences_and_the_system_prompt_reach_the_model(app_client: AppClient) -> None:
    client = await app_client()
    stopped = await client.post("/v1/messages", json={**BODY, "stop_sequences": ["zz", " tok3"]})
    body = await stopped.json()
    assert body["content"][0]["text"] == "tok0 tok1 tok2"
    assert (body["stop_reason"], body["stop_sequence"]) == ("stop_sequence", " tok3")
    missed = await client.post("/v1/messages", json={**BODY, "stop_sequences": ["zz"]})
    assert (await missed.json())["stop_reason"] == "end_turn"
    # The fake model counts the words of every message: the system prompt is one more.
    system = await client.post("/v1/messages", json={**BODY, "system": "be brief please"})
    blocks = await client.post("/v1/messages", json={
        **BODY, "system": [{"type": "text", "text": "be brief please"}]})  # fmt: skip
    for response in (system, blocks):
        assert (await response.json())["usage"]["input_tokens"] == 4


async def test_a_stream_cut_by_a_stop_sequence_names_it_in_message_delta(
    app_client: AppClient,
) -> None:
    client = await app_client()
    body = {**BODY, "stream": True, "stop_sequences": [" tok2"]}
    events = sse_events(await (await client.post("/v1/messages", json=body)).read())
    text = "".join(e["delta"]["text"] for e in events if e["type"] == "content_block_delta")
    assert text == "tok0 tok1"
    (final,) = [e for e in events if e["type"] == "message_delta"]
    assert final["delta"] == {"stop_reason": "stop_sequence", "stop_sequence": " tok2"}
    assert final["usage"]["output_tokens"] == 3  # the token that held the stop string counts
    assert events[-1] == {"type": "message_stop"}


async def test_a_final_assistant_message_is_a_prefill_the_answer_goes_on_from(
    app_client: AppClient,
) -> None:
    client = await app_client()
    messages = [{"role": "user", "content": "x"}, {"role": "assistant", "content": "tok0 tok1"}]
    body = await (await client.post("/v1/messages", json={**BODY, "messages": messages})).json()
    assert body["content"] == [{"type": "text", "text": " tok2 tok3 tok4 tok5 tok6 tok7"}]


async def test_a_stream_is_anthropics_events_around_the_same_text(app_client: AppClient) -> None:
    client = await app_client()
    whole = await (await client.post("/v1/messages", json=BODY)).json()
    response = await client.post("/v1/messages", json={**BODY, "stream": True})
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/event-stream")
    events = sse_events(await response.read())
    kinds = [e["type"] for e in events]
    assert kinds[:3] == ["message_start", "ping", "content_block_start"]
    assert kinds[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert set(kinds[3:-3]) == {"content_block_delta"}
    text = "".join(e["delta"]["text"] for e in events if e["type"] == "content_block_delta")
    assert text == whole["content"][0]["text"]
    final = events[-2]
    assert final["delta"] == {"stop_reason": "end_turn", "stop_sequence": None}
    assert (final["usage"]["input_tokens"], final["usage"]["output_tokens"]) == (1, 8)


async def test_metadata_user_id_is_logged_as_openais_user(
    app_client: AppClient, caplog: pytest.LogCaptureFixture
) -> None:
    client = await app_client()
    with caplog.at_level(logging.INFO, logger="corral.api"):
        response = await client.post("/v1/messages", json={**BODY, "metadata": {"user_id": "u-42"}})
    assert response.status == 200
    assert "for user 'u-42'" in caplog.text


async def test_a_resumable_stream_replays_anthropics_events(app_client: AppClient) -> None:
    client = await app_client()
    response = await client.post("/v1/messages", json={**BODY, "stream": True},
                                 headers={"X-Conversation-Id": "claude-1"})  # fmt: skip
    assert response.headers["X-Conversation-Id"] == "claude-1"
    whole = await response.read()
    assert sse_events(whole)[-1] == {"type": "message_stop"}
    replay = await client.get("/v1/stream/claude-1?from=0")
    assert await replay.read() == whole


REFUSED = [
    # (body change, status, Anthropic error type, what the message names)
    ({"frobnicate": 1}, 400, "invalid_request_error", "frobnicate"),
    ({"max_tokens": None}, 400, "invalid_request_error", "max_tokens"),
    ({"max_tokens": 0}, 400, "invalid_request_error", "max_tokens"),
    ({"temperature": 1.5}, 400, "invalid_request_error", "temperature"),
    ({"messages": []}, 400, "invalid_request_error", "messages"),
    ({"messages": [{"role": "system", "content": "x"}]}, 400, "invalid_request_error", "messages.0.role"),
    ({"messages": [{"role": "user", "content": [{"type": "image", "source": {
        "type": "base64", "media_type": "image/png", "data": "AA=="}}]}]},
     400, "invalid_request_error", "'image'"),
    ({"messages": [{"role": "user", "content": [{"type": "text", "text": "x", "z": 1}]}]},
     400, "invalid_request_error", "messages.0.content.0.z"),
    ({"messages": [{"role": "user", "content": [{"type": "tool_use", "id": "t", "name": "f",
                                                 "input": {}}]}]},
     400, "invalid_request_error", "belong in assistant messages"),
    ({"thinking": {"type": "enabled", "budget_tokens": 1024}}, 400, "invalid_request_error", "thinking"),
    ({"container": "c-1"}, 400, "invalid_request_error", "container"),
    ({"mcp_servers": [{"type": "url", "url": "https://x", "name": "x"}]}, 400,
     "invalid_request_error", "mcp_servers"),
    ({"tools": [{"type": "web_search_20250305", "name": "web_search"}]}, 400,
     "invalid_request_error", "server tools"),
    ({"thinking": {"type": "adaptive"}}, 400, "invalid_request_error", "thinking"),
    ({"output_config": {"effort": "high"}}, 400, "invalid_request_error", "output_config.effort"),
    ({"speed": "fast"}, 400, "invalid_request_error", "speed"),
    ({"inference_geo": "us"}, 400, "invalid_request_error", "inference_geo"),
    ({"service_tier": "priority"}, 400, "invalid_request_error", "service_tier"),
    ({"metadata": {"user_id": "u", "team": "x"}}, 400, "invalid_request_error", "metadata.team"),
    ({"model": "no-such-model"}, 404, "not_found_error", "no-such-model"),
]  # fmt: skip


@pytest.mark.parametrize(("change", "status", "kind", "mentions"), REFUSED)
async def test_what_corral_cannot_honour_is_an_anthropic_error_naming_it(
    app_client: AppClient, change: dict[str, Any], status: int, kind: str, mentions: str
) -> None:
    client = await app_client()
    body = {k: v for k, v in {**BODY, **change}.items() if v is not None}
    response = await client.post("/v1/messages", json=body)
    assert response.status == status, await response.text()
    body = await response.json()
    assert_anthropic_error(body, kind, mentions=mentions)
    if re.fullmatch(r"[a-z_.0-9]+", mentions):  # a field: named in param too, as OpenAI's
        assert body["error"]["param"] == mentions


async def test_requests_that_ask_for_nothing_extra_are_accepted(app_client: AppClient) -> None:
    client = await app_client()
    harmless = {
        "thinking": {"type": "disabled"},
        "service_tier": "auto",
        "speed": "standard",
        "cache_control": {"type": "ephemeral", "ttl": "5m"},
        "output_config": {"effort": None},
        "system": [{"type": "text", "text": "x", "cache_control": {"type": "ephemeral"}}],
    }
    response = await client.post("/v1/messages", json={**BODY, **harmless})
    assert response.status == 200, await response.text()


async def test_keys_in_x_api_key_or_bearer_and_errors_before_the_route(
    app_client: AppClient,
) -> None:
    client = await app_client(api_keys=[{"name": "claude", "key": KEY}])
    missing = await client.post("/v1/messages", json=BODY)
    assert missing.status == 401
    assert_anthropic_error(await missing.json(), "authentication_error")
    wrong = await client.post(
        "/v1/messages", json=BODY, headers={"x-api-key": "sk-wrong-000000000000"}
    )
    assert wrong.status == 401
    for headers in ({"x-api-key": KEY}, {"Authorization": f"Bearer {KEY}"}):
        assert (await client.post("/v1/messages", json=BODY, headers=headers)).status == 200
    not_json = await client.post("/v1/messages", data="hi", headers={"x-api-key": KEY})
    assert not_json.status == 415
    assert_anthropic_error(await not_json.json(), "invalid_request_error")
    broken = await client.post("/v1/messages", data="{", headers={
        "x-api-key": KEY, "Content-Type": "application/json"})  # fmt: skip
    assert broken.status == 400
    assert_anthropic_error(await broken.json(), "invalid_request_error", mentions="JSON")
    # The OpenAI routes keep OpenAI's shape.
    openai = await client.post("/v1/chat/completions", json={"messages": []})
    assert set(await openai.json()) == {"error"}


async def test_keep_alive_zero_unloads_the_model_when_the_message_is_done(
    app_client: AppClient,
) -> None:
    client = await app_client()

    async def state() -> str:
        models = (await (await client.get("/v1/models")).json())["data"]
        return str(next(m["state"] for m in models if m["id"] == "fake"))

    assert (await client.post("/v1/messages", json={**BODY, "keep_alive": 0})).status == 200
    for _ in range(500):  # polled with a deadline: the unload runs after the answer
        if await state() == "unloaded":
            break
        await asyncio.sleep(0.01)
    assert await state() == "unloaded"
    refused = await client.post("/v1/messages", json={**BODY, "keep_alive": "soon"})
    assert_anthropic_error(await refused.json(), "invalid_request_error", mentions="keep_alive")


async def test_a_child_that_dies_mid_stream_ends_it_with_an_error_event(
    app_client: AppClient,
) -> None:
    client = await app_client(
        models={"fake-crash": {"backend": "fake", "args": ["--crash-after", "3"]}},
        default_model="fake-crash",
    )
    response = await client.post("/v1/messages", json={**BODY, "model": "fake-crash",
                                                       "stream": True})  # fmt: skip
    assert response.status == 200
    events = sse_events(await response.read())
    assert events[0]["type"] == "message_start"
    assert events[-1]["type"] == "error"
    assert events[-1]["error"]["type"] == "api_error"
    assert "message_stop" not in [e["type"] for e in events]


async def test_count_tokens_is_the_prompt_count_a_message_reports(app_client: AppClient) -> None:
    client = await app_client()
    prompt = {"model": "fake", "system": "be brief", "messages": [
        {"role": "user", "content": "one two three"}]}  # fmt: skip
    counted = await client.post("/v1/messages/count_tokens", json=prompt)
    assert counted.status == 200, await counted.text()
    assert await counted.json() == {"input_tokens": 5}
    message = await (await client.post("/v1/messages", json={**prompt, "max_tokens": 4})).json()
    assert message["usage"]["input_tokens"] == 5
    # A count has no answer to cap or sample: those fields are unknown there.
    for field, value in (("max_tokens", 4), ("temperature", 0.5), ("stream", True)):
        refused = await client.post("/v1/messages/count_tokens", json={**prompt, field: value})
        assert refused.status == 400
        assert_anthropic_error(await refused.json(), "invalid_request_error", mentions=field)
    thinking = await client.post("/v1/messages/count_tokens", json={
        **prompt, "thinking": {"type": "enabled", "budget_tokens": 2048}})  # fmt: skip
    assert_anthropic_error(await thinking.json(), "invalid_request_error", mentions="thinking")
