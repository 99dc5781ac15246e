"""Ollama's tool calling and ``format`` through the official ``ollama`` client, on the demo
model (Qwen2.5-Coder 0.5B, whose template renders tools).

These need the OpenAI path's tools and ``response_format`` (another branch): until that lands
they fail with a 400 naming ``tools`` or ``format``, which is the refusal the house rule asks
for, not a silent drop.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import ollama
import pytest

from tests.conftest import SupervisorFactory, have_demo
from tests.support.supervisor_proc import Supervisor

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.llama,
    pytest.mark.demo,
    pytest.mark.skipif(not have_demo(), reason="the demo extra is not installed"),
]

MODEL = "qwen2.5-coder-0.5b-instruct"
ASK = [{"role": "user", "content": "What is the weather in Paris right now? Use the tool."}]


def get_weather(city: str) -> str:
    """Get the current weather in a city.

    Args:
      city: The name of the city

    Returns:
      str: The weather there
    """
    return '{"city": "' + city + '", "temperature_c": 22, "sky": "sunny"}'


@pytest.fixture
def client(supervisor: SupervisorFactory) -> Iterator[ollama.Client]:
    sup: Supervisor = supervisor()
    with ollama.Client(host=sup.base_url, timeout=300) as c:
        yield c


def test_a_tool_call_has_object_arguments_and_its_result_is_answered(
    client: ollama.Client,
) -> None:
    options = {"temperature": 0, "seed": 1, "num_predict": 128}
    first = client.chat(MODEL, messages=ASK, tools=[get_weather], options=options)
    calls = first.message.tool_calls
    assert calls, first.message
    call = calls[0]
    assert call.function.name == "get_weather"
    assert isinstance(call.function.arguments, dict)
    assert "paris" in str(call.function.arguments.get("city", "")).lower()
    result = get_weather(**call.function.arguments)
    history = [
        *ASK,
        first.message,
        {"role": "tool", "content": result, "tool_name": call.function.name},
        # The 0.5B demo model repeats its call unless the question is asked again.
        {"role": "user", "content": "Answer in one sentence: how warm is it in Paris?"},
    ]
    # Without the tools offered again: the demo model calls any tool it is shown, even right
    # after its result (Ollama has no tool_choice to say "answer now").
    second = client.chat(MODEL, messages=history, options=options)
    assert not second.message.tool_calls
    assert (
        "22" in (second.message.content or "") or "sunny" in (second.message.content or "").lower()
    )


def test_streamed_tool_calls_arrive_whole(client: ollama.Client) -> None:
    options = {"temperature": 0, "seed": 1, "num_predict": 128}
    parts = list(
        client.chat(MODEL, messages=ASK, tools=[get_weather], options=options, stream=True)
    )
    calls = [c for p in parts for c in (p.message.tool_calls or [])]
    assert [c.function.name for c in calls] == ["get_weather"]
    assert isinstance(calls[0].function.arguments, dict)
    assert parts[-1].done is True


def test_format_json_and_a_schema(client: ollama.Client) -> None:
    options = {"temperature": 0, "num_predict": 96}
    prompt = "Describe a cat as JSON with the keys name and age."
    loose = client.generate(MODEL, prompt, format="json", options=options)
    assert isinstance(json.loads(loose.response), dict)
    schema = {
        "type": "object",
        "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
        "required": ["name", "age"],
    }
    strict = client.chat(
        MODEL, messages=[{"role": "user", "content": prompt}], format=schema, options=options
    )
    parsed = json.loads(strict.message.content or "")
    assert isinstance(parsed["name"], str)
    assert isinstance(parsed["age"], int)
