"""Anthropic's renderer over hand-made OpenAI chunk sequences, tool-call deltas included, and
the request translator: what the HTTP tests cannot reach until tool calling lands."""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator
from typing import Any

import pytest

from corral.supervisor.anthropic.render import full_message, message_events
from corral.supervisor.anthropic.schemas import MessagesRequest
from corral.supervisor.anthropic.translate import chat_body, to_chat_request
from corral.supervisor.errors import BadGateway

ID, MODEL = "chatcmpl-abc", "m"
USAGE = {"prompt_tokens": 9, "completion_tokens": 4, "prompt_tokens_details": {"cached_tokens": 3}}


def chunk(
    delta: dict[str, Any] | None = None, reason: str | None = None, stop: str | None = None
) -> dict[str, Any]:
    choice = {"index": 0, "delta": delta or {}, "logprobs": None, "finish_reason": reason}
    if reason is not None:  # vLLM's stop_reason, on the finishing chunk
        choice["stop_reason"] = stop
    return {"id": ID, "object": "chat.completion.chunk", "model": MODEL, "choices": [choice]}


def usage_chunk() -> dict[str, Any]:
    return {"id": ID, "object": "chat.completion.chunk", "model": MODEL, "choices": [],
            "usage": USAGE}  # fmt: skip


def call(index: int, arguments: str, *, call_id: str | None = None, name: str | None = None
         ) -> dict[str, Any]:  # fmt: skip
    fragment: dict[str, Any] = {"index": index, "function": {"arguments": arguments}}
    if call_id is not None:
        fragment |= {"id": call_id, "type": "function"}
        fragment["function"]["name"] = name
    return {"tool_calls": [fragment]}


async def _feed(items: list[Any], fail: Exception | None = None
                ) -> AsyncGenerator[dict[str, Any] | None, None]:  # fmt: skip
    for item in items:
        yield item
    if fail is not None:
        raise fail


async def events(items: list[Any], fail: Exception | None = None) -> list[tuple[str, Any]]:
    out = []
    async for raw in message_events(_feed(items, fail)):
        head, data = raw.decode().rstrip("\n").split("\n")
        assert head.startswith("event: ")
        payload = json.loads(data.removeprefix("data: "))
        assert payload["type"] == head.removeprefix("event: ")
        out.append((payload["type"], payload))
    return out


async def test_a_text_stream_is_one_text_block_between_message_start_and_stop() -> None:
    got = await events([chunk({"role": "assistant", "content": ""}), None,
                        chunk({"content": "Hel"}), chunk({"content": "lo"}),
                        chunk(reason="length"), usage_chunk()])  # fmt: skip
    assert [kind for kind, _ in got] == [
        "message_start", "ping", "ping", "content_block_start", "content_block_delta",
        "content_block_delta", "content_block_stop", "message_delta", "message_stop",
    ]  # fmt: skip
    start = got[0][1]["message"]
    assert start["id"] == "msg_abc"
    assert (start["role"], start["content"], start["model"]) == ("assistant", [], MODEL)
    assert got[3][1] == {"type": "content_block_start", "index": 0,
                         "content_block": {"type": "text", "text": ""}}  # fmt: skip
    assert [p["delta"] for _, p in got[4:6]] == [
        {"type": "text_delta", "text": "Hel"}, {"type": "text_delta", "text": "lo"}]  # fmt: skip
    delta = got[7][1]
    assert delta["delta"] == {"stop_reason": "max_tokens", "stop_sequence": None}
    assert delta["usage"] == {"input_tokens": 6, "output_tokens": 4,
                              "cache_creation_input_tokens": 0, "cache_read_input_tokens": 3}  # fmt: skip


async def test_tool_call_fragments_become_tool_use_blocks_with_input_json_deltas() -> None:
    got = await events([
        chunk({"role": "assistant", "content": ""}),
        chunk({"content": "Let me look."}),
        chunk(call(0, "", call_id="call_1", name="weather")),
        chunk(call(0, '{"city": ')),
        chunk(call(0, '"Oslo"}')),
        chunk(call(1, '{"city": "Rome"}', call_id="call_2", name="weather")),
        chunk(reason="tool_calls"),
        usage_chunk(),
    ])  # fmt: skip
    kinds = [kind for kind, _ in got]
    assert kinds == [
        "message_start", "ping",
        "content_block_start", "content_block_delta", "content_block_stop",
        "content_block_start", "content_block_delta", "content_block_delta", "content_block_stop",
        "content_block_start", "content_block_delta", "content_block_stop",
        "message_delta", "message_stop",
    ]  # fmt: skip
    assert got[5][1] == {
        "type": "content_block_start", "index": 1,
        "content_block": {"type": "tool_use", "id": "call_1", "name": "weather", "input": {}},
    }  # fmt: skip
    first = "".join(p["delta"]["partial_json"] for k, p in got[6:8])
    assert json.loads(first) == {"city": "Oslo"}
    assert {p["index"] for _, p in got[5:9]} == {1}
    assert got[9][1]["content_block"]["id"] == "call_2"
    assert got[10][1]["delta"] == {"type": "input_json_delta", "partial_json": '{"city": "Rome"}'}
    assert got[10][1]["index"] == 2
    assert got[12][1]["delta"]["stop_reason"] == "tool_use"


async def test_a_stop_string_that_ended_the_stream_is_its_stop_sequence() -> None:
    got = await events([chunk({"role": "assistant", "content": ""}), chunk({"content": "Hi"}),
                        chunk(reason="stop", stop="\n\nHuman:"), usage_chunk()])  # fmt: skip
    assert got[-2][1]["delta"] == {"stop_reason": "stop_sequence", "stop_sequence": "\n\nHuman:"}
    plain = await events([chunk({"content": "Hi"}), chunk(reason="stop"), usage_chunk()])
    assert plain[-2][1]["delta"] == {"stop_reason": "end_turn", "stop_sequence": None}


@pytest.mark.parametrize(
    ("reason", "stop", "calls", "expected"),
    [
        ("stop", "END", False, ("stop_sequence", "END")),
        ("stop", None, False, ("end_turn", None)),
        ("length", None, False, ("max_tokens", None)),
        # The turn ended in a call: that is what Anthropic says, whatever string cut it.
        ("tool_calls", "END", True, ("tool_use", None)),
    ],
)
def test_a_whole_answer_says_which_stop_sequence_ended_it(
    reason: str, stop: str | None, calls: bool, expected: tuple[str, str | None]
) -> None:
    message: dict[str, Any] = {"role": "assistant", "content": "Hi"}
    if calls:
        message["tool_calls"] = [{"id": "call_1", "type": "function",
                                  "function": {"name": "f", "arguments": "{}"}}]  # fmt: skip
    response = _whole(message, reason)
    response["choices"][0]["stop_reason"] = stop
    rendered = full_message(response)
    assert (rendered["stop_reason"], rendered["stop_sequence"]) == expected


async def test_a_failure_mid_stream_is_an_error_event_in_anthropics_shape() -> None:
    got = await events([chunk({"role": "assistant", "content": ""}), chunk({"content": "x"})],
                       fail=BadGateway("the model's process died"))  # fmt: skip
    assert got[-1] == ("error", {"type": "error", "error": {
        "type": "api_error", "message": "the model's process died", "param": None,
        "code": "model_failed"}})  # fmt: skip
    assert "message_stop" not in [kind for kind, _ in got]


def _whole(message: dict[str, Any], reason: str) -> dict[str, Any]:
    return {"id": ID, "object": "chat.completion", "model": MODEL, "usage": USAGE,
            "choices": [{"index": 0, "message": message, "finish_reason": reason}]}  # fmt: skip


def test_a_whole_answer_with_tool_calls_is_text_then_tool_use_blocks() -> None:
    message = {"role": "assistant", "content": "Checking.", "tool_calls": [
        {"id": "call_9", "type": "function",
         "function": {"name": "weather", "arguments": '{"city": "Oslo"}'}}]}  # fmt: skip
    rendered = full_message(_whole(message, "tool_calls"))
    assert rendered == {
        "id": "msg_abc", "type": "message", "role": "assistant", "model": MODEL,
        "content": [
            {"type": "text", "text": "Checking."},
            {"type": "tool_use", "id": "call_9", "name": "weather", "input": {"city": "Oslo"}},
        ],
        "stop_reason": "tool_use", "stop_sequence": None,
        "usage": {"input_tokens": 6, "output_tokens": 4, "cache_creation_input_tokens": 0,
                  "cache_read_input_tokens": 3},
    }  # fmt: skip
    # A named tool_choice ends in "stop" in OpenAI's words; in Anthropic's it is a tool_use.
    only_calls = full_message(_whole({**message, "content": None}, "stop"))
    assert [block["type"] for block in only_calls["content"]] == ["tool_use"]
    assert only_calls["stop_reason"] == "tool_use"
    broken = {**message, "tool_calls": [{**message["tool_calls"][0], "function": {
        "name": "weather", "arguments": "[1, 2]"}}]}  # fmt: skip
    with pytest.raises(BadGateway):
        full_message(_whole(broken, "tool_calls"))


def chat_of(body: dict[str, Any]) -> dict[str, Any]:
    """The OpenAI chat body the translator hands Corral's chat route."""
    return chat_body(MessagesRequest.model_validate({"model": "m", "max_tokens": 5, **body}))


def test_blocks_translate_to_openai_messages_in_order() -> None:
    request = MessagesRequest.model_validate({
        "model": "m", "max_tokens": 5, "system": [{"type": "text", "text": "Be "},
                                                   {"type": "text", "text": "brief."}],
        "stop_sequences": ["END"], "temperature": 0.5, "top_k": 4,
        "metadata": {"user_id": "u-1"},
        "messages": [
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": [{"type": "text", "text": "hello"}]},
            {"role": "user", "content": [{"type": "text", "text": "a", "cache_control": {
                "type": "ephemeral"}}, {"type": "text", "text": "b"}]},
        ],
    })  # fmt: skip
    chat = to_chat_request(request)
    assert [(m.role, m.content) for m in chat.messages] == [
        ("system", "Be brief."),
        ("user", "hi"),
        ("assistant", "hello"),
        ("user", "ab"),
    ]
    assert (chat.max_tokens, chat.stop, chat.temperature, chat.top_k, chat.user) == (
        5, ["END"], 0.5, 4, "u-1")  # fmt: skip


def test_tool_use_and_tool_result_blocks_become_tool_calls_and_tool_messages() -> None:
    chat = chat_of({"messages": [
        {"role": "assistant", "content": [
            {"type": "text", "text": "Looking."},
            {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {"city": "Oslo"}}]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "toolu_1", "content": "12 C"},
            {"type": "tool_result", "tool_use_id": "toolu_2", "is_error": True,
             "content": [{"type": "text", "text": "timeout"}]},
            {"type": "text", "text": "And Rome?"}]},
    ]})  # fmt: skip
    assert chat["messages"] == [
        {"role": "assistant", "content": "Looking.", "tool_calls": [
            {"id": "toolu_1", "type": "function",
             "function": {"name": "weather", "arguments": '{"city": "Oslo"}'}}]},
        {"role": "tool", "tool_call_id": "toolu_1", "content": "12 C"},
        {"role": "tool", "tool_call_id": "toolu_2", "content": "Error: timeout"},
        {"role": "user", "content": "And Rome?"},
    ]  # fmt: skip


def test_tools_map_to_openai_function_tools() -> None:
    schema = {"type": "object", "properties": {"city": {"type": "string"}}}
    chat = chat_of({"messages": [{"role": "user", "content": "hi"}], "tools": [
        {"name": "weather", "description": "The weather.", "input_schema": schema},
        {"name": "clock", "input_schema": {"type": "object"}, "cache_control": {"type": "ephemeral"}},
    ]})  # fmt: skip
    assert chat["tools"] == [
        {"type": "function", "function": {
            "name": "weather", "description": "The weather.", "parameters": schema}},
        {"type": "function", "function": {"name": "clock", "parameters": {"type": "object"}}},
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ({"type": "auto"}, {"tool_choice": "auto"}),
        ({"type": "any"}, {"tool_choice": "required"}),
        ({"type": "none"}, {"tool_choice": "none"}),
        ({"type": "tool", "name": "weather"},
         {"tool_choice": {"type": "function", "function": {"name": "weather"}}}),
        ({"type": "auto", "disable_parallel_tool_use": True},
         {"tool_choice": "auto", "parallel_tool_calls": False}),
    ],
)  # fmt: skip
def test_tool_choice_maps_to_openais(choice: dict[str, Any], expected: dict[str, Any]) -> None:
    chat = chat_of({"messages": [{"role": "user", "content": "hi"}], "tool_choice": choice})
    assert {k: chat[k] for k in expected} == expected
    assert "parallel_tool_calls" in chat or "parallel_tool_calls" not in expected


def test_output_config_format_is_a_strict_json_schema_response_format() -> None:
    schema = {"type": "object", "properties": {"city": {"type": "string"}}}
    chat = chat_of({"messages": [{"role": "user", "content": "hi"}],
                    "output_config": {"format": {"type": "json_schema", "schema": schema}}})  # fmt: skip
    assert chat["response_format"] == {"type": "json_schema", "json_schema": {
        "name": "output", "schema": schema, "strict": True}}  # fmt: skip
