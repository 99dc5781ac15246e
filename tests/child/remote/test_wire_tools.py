"""Tool calls on the remote child's OpenAI wire: tools and history out, call parts back."""

from __future__ import annotations

from corral.child.remote.wire import ChunkReader, request_body
from corral.protocol.messages import ChatMessage, Generate
from corral.protocol.tools import Tool, ToolCall, ToolCallDelta, ToolName

WEATHER = Tool(
    name="get_weather",
    description="Weather in a city",
    parameters={"type": "object", "properties": {"city": {"type": "string"}}},
)


def test_tools_and_a_named_choice_go_as_openai_functions() -> None:
    frame = Generate(
        request_id="r1",
        messages=(ChatMessage(role="user", content="weather?"),),
        tools=(WEATHER, Tool(name="now")),
        tool_choice=ToolName(name="get_weather"),
        parallel_tool_calls=False,
    )
    _, body = request_body(frame, "up")
    assert body["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Weather in a city",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
            },
        },
        {"type": "function", "function": {"name": "now", "parameters": {}}},
    ]
    assert body["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    assert body["parallel_tool_calls"] is False


def test_a_string_choice_goes_as_it_is_and_no_tools_send_no_tool_fields() -> None:
    asked = Generate(
        request_id="r1",
        messages=(ChatMessage(role="user", content="x"),),
        tools=(WEATHER,),
        tool_choice="required",
    )
    _, body = request_body(asked, "up")
    assert (body["tool_choice"], body["parallel_tool_calls"]) == ("required", True)
    plain = Generate(request_id="r2", messages=(ChatMessage(role="user", content="x"),))
    _, body = request_body(plain, "up")
    assert not {"tools", "tool_choice", "parallel_tool_calls"} & body.keys()


def test_history_carries_calls_with_null_content_and_results_with_their_call_id() -> None:
    call = ToolCall(id="call_1", name="get_weather", arguments='{"city": "Paris"}')
    frame = Generate(
        request_id="r1",
        messages=(
            ChatMessage(role="user", content="weather?"),
            ChatMessage(role="assistant", content="", tool_calls=(call,)),
            ChatMessage(role="tool", content="sunny", tool_call_id="call_1"),
        ),
        tools=(WEATHER,),
    )
    _, body = request_body(frame, "up")
    assert body["messages"] == [
        {"role": "user", "content": "weather?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                }
            ],
        },
        {"role": "tool", "content": "sunny", "tool_call_id": "call_1"},
    ]


def _delta(calls: list[dict[str, object]], finish: str | None = None) -> dict[str, object]:
    choice = {"index": 0, "delta": {"tool_calls": calls}, "finish_reason": finish}
    return {"choices": [choice]}


def test_streamed_call_fragments_become_call_deltas_and_end_with_tool_calls() -> None:
    reader = ChunkReader()
    opening = {
        "index": 0,
        "id": "call_a",
        "type": "function",
        "function": {"name": "get_weather", "arguments": ""},
    }
    second = {"index": 1, "id": "call_b", "function": {"name": "now", "arguments": "{}"}}
    parts = [
        reader.read(_delta([opening])),
        reader.read(_delta([{"index": 0, "function": {"arguments": '{"city": '}}])),
        reader.read(_delta([{"index": 0, "function": {"arguments": '"Paris"}'}}, second])),
        reader.read({"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]}),
    ]
    calls = [p.tool_calls for piece in parts for p in piece]
    assert calls == [
        (ToolCallDelta(index=0, id="call_a", name="get_weather"),),
        (ToolCallDelta(index=0, arguments='{"city": '),),
        (
            ToolCallDelta(index=0, arguments='"Paris"}'),
            ToolCallDelta(index=1, id="call_b", name="now", arguments="{}"),
        ),
        (),
    ]
    assert parts[3][0].finish_reason == "tool_calls"
    assert reader.finish_reason() == "tool_calls"


def test_a_whole_message_with_calls_and_an_engine_without_ids() -> None:
    reader = ChunkReader()
    message = {
        "role": "assistant",
        "content": None,
        "tool_calls": [{"type": "function", "function": {"name": "now", "arguments": {}}}],
    }
    (piece,) = reader.read(
        {"choices": [{"index": 0, "message": message, "finish_reason": "tool_calls"}]}
    )
    (call,) = piece.tool_calls
    assert (call.index, call.name, call.arguments) == (0, "now", "{}")
    assert call.id is not None
    assert call.id.startswith("call_")
    assert (piece.text, piece.finish_reason) == ("", "tool_calls")
