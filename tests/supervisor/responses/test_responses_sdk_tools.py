"""The ``openai`` SDK reads what the renderer makes of a tool-calling chunk stream: its own
SSE parser, event types and ``responses.stream`` accumulator run over the rendered bytes
(handed to it by an in-memory transport), so the function-call path is checked against the
real client before Corral's models can call tools."""

from __future__ import annotations

import asyncio
import json

import httpx2
import openai

from corral.supervisor.responses.events import dialect_for
from tests.supervisor.responses.test_responses_render import (
    ID,
    MODEL,
    REQUEST,
    USAGE,
    _feed,
    call,
    chunk,
    usage_chunk,
)

CHUNKS = [
    chunk({"role": "assistant", "content": ""}),
    chunk({"content": "Checking."}),
    chunk(call(0, "", call_id="call_1", name="get_weather")),
    chunk(call(0, '{"city": "Pa')),
    chunk(call(0, 'ris"}')),
    chunk(call(1, '{"city": "Rome"}', call_id="call_2", name="get_weather")),
    chunk(reason="tool_calls"),
    usage_chunk(),
]


async def _rendered() -> bytes:
    return b"".join([piece async for piece in dialect_for(REQUEST).stream(_feed(CHUNKS, None))])


def client_over(body: bytes, content_type: str) -> openai.OpenAI:
    def answer(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, headers={"content-type": content_type}, content=body)

    return openai.OpenAI(
        api_key="unused", base_url="http://corral.test/v1", max_retries=0,
        http_client=httpx2.Client(transport=httpx2.MockTransport(answer)),
    )  # fmt: skip


def test_the_sdk_accumulates_streamed_function_calls() -> None:
    client = client_over(asyncio.run(_rendered()), "text/event-stream")
    kinds = []
    with client.responses.stream(model=MODEL, input="Weather?") as stream:
        for event in stream:
            kinds.append(event.type)
        final = stream.get_final_response()
    assert "response.function_call_arguments.done" in kinds
    assert final.output_text == "Checking."
    calls = [item for item in final.output if item.type == "function_call"]
    assert [(c.call_id, c.name, json.loads(c.arguments)) for c in calls] == [
        ("call_1", "get_weather", {"city": "Paris"}),
        ("call_2", "get_weather", {"city": "Rome"}),
    ]
    assert final.usage is not None
    assert final.usage.total_tokens == USAGE["prompt_tokens"] + USAGE["completion_tokens"]


def test_the_sdk_parses_a_whole_response_with_function_calls() -> None:
    message = {"role": "assistant", "content": None, "tool_calls": [
        {"id": "call_9", "type": "function",
         "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'}}]}  # fmt: skip
    whole = {"id": ID, "object": "chat.completion", "created": 7, "model": MODEL,
             "usage": USAGE, "choices": [
                 {"index": 0, "message": message, "finish_reason": "tool_calls"}]}  # fmt: skip
    body = json.dumps(dialect_for(REQUEST).full(whole)).encode()
    reply = client_over(body, "application/json").responses.create(model=MODEL, input="x")
    assert reply.output_text == ""
    item = reply.output[0]
    assert item.type == "function_call"
    assert (item.call_id, item.name, item.arguments) == ("call_9", "get_weather",
                                                         '{"city": "Oslo"}')  # fmt: skip
