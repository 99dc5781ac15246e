"""Tool calling and structured output end to end: the real supervisor, the demo model (Qwen 2.5
Coder 0.5B, whose template writes Hermes-style ``<tool_call>`` calls), the official ``openai``
client and LangChain. One supervisor serves the whole module; every answer is greedy."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from pydantic import BaseModel

from tests.conftest import client_for, have_demo
from tests.support.supervisor_proc import Supervisor

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.llama,
    pytest.mark.demo,
    pytest.mark.skipif(not have_demo(), reason="the demo extra is not installed"),
]

MODEL = "qwen2.5-coder-0.5b-instruct"
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string", "description": "The city name"}},
            "required": ["city"],
        },
    },
}
TIME = {
    "type": "function",
    "function": {
        "name": "get_time",
        "description": "Get the current time in a time zone",
        "parameters": {
            "type": "object",
            "properties": {"zone": {"type": "string"}},
            "required": ["zone"],
        },
    },
}
ASK = [{"role": "user", "content": "What is the weather in Paris?"}]
GREEDY: dict[str, Any] = {"model": MODEL, "temperature": 0, "max_tokens": 60}


class GetWeather(BaseModel):
    """Get the current weather in a city."""

    city: str


class Weather(BaseModel):
    city: str
    temperature_c: int


@pytest.fixture(scope="module")
def sup(
    tmp_path_factory: pytest.TempPathFactory, tiny_models_dir: Path, shared_data_dir: Path
) -> Iterator[Supervisor]:
    folder = tmp_path_factory.mktemp("tools-e2e")
    config = folder / "corral.toml"
    config.write_text(
        f'default_model = "{MODEL}"\nn_ctx = 2048\nshutdown_grace = 10\n'
        f'database_path = "{folder / "corral.db"}"\n'
    )
    server = Supervisor(data_dir=shared_data_dir, models_dir=tiny_models_dir, config=config)
    server.start()
    yield server
    server.terminate()


@pytest.fixture(scope="module")
def client(sup: Supervisor) -> openai.OpenAI:
    return client_for(sup, timeout=600)


def _city(arguments: str) -> str:
    return str(json.loads(arguments)["city"])


def test_required_gives_a_call_whole_and_streamed(client: openai.OpenAI) -> None:
    args: dict[str, Any] = {
        **GREEDY,
        "messages": ASK,
        "tools": [WEATHER],
        "tool_choice": "required",
    }
    whole = client.chat.completions.create(**args)
    choice = whole.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    (call,) = choice.message.tool_calls or []
    assert call.id.startswith("call_")
    assert call.type == "function"
    assert call.function.name == "get_weather"
    assert "paris" in _city(call.function.arguments).lower()

    chunks = list(
        client.chat.completions.create(**args, stream=True, stream_options={"include_usage": True})
    )
    deltas = [c.choices[0].delta for c in chunks if c.choices]
    assert all("<tool_call>" not in (d.content or "") for d in deltas)
    parts = [p for d in deltas for p in d.tool_calls or []]
    first = parts[0]
    assert (first.index, first.type) == (0, "function")
    assert first.id is not None
    assert first.function is not None
    assert first.function.name == "get_weather"
    arguments = "".join(p.function.arguments or "" for p in parts if p.function)
    assert json.loads(arguments) == json.loads(call.function.arguments)
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "tool_calls"
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens  # type: ignore[union-attr]

    # The client's stream helper assembles the call from the deltas, and parses the
    # arguments of a strict tool made from a pydantic model.
    strict_tool = openai.pydantic_function_tool(GetWeather, name="get_weather")
    with client.chat.completions.stream(
        **GREEDY, messages=ASK, tools=[strict_tool], tool_choice="required"
    ) as stream:
        final = stream.get_final_completion()
    (assembled,) = final.choices[0].message.tool_calls or []
    assert assembled.function.name == "get_weather"
    assert isinstance(assembled.function.parsed_arguments, GetWeather)
    assert "paris" in assembled.function.parsed_arguments.city.lower()


def test_auto_calls_and_none_answers_in_words(client: openai.OpenAI) -> None:
    tools = [WEATHER, TIME]
    called = client.chat.completions.create(**GREEDY, messages=ASK, tools=tools)
    (call,) = called.choices[0].message.tool_calls or []
    assert called.choices[0].finish_reason == "tool_calls"
    assert call.function.name == "get_weather"
    assert "paris" in _city(call.function.arguments).lower()
    # (The demo model calls a tool whenever it is shown one, asked or not; text running
    # free under "auto" is tested on the tiny model in tests/child/llama/test_llama_tools.py.)
    hello = [{"role": "user", "content": "Write a Python function that adds two numbers."}]
    answered = client.chat.completions.create(
        **GREEDY, messages=hello, tools=tools, tool_choice="none"
    )
    assert answered.choices[0].finish_reason in {"stop", "length"}
    assert not answered.choices[0].message.tool_calls
    assert "def " in (answered.choices[0].message.content or "")


def test_a_named_function_is_the_one_called(client: openai.OpenAI) -> None:
    named = client.chat.completions.create(
        **GREEDY,
        messages=ASK,
        tools=[WEATHER, TIME],
        tool_choice={"type": "function", "function": {"name": "get_time"}},
    )
    (call,) = named.choices[0].message.tool_calls or []
    assert call.function.name == "get_time"
    assert isinstance(json.loads(call.function.arguments)["zone"], str)


def test_a_tool_result_in_the_history_is_used_in_the_answer(client: openai.OpenAI) -> None:
    first = client.chat.completions.create(
        **GREEDY, messages=ASK, tools=[WEATHER], tool_choice="required"
    )
    message = first.choices[0].message
    (call,) = message.tool_calls or []
    history: list[Any] = [
        *ASK,
        message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": '{"temperature_c": 23, "sky": "clear"}'},
        {"role": "user", "content": "Answer in one sentence: how warm is it in Paris?"},
    ]  # fmt: skip
    answer = client.chat.completions.create(
        **GREEDY, messages=history, tools=[WEATHER], tool_choice="none"
    )
    choice = answer.choices[0]
    assert choice.finish_reason == "stop"
    assert not choice.message.tool_calls
    assert "23" in (choice.message.content or "")
    # The same history answered as JSON of a schema: tools, their turns and a response format.
    schema = {
        "type": "object",
        "properties": {"city": {"type": "string"}, "temperature_c": {"type": "integer"}},
        "required": ["city", "temperature_c"],
    }
    shaped = client.chat.completions.create(
        **GREEDY,
        messages=history[:3],
        tools=[WEATHER],
        tool_choice="none",
        response_format={"type": "json_schema", "json_schema": {"name": "w", "schema": schema}},
    )
    assert json.loads(shaped.choices[0].message.content or "")["temperature_c"] == 23


def test_a_json_schema_response_fits_the_schema_and_parse_builds_the_model(
    client: openai.OpenAI,
) -> None:
    schema = {
        "type": "object",
        "properties": {
            "city": {"type": "string"},
            "temperature_c": {"type": "integer"},
            "sky": {"enum": ["clear", "cloudy", "rain"]},
        },
        "required": ["city", "temperature_c", "sky"],
        "additionalProperties": False,
    }
    prompt = [{"role": "user", "content": "Describe the weather in Rome today as JSON."}]
    reply = client.chat.completions.create(
        **GREEDY,
        messages=prompt,
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "weather", "schema": schema, "strict": True},
        },
    )
    value = json.loads(reply.choices[0].message.content or "")
    assert set(value) == {"city", "temperature_c", "sky"}
    assert isinstance(value["city"], str)
    assert isinstance(value["temperature_c"], int)
    assert value["sky"] in {"clear", "cloudy", "rain"}

    parsed = client.chat.completions.parse(
        **GREEDY, messages=prompt, response_format=Weather
    ).choices[0].message.parsed  # fmt: skip
    assert isinstance(parsed, Weather)


def test_langchain_binds_tools_and_gets_structured_output(sup: Supervisor) -> None:
    from langchain_openai import ChatOpenAI

    chat = ChatOpenAI(
        base_url=sup.base_url + "/v1",
        api_key="unused",  # type: ignore[arg-type]
        model=MODEL,
        temperature=0,
        max_retries=0,
        max_tokens=60,  # type: ignore[call-arg]
    )

    def get_weather(city: str) -> str:
        """Get the current weather in a city."""
        return "sunny"

    reply = chat.bind_tools([get_weather], tool_choice="required").invoke(
        "What is the weather in Paris?"
    )
    (call,) = reply.tool_calls  # type: ignore[attr-defined]
    assert call["name"] == "get_weather"
    assert "paris" in call["args"]["city"].lower()
    weather = chat.with_structured_output(Weather).invoke("The weather in Oslo: 4 C.")
    assert isinstance(weather, Weather)


def test_tools_with_n_logprobs_and_a_resumable_stream(sup: Supervisor) -> None:
    body = {
        **GREEDY,
        "messages": ASK,
        "tools": [WEATHER],
        "tool_choice": "required",
        "n": 2,
        "logprobs": True,
        "stream": True,
    }
    events: list[dict[str, Any]] = []
    with (
        sup.http(timeout=600) as http,
        http.stream(
            "POST", "/v1/chat/completions", json=body, headers={"X-Conversation-Id": "tools-1"}
        ) as response,
    ):
        assert response.status_code == 200
        for line in response.iter_lines():
            if line.startswith("data: {"):
                events.append(json.loads(line[6:]))
    calls: dict[int, str] = {0: "", 1: ""}
    for event in events:
        for choice in event["choices"]:
            for part in choice["delta"].get("tool_calls", []):
                calls[choice["index"]] += part["function"]["arguments"]
            assert "<tool_call>" not in (choice["delta"].get("content") or "")
    for arguments in calls.values():
        assert "paris" in _city(arguments).lower()
    assert any(c["logprobs"] for e in events for c in e["choices"] if c["logprobs"])
