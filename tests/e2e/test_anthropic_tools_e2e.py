"""Anthropic tool use and structured output end to end, with the demo model and the real
``anthropic`` client.

These need tool calling and ``response_format`` in Corral's chat request (another branch);
until it lands, the chat request refuses ``tools`` by name and these fail with that 400.
"""

from __future__ import annotations

import json
from typing import Any

import anthropic
import pytest

from tests.conftest import SupervisorFactory, have_demo
from tests.e2e.test_anthropic_e2e import DEMO, anthropic_for

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.llama,
    pytest.mark.demo,
    pytest.mark.skipif(not have_demo(), reason="the demo extra is not installed"),
]
WEATHER: dict[str, Any] = {
    "name": "get_weather",
    "description": "The current weather in a city.",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}
ASK = [{"role": "user", "content": "What is the weather in Paris right now?"}]


def test_a_forced_tool_call_is_a_tool_use_block_whole_and_streamed(
    supervisor: SupervisorFactory,
) -> None:
    client = anthropic_for(supervisor())
    args: dict[str, Any] = {
        "model": DEMO,
        "max_tokens": 64,
        "messages": ASK,
        "tools": [WEATHER],
        "tool_choice": {"type": "tool", "name": "get_weather"},
        "extra_body": {"temperature": 0.0},
    }
    whole = client.messages.create(**args)
    uses = [block for block in whole.content if block.type == "tool_use"]
    assert len(uses) >= 1
    assert uses[0].name == "get_weather"
    assert isinstance(uses[0].input, dict)
    assert isinstance(uses[0].input["city"], str)
    assert whole.stop_reason == "tool_use"
    with client.messages.stream(**args) as stream:
        final = stream.get_final_message()
    streamed = [block for block in final.content if block.type == "tool_use"]
    assert [(b.name, b.input) for b in streamed] == [(b.name, b.input) for b in uses]
    assert final.stop_reason == "tool_use"
    # The result goes back as a tool_result block; the model answers in text.
    answer = client.messages.create(
        model=DEMO,
        max_tokens=48,
        tools=[WEATHER],  # type: ignore[list-item]
        messages=[
            *ASK,  # type: ignore[list-item]
            {"role": "assistant", "content": [b.model_dump() for b in whole.content]},  # type: ignore[misc]
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": uses[0].id, "content": "18 C and sunny"}
                ],
            },
        ],
        tool_choice={"type": "none"},
    )
    assert answer.content[0].type == "text"
    assert answer.stop_reason in {"end_turn", "max_tokens"}


def test_output_config_format_gives_json_that_fits_the_schema(
    supervisor: SupervisorFactory,
) -> None:
    client = anthropic_for(supervisor())
    schema = {
        "type": "object",
        "properties": {"capital": {"type": "string"}},
        "required": ["capital"],
        "additionalProperties": False,
    }
    reply = client.messages.create(
        model=DEMO,
        max_tokens=96,
        messages=[{"role": "user", "content": "What is the capital of France? Reply in JSON."}],
        output_config={"format": {"type": "json_schema", "schema": schema}},
        # Greedy: sampled, the small demo model may write a long string that max_tokens cuts.
        extra_body={"temperature": 0.0},
    )
    assert reply.stop_reason == "end_turn", reply
    assert reply.content[0].type == "text"
    data = json.loads(reply.content[0].text)
    assert set(data) == {"capital"}
    assert isinstance(data["capital"], str)


def test_tools_the_chat_request_refuses_are_anthropic_errors(
    supervisor: SupervisorFactory,
) -> None:
    client = anthropic_for(supervisor())
    with pytest.raises(anthropic.BadRequestError):
        client.messages.create(
            model=DEMO, max_tokens=8, messages=ASK,  # type: ignore[arg-type]
            tools=[WEATHER], tool_choice={"type": "tool", "name": "no_such_tool"},  # type: ignore[list-item]
        )  # fmt: skip
