"""Tool calls and structured output through a remote model, in process: the real app and a
real remote child against a fake upstream that streams scripted call fragments."""

from __future__ import annotations

import json
from typing import Any

import openai
import pytest

from tests.supervisor.conftest import FAKE, AppClient, assert_openai_error
from tests.support.fake_upstream import FakeUpstream, serving

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}
ASK = [{"role": "user", "content": "What is the weather in Paris?"}]
# How vLLM and llama-server stream a call: id, type and name first, then argument pieces.
FRAGMENTS = [
    [
        {
            "index": 0,
            "id": "call_up_1",
            "type": "function",
            "function": {"name": "get_weather", "arguments": ""},
        }
    ],
    [{"index": 0, "function": {"arguments": '{"city": '}}],
    [{"index": 0, "function": {"arguments": '"Par'}}],
    [{"index": 0, "function": {"arguments": 'is"}'}}],
]


def _preset(url: str) -> dict[str, Any]:
    return {"far": {"backend": "remote", "url": url, "model": "up-model"}}


def _sdk(client: Any) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=str(client.make_url("/v1")), api_key="x", max_retries=0)


async def test_a_streamed_call_passes_through_fragment_by_fragment(app_client: AppClient) -> None:
    async with serving(FakeUpstream(calls=FRAGMENTS)) as upstream:
        client = await app_client(models=_preset(upstream.url))
        fragments: list[str] = []
        calls: dict[int, dict[str, str]] = {}
        reasons = []
        async with _sdk(client) as sdk:
            stream = await sdk.chat.completions.create(
                model="far",
                messages=ASK,  # type: ignore[arg-type]
                tools=[WEATHER],  # type: ignore[list-item]
                tool_choice="required",
                parallel_tool_calls=False,
                stream=True,
            )
            async for chunk in stream:
                for choice in chunk.choices:
                    reasons.append(choice.finish_reason)
                    for part in choice.delta.tool_calls or ():
                        call = calls.setdefault(part.index, {"id": "", "name": "", "args": ""})
                        call["id"] += part.id or ""
                        if part.function is not None:
                            call["name"] += part.function.name or ""
                            call["args"] += part.function.arguments or ""
                            fragments.append(part.function.arguments or "")
        assert calls == {0: {"id": "call_up_1", "name": "get_weather", "args": '{"city": "Paris"}'}}
        assert [f for f in fragments if f] == ['{"city": ', '"Par', 'is"}']
        assert [r for r in reasons if r] == ["tool_calls"]
        sent = upstream.generations[-1]["body"]
        assert sent["tools"] == [WEATHER]
        assert (sent["tool_choice"], sent["parallel_tool_calls"]) == ("required", False)


async def test_a_whole_answer_and_the_next_turn_with_the_calls_result(
    app_client: AppClient,
) -> None:
    async with serving(FakeUpstream(calls=FRAGMENTS)) as upstream:
        client = await app_client(models=_preset(upstream.url))
        async with _sdk(client) as sdk:
            done = await sdk.chat.completions.create(
                model="far",
                messages=ASK,  # type: ignore[arg-type]
                tools=[WEATHER],  # type: ignore[list-item]
                tool_choice={"type": "function", "function": {"name": "get_weather"}},
            )
            (choice,) = done.choices
            assert choice.finish_reason == "tool_calls"
            (call,) = choice.message.tool_calls or ()
            assert call.id == "call_up_1"
            assert call.type == "function"
            assert (call.function.name, json.loads(call.function.arguments)) == (  # type: ignore[union-attr]
                "get_weather",
                {"city": "Paris"},
            )
            assert upstream.generations[-1]["body"]["tool_choice"] == {
                "type": "function",
                "function": {"name": "get_weather"},
            }
            upstream.calls = []  # the next answer is words
            history = [
                *ASK,
                choice.message.model_dump(exclude_none=True),
                {"role": "tool", "tool_call_id": call.id, "content": "sunny, 21 C"},
            ]
            again = await sdk.chat.completions.create(
                model="far",
                messages=history,  # type: ignore[arg-type]
                tools=[WEATHER],  # type: ignore[list-item]
            )
        assert again.choices[0].finish_reason == "stop"
        assert upstream.generations[-1]["body"]["messages"][1:] == [
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_up_1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                    }
                ],
            },
            {"role": "tool", "content": "sunny, 21 C", "tool_call_id": "call_up_1"},
        ]


SCHEMA = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}


@pytest.mark.parametrize(
    ("field", "sent"),
    [
        (
            {"response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": SCHEMA}}},
            {"response_format": {"type": "json_schema", "json_schema": {"name": "response", "schema": SCHEMA, "strict": True}}},
        ),
        (
            {"response_format": {"type": "json_object"}},
            {"response_format": {"type": "json_schema", "json_schema": {"name": "response", "schema": {"type": "object"}, "strict": True}}},
        ),
        ({"grammar": 'root ::= "yes"'}, {"grammar": 'root ::= "yes"'}),
    ],
)  # fmt: skip
async def test_structured_output_goes_upstream(
    app_client: AppClient, field: dict[str, Any], sent: dict[str, Any]
) -> None:
    async with serving(FakeUpstream()) as upstream:
        client = await app_client(models=_preset(upstream.url))
        response = await client.post(
            "/v1/chat/completions", json={"model": "far", "messages": ASK, **field}
        )
        assert response.status == 200, await response.text()
        body = upstream.generations[-1]["body"]
        assert {name: body[name] for name in sent} == sent


async def test_a_schema_keyword_no_grammar_enforces_is_refused_before_the_upstream(
    app_client: AppClient,
) -> None:
    async with serving(FakeUpstream()) as upstream:
        client = await app_client(models=_preset(upstream.url))
        loose = {"type": "object", "properties": {"n": {"type": "integer", "minimum": 3}}}
        response_format = {"type": "json_schema", "json_schema": {"name": "x", "schema": loose}}
        response = await client.post(
            "/v1/chat/completions",
            json={"model": "far", "messages": ASK, "response_format": response_format},
        )
        assert response.status == 400
        where = "response_format.json_schema.schema.properties.n.minimum"
        assert_openai_error(await response.json(), code="unsupported_schema", param=where)
        assert upstream.generations == []


async def test_tools_still_are_refused_by_name_for_a_fake_model_beside_a_remote_one(
    app_client: AppClient,
) -> None:
    async with serving(FakeUpstream(calls=FRAGMENTS)) as upstream:
        client = await app_client(models={**FAKE, **_preset(upstream.url)})
        body = {"messages": ASK, "tools": [WEATHER], "tool_choice": "required"}
        refused = await client.post("/v1/chat/completions", json={"model": "fake", **body})
        assert refused.status == 400
        assert_openai_error(await refused.json(), code="unsupported", param="tools")
        served = await client.post("/v1/chat/completions", json={"model": "far", **body})
        assert served.status == 200, await served.text()
        assert (await served.json())["choices"][0]["finish_reason"] == "tool_calls"
