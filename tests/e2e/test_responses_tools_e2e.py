"""Responses function calling and ``text.format`` end to end, with the demo model and the real
``openai`` client.

These need tool calling and ``response_format`` in Corral's chat request (another branch);
until it lands, the chat request refuses ``tools`` by name and these fail with that 400.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.conftest import SupervisorFactory, client_for, have_demo
from tests.e2e.test_responses_e2e import DEMO

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.llama,
    pytest.mark.demo,
    pytest.mark.skipif(not have_demo(), reason="the demo extra is not installed"),
]
WEATHER: dict[str, Any] = {
    "type": "function",
    "name": "get_weather",
    "description": "The current weather in a city.",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
        "additionalProperties": False,
    },
    "strict": True,
}
ASK = "What is the weather in Paris right now?"


def test_a_forced_function_call_is_a_function_call_item_whole_and_streamed(
    supervisor: SupervisorFactory,
) -> None:
    client = client_for(supervisor(), timeout=300)
    args: dict[str, Any] = {
        "model": DEMO,
        "input": ASK,
        "tools": [WEATHER],
        "tool_choice": {"type": "function", "name": "get_weather"},
        "max_output_tokens": 64,
        "temperature": 0.0,
    }
    whole = client.responses.create(**args)
    calls = [item for item in whole.output if item.type == "function_call"]
    assert len(calls) >= 1
    assert calls[0].name == "get_weather"
    assert isinstance(json.loads(calls[0].arguments)["city"], str)
    kinds = []
    with client.responses.stream(**args) as stream:
        for event in stream:
            kinds.append(event.type)
        final = stream.get_final_response()
    assert "response.function_call_arguments.delta" in kinds
    assert "response.function_call_arguments.done" in kinds
    streamed = [item for item in final.output if item.type == "function_call"]
    assert [(c.name, c.arguments) for c in streamed] == [(c.name, c.arguments) for c in calls]
    # The output goes back as a function_call_output item; the model answers in text.
    answer = client.responses.create(
        model=DEMO,
        tools=[WEATHER],
        tool_choice="none",
        max_output_tokens=48,
        input=[
            {"role": "user", "content": ASK},
            {
                "type": "function_call",
                "call_id": calls[0].call_id,
                "name": calls[0].name,
                "arguments": calls[0].arguments,
            },
            {
                "type": "function_call_output",
                "call_id": calls[0].call_id,
                "output": "18 C and sunny",
            },
        ],
    )
    assert answer.output_text


def test_text_format_json_schema_gives_json_that_fits(supervisor: SupervisorFactory) -> None:
    client = client_for(supervisor(), timeout=300)
    schema = {
        "type": "object",
        "properties": {"capital": {"type": "string"}},
        "required": ["capital"],
        "additionalProperties": False,
    }
    reply = client.responses.create(
        model=DEMO,
        input="What is the capital of France? Reply in JSON.",
        max_output_tokens=96,
        # Greedy: sampled, the small demo model may write a long string that the cap cuts.
        temperature=0.0,
        text={
            "format": {"type": "json_schema", "name": "capital", "schema": schema, "strict": True}
        },
    )
    assert reply.status == "completed", reply
    data = json.loads(reply.output_text)
    assert set(data) == {"capital"}
    assert isinstance(data["capital"], str)
