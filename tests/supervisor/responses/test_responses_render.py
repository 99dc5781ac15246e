"""The Responses renderer over hand-made OpenAI chunk sequences, tool-call deltas included,
and the request translator: what the HTTP tests cannot reach until tool calling lands."""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator
from typing import Any

import pytest

from corral.supervisor.errors import BadGateway, BadRequest
from corral.supervisor.responses.events import dialect_for
from corral.supervisor.responses.schemas import ResponsesRequest
from corral.supervisor.responses.translate import chat_body

ID, MODEL = "chatcmpl-abc", "m"
USAGE = {"prompt_tokens": 9, "completion_tokens": 4, "prompt_tokens_details": {"cached_tokens": 3}}
REQUEST = ResponsesRequest.model_validate(
    {"model": MODEL, "input": "hi", "instructions": "Be kind."}
)


def chunk(delta: dict[str, Any] | None = None, reason: str | None = None) -> dict[str, Any]:
    choice = {"index": 0, "delta": delta or {}, "logprobs": None, "finish_reason": reason}
    return {"id": ID, "object": "chat.completion.chunk", "created": 7, "model": MODEL,
            "choices": [choice]}  # fmt: skip


def usage_chunk() -> dict[str, Any]:
    return {"id": ID, "object": "chat.completion.chunk", "created": 7, "model": MODEL,
            "choices": [], "usage": USAGE}  # fmt: skip


def call(index: int, arguments: str, *, call_id: str | None = None, name: str | None = None
         ) -> dict[str, Any]:  # fmt: skip
    fragment: dict[str, Any] = {"index": index, "function": {"arguments": arguments}}
    if call_id is not None:
        fragment |= {"id": call_id, "type": "function"}
        fragment["function"]["name"] = name
    return {"tool_calls": [fragment]}


async def _feed(items: list[Any], fail: Exception | None
                ) -> AsyncGenerator[dict[str, Any] | None, None]:  # fmt: skip
    for item in items:
        yield item
    if fail is not None:
        raise fail


async def events(items: list[Any], fail: Exception | None = None) -> list[dict[str, Any]]:
    out = []
    async for raw in dialect_for(REQUEST).stream(_feed(items, fail)):
        if raw == b": ping\n\n":
            out.append({"type": "ping"})
            continue
        head, data = raw.decode().rstrip("\n").split("\n")
        payload = json.loads(data.removeprefix("data: "))
        assert head == f"event: {payload['type']}"
        out.append(payload)
    numbers = [e["sequence_number"] for e in out if e["type"] != "ping"]
    assert numbers == list(range(len(numbers)))
    return out


async def test_a_text_stream_is_one_message_item_with_its_part_and_deltas() -> None:
    got = await events([chunk({"role": "assistant", "content": ""}), None,
                        chunk({"content": "Hel"}), chunk({"content": "lo"}),
                        chunk(reason="stop"), usage_chunk()])  # fmt: skip
    assert [e["type"] for e in got] == [
        "response.created", "response.in_progress", "ping",
        "response.output_item.added", "response.content_part.added",
        "response.output_text.delta", "response.output_text.delta",
        "response.output_text.done", "response.content_part.done", "response.output_item.done",
        "response.completed",
    ]  # fmt: skip
    created = got[0]["response"]
    assert (created["id"], created["status"], created["output"]) == ("resp_abc", "in_progress", [])
    assert created["instructions"] == "Be kind."
    item_id = got[3]["item"]["id"]
    assert got[3]["item"] == {"type": "message", "id": item_id, "status": "in_progress",
                              "role": "assistant", "content": []}  # fmt: skip
    assert [e["delta"] for e in got[5:7]] == ["Hel", "lo"]
    assert {(e["item_id"], e["output_index"], e["content_index"]) for e in got[4:9]} == {
        (item_id, 0, 0)}  # fmt: skip
    assert got[7]["text"] == "Hello"
    done = got[-1]["response"]
    assert done["status"] == "completed"
    assert done["output"] == [got[9]["item"]]
    assert done["output"][0]["content"][0]["text"] == "Hello"
    assert done["usage"] == {"input_tokens": 9, "input_tokens_details": {"cached_tokens": 3},
                             "output_tokens": 4, "output_tokens_details": {"reasoning_tokens": 0},
                             "total_tokens": 13}  # fmt: skip


async def test_a_length_stop_is_response_incomplete() -> None:
    got = await events([chunk({"role": "assistant", "content": ""}), chunk({"content": "a"}),
                        chunk(reason="length"), usage_chunk()])  # fmt: skip
    assert got[-1]["type"] == "response.incomplete"
    assert got[-1]["response"]["incomplete_details"] == {"reason": "max_output_tokens"}


async def test_tool_call_fragments_become_function_call_items() -> None:
    got = await events([
        chunk({"role": "assistant", "content": ""}),
        chunk({"content": "Looking."}),
        chunk(call(0, "", call_id="call_1", name="weather")),
        chunk(call(0, '{"city": ')),
        chunk(call(0, '"Oslo"}')),
        chunk(call(1, '{"city": "Rome"}', call_id="call_2", name="weather")),
        chunk(reason="tool_calls"),
        usage_chunk(),
    ])  # fmt: skip
    kinds = [e["type"] for e in got]
    assert kinds == [
        "response.created", "response.in_progress",
        "response.output_item.added", "response.content_part.added", "response.output_text.delta",
        "response.output_text.done", "response.content_part.done", "response.output_item.done",
        "response.output_item.added", "response.function_call_arguments.delta",
        "response.function_call_arguments.delta", "response.function_call_arguments.done",
        "response.output_item.done",
        "response.output_item.added", "response.function_call_arguments.delta",
        "response.function_call_arguments.done", "response.output_item.done",
        "response.completed",
    ]  # fmt: skip
    added = got[8]
    assert added["output_index"] == 1
    assert added["item"] == {"type": "function_call", "id": added["item"]["id"],
                             "call_id": "call_1", "name": "weather", "arguments": "",
                             "status": "in_progress"}  # fmt: skip
    assert {e["item_id"] for e in got[9:12]} == {added["item"]["id"]}
    assert got[11]["arguments"] == '{"city": "Oslo"}'
    assert got[12]["item"]["arguments"] == '{"city": "Oslo"}'
    assert got[12]["item"]["status"] == "completed"
    assert got[13]["output_index"] == 2
    final = got[-1]["response"]
    assert [i["type"] for i in final["output"]] == ["message", "function_call", "function_call"]
    assert [i.get("call_id") for i in final["output"]] == [None, "call_1", "call_2"]
    assert final["status"] == "completed"


async def test_a_failure_mid_stream_is_an_error_event() -> None:
    got = await events([chunk({"role": "assistant", "content": ""}), chunk({"content": "x"})],
                       fail=BadGateway("the model's process died"))  # fmt: skip
    assert got[-1]["type"] == "error"
    assert (got[-1]["code"], got[-1]["message"]) == ("model_failed", "the model's process died")
    assert "response.completed" not in [e["type"] for e in got]


def test_a_whole_response_with_tool_calls_has_function_call_items() -> None:
    message = {"role": "assistant", "content": None, "tool_calls": [
        {"id": "call_9", "type": "function",
         "function": {"name": "weather", "arguments": '{"city": "Oslo"}'}}]}  # fmt: skip
    whole = {"id": ID, "object": "chat.completion", "created": 7, "model": MODEL,
             "usage": USAGE, "choices": [
                 {"index": 0, "message": message, "finish_reason": "tool_calls"}]}  # fmt: skip
    rendered = dialect_for(REQUEST).full(whole)
    assert rendered["object"] == "response"
    assert rendered["status"] == "completed"
    assert rendered["output"] == [{"type": "function_call", "id": rendered["output"][0]["id"],
                                   "call_id": "call_9", "name": "weather",
                                   "arguments": '{"city": "Oslo"}', "status": "completed"}]  # fmt: skip


def chat_of(body: dict[str, Any]) -> dict[str, Any]:
    return chat_body(ResponsesRequest.model_validate({"model": "m", **body}))


def test_input_items_translate_to_chat_messages() -> None:
    chat = chat_of({"instructions": "Be brief.", "max_output_tokens": 9, "input": [
        {"role": "user", "content": "Weather in Oslo?"},
        {"type": "message", "role": "assistant", "content": [
            {"type": "output_text", "text": "Looking.", "annotations": []}]},
        {"type": "function_call", "call_id": "call_1", "name": "weather",
         "arguments": '{"city": "Oslo"}'},
        {"type": "function_call", "call_id": "call_2", "name": "weather",
         "arguments": '{"city": "Rome"}'},
        {"type": "function_call_output", "call_id": "call_1", "output": "12 C"},
        {"type": "function_call_output", "call_id": "call_2",
         "output": [{"type": "input_text", "text": "20 C"}]},
        {"role": "user", "content": [{"type": "input_text", "text": "Thanks"}]},
    ]})  # fmt: skip
    assert chat["max_tokens"] == 9
    assert chat["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Weather in Oslo?"},
        {"role": "assistant", "content": "Looking.", "tool_calls": [
            {"id": "call_1", "type": "function",
             "function": {"name": "weather", "arguments": '{"city": "Oslo"}'}},
            {"id": "call_2", "type": "function",
             "function": {"name": "weather", "arguments": '{"city": "Rome"}'}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "12 C"},
        {"role": "tool", "tool_call_id": "call_2", "content": "20 C"},
        {"role": "user", "content": "Thanks"},
    ]  # fmt: skip


def test_function_tools_tool_choice_and_text_format_map_to_chat_fields() -> None:
    schema = {"type": "object", "properties": {"city": {"type": "string"}}}
    chat = chat_of({"input": "x", "tools": [
        {"type": "function", "name": "weather", "description": "d", "parameters": schema,
         "strict": True}],
        "tool_choice": {"type": "function", "name": "weather"}, "parallel_tool_calls": False,
        "text": {"format": {"type": "json_schema", "name": "city", "schema": schema,
                            "strict": True}}})  # fmt: skip
    assert chat["tools"] == [{"type": "function", "function": {
        "name": "weather", "description": "d", "parameters": schema, "strict": True}}]  # fmt: skip
    assert chat["tool_choice"] == {"type": "function", "function": {"name": "weather"}}
    assert chat["parallel_tool_calls"] is False
    assert chat["response_format"] == {"type": "json_schema", "json_schema": {
        "name": "city", "schema": schema, "strict": True}}  # fmt: skip
    assert chat_of({"input": "x", "tool_choice": "required"})["tool_choice"] == "required"
    assert chat_of({"input": "x", "text": {"format": {"type": "json_object"}}})[
        "response_format"] == {"type": "json_object"}  # fmt: skip
    assert "response_format" not in chat_of({"input": "x", "text": {"format": {"type": "text"}}})
    with pytest.raises(BadRequest):
        chat_of({"input": "x", "text": {"format": {"type": "json_schema"}}})
