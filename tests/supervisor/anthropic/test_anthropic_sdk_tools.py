"""The ``anthropic`` SDK reads what the renderer makes of a tool-calling chunk stream: its own
SSE parser, event types and message accumulator run over the rendered bytes (handed to it by
an in-memory transport), so the tool path is checked against the real client before Corral's
models can call tools."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import anthropic
import httpx2

from corral.supervisor.anthropic.render import full_message, message_events
from tests.supervisor.anthropic.test_anthropic_render import (
    USAGE,
    _feed,
    _whole,
    call,
    chunk,
    usage_chunk,
)

CHUNKS = [
    chunk({"role": "assistant", "content": ""}),
    chunk({"content": "Let me check."}),
    chunk(call(0, "", call_id="call_1", name="get_weather")),
    chunk(call(0, '{"city": "Pa')),
    chunk(call(0, 'ris", "unit": "C"}')),
    chunk(call(1, '{"city": "Rome"}', call_id="call_2", name="get_weather")),
    chunk(reason="tool_calls"),
    usage_chunk(),
]


async def _rendered() -> bytes:
    return b"".join([piece async for piece in message_events(_feed(CHUNKS))])


def client_over(body: bytes, content_type: str) -> anthropic.Anthropic:
    def answer(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, headers={"content-type": content_type}, content=body)

    return anthropic.Anthropic(
        api_key="unused", base_url="http://corral.test", max_retries=0,
        http_client=httpx2.Client(transport=httpx2.MockTransport(answer)),
    )  # fmt: skip


ARGS: dict[str, Any] = {
    "model": "m",
    "max_tokens": 64,
    "messages": [{"role": "user", "content": "Weather in Paris and Rome?"}],
}


def test_the_sdk_accumulates_streamed_tool_use_blocks() -> None:
    client = client_over(asyncio.run(_rendered()), "text/event-stream")
    with client.messages.stream(**ARGS) as stream:
        texts = list(stream.text_stream)
        final = stream.get_final_message()
    assert texts == ["Let me check."]
    assert [block.type for block in final.content] == ["text", "tool_use", "tool_use"]
    first, second = final.content[1], final.content[2]
    assert first.type == "tool_use"
    assert second.type == "tool_use"
    assert (first.id, first.name, first.input) == (
        "call_1", "get_weather", {"city": "Paris", "unit": "C"})  # fmt: skip
    assert (second.id, second.input) == ("call_2", {"city": "Rome"})
    assert final.stop_reason == "tool_use"
    assert final.usage.output_tokens == USAGE["completion_tokens"]
    assert final.usage.input_tokens == 6


def test_the_sdk_parses_a_whole_message_with_tool_use() -> None:
    message = {"role": "assistant", "content": None, "tool_calls": [
        {"id": "call_9", "type": "function",
         "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'}}]}  # fmt: skip
    body = json.dumps(full_message(_whole(message, "tool_calls"))).encode()
    reply = client_over(body, "application/json").messages.create(**ARGS)
    assert reply.stop_reason == "tool_use"
    block = reply.content[0]
    assert block.type == "tool_use"
    assert (block.name, block.input) == ("get_weather", {"city": "Oslo"})
