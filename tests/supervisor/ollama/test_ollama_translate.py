"""The translator's pure parts: Ollama's tool calls (objects, no ids) to OpenAI's (JSON
strings with ids) and back, streamed tool-call fragments, logprobs, and errors renamed to the
fields an Ollama client sent."""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator
from typing import Any

import pytest

from corral.supervisor.errors import BadGateway, BadRequest
from corral.supervisor.ollama.render import (
    Shape,
    Timing,
    ToolCallParts,
    full,
    ollama_logprobs,
    stream,
)
from corral.supervisor.ollama.schemas import Message
from corral.supervisor.ollama.translate import RENAMES, chat_messages, renamed


def timing() -> Timing:
    return Timing(loaded_before=True, loaded_since=lambda: None)


def test_tool_calls_get_ids_and_tool_results_answer_them_by_name() -> None:
    messages = [
        Message(role="user", content="weather in Paris and Rome?"),
        Message.model_validate(
            {
                "role": "assistant",
                "content": "",
                "tool_calls": [
                    {"function": {"name": "weather", "arguments": {"city": "Paris"}}},
                    {"function": {"name": "clock", "arguments": {}}},
                ],
            }
        ),
        Message(role="tool", content="12:00", tool_name="clock"),
        Message(role="tool", content="sunny"),
    ]
    out = chat_messages(messages)
    calls = out[1]["tool_calls"]
    assert [c["id"] for c in calls] == ["call_1_0", "call_1_1"]
    assert calls[0]["function"] == {"name": "weather", "arguments": '{"city": "Paris"}'}
    assert out[1]["content"] is None
    assert (out[2]["tool_call_id"], out[2]["name"]) == ("call_1_1", "clock")
    assert out[3]["tool_call_id"] == "call_1_0"  # no name: the earliest unanswered call
    assert "name" not in out[3]
    # Without any call to answer, a tool message carries no id (plain text for the template).
    assert "tool_call_id" not in chat_messages([Message(role="tool", content="x")])[0]


def test_a_whole_answer_with_tool_calls_has_object_arguments() -> None:
    response = {
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "call_a",
                            "type": "function",
                            "function": {"name": "weather", "arguments": '{"city": "Paris"}'},
                        }
                    ],
                },
                "finish_reason": "tool_calls",
            }
        ],
        "usage": {"prompt_tokens": 9, "completion_tokens": 4},
    }
    answer = full(Shape("chat", "m:latest", timing()), response)
    assert answer["message"]["tool_calls"] == [
        {
            "function": {"name": "weather", "arguments": {"city": "Paris"}, "index": 0},
            "id": "call_a",
        }
    ]
    assert (answer["done_reason"], answer["eval_count"], answer["prompt_eval_count"]) == (
        "stop",
        4,
        9,
    )
    broken = json.loads(json.dumps(response))
    broken["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"] = '{"city": '
    with pytest.raises(BadGateway):
        full(Shape("chat", "m", timing()), broken)


async def _events(
    items: list[dict[str, Any] | None],
) -> AsyncGenerator[dict[str, Any] | None, None]:
    for item in items:
        yield item


async def test_streamed_tool_call_fragments_arrive_whole_before_the_final_line() -> None:
    def chunk(delta: dict[str, Any], reason: str | None = None) -> dict[str, Any]:
        return {
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": reason}]
        }

    fragments = [
        chunk({"role": "assistant", "content": ""}),
        None,  # a ping: NDJSON has no comments, so nothing is written
        chunk(
            {
                "tool_calls": [
                    {"index": 0, "id": "call_x", "function": {"name": "wea", "arguments": ""}}
                ]
            }
        ),
        chunk({"tool_calls": [{"index": 0, "function": {"name": "ther", "arguments": '{"ci'}}]}),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": 'ty": "Rome"}'}}]}),
        chunk(
            {
                "tool_calls": [
                    {"index": 1, "id": "call_y", "function": {"name": "clock", "arguments": "{}"}}
                ]
            }
        ),
        chunk({}, "tool_calls"),
        {"choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 7}},
    ]
    shape = Shape("chat", "m", timing())
    out = [json.loads(b) async for b in stream(shape, _events(fragments))]
    assert len(out) == 2
    calls = out[0]["message"]["tool_calls"]
    assert calls == [
        {
            "function": {"name": "weather", "arguments": {"city": "Rome"}, "index": 0},
            "id": "call_x",
        },
        {"function": {"name": "clock", "arguments": {}, "index": 1}, "id": "call_y"},
    ]
    assert out[0]["done"] is False
    assert (out[1]["done"], out[1]["done_reason"], out[1]["eval_count"]) == (True, "stop", 7)


def test_tool_call_parts_join_by_index() -> None:
    parts = ToolCallParts()
    assert not parts
    parts.add([{"index": 2, "function": {"name": "a", "arguments": "{}"}}])
    assert [c["function"]["index"] for c in parts.whole()] == [2]


def test_logprobs_of_either_api_become_ollamas_list() -> None:
    chat = {
        "content": [
            {
                "token": "Hi",
                "logprob": -0.1,
                "bytes": [72, 105],
                "top_logprobs": [{"token": "Hi", "logprob": -0.1, "bytes": [72, 105]}],
            }
        ],
        "refusal": None,
    }
    assert ollama_logprobs(chat) == [
        {
            "token": "Hi",
            "logprob": -0.1,
            "bytes": [72, 105],
            "top_logprobs": [{"token": "Hi", "logprob": -0.1, "bytes": [72, 105]}],
        }
    ]
    completion = {
        "tokens": ["a", "b"],
        "token_logprobs": [-1.0, -2.0],
        "top_logprobs": [{"a": -1.0, "c": -3.0}, {"b": -2.0}],
        "text_offset": [0, 1],
    }
    listed = ollama_logprobs(completion)
    assert listed is not None
    assert [t["token"] for t in listed] == ["a", "b"]
    assert listed[0]["top_logprobs"] == [
        {"token": "a", "logprob": -1.0},
        {"token": "c", "logprob": -3.0},
    ]
    assert ollama_logprobs(None) is None


def test_errors_name_the_field_the_ollama_client_sent() -> None:
    with pytest.raises(BadRequest) as caught, renamed(RENAMES["generate", "chat"]):
        raise BadRequest("max_tokens may be at most 10", param="max_tokens")
    assert (caught.value.param, caught.value.message) == (
        "options.num_predict",
        "options.num_predict may be at most 10",
    )
    with pytest.raises(BadRequest) as caught, renamed(RENAMES["generate", "chat"]):
        raise BadRequest("messages.1.content: too long", param="messages.1.content")
    assert (caught.value.param, caught.value.message) == ("prompt", "prompt: too long")
    with pytest.raises(BadRequest) as caught, renamed(RENAMES["chat", "chat"]):
        raise BadRequest("unknown field 'response_format'", param="response_format")
    assert caught.value.message == "unknown field 'format'"
