"""Tools and structured output at the edge: what is refused (a 400 naming the field, before
any model loads) and what a valid request becomes for the child. In process, real app."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from corral.protocol.tools import ToolName
from corral.supervisor.http.json_body import parse_body
from corral.supervisor.openai.schemas import ChatCompletionRequest
from corral.supervisor.settings import ModelPreset
from tests.supervisor.conftest import FAKE, AppClient, assert_openai_error
from tests.support.tiny_gguf import write_tiny_gguf

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
CALLED = [
    *ASK,
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
    {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
]


def _schema(extra: dict[str, Any]) -> dict[str, Any]:
    return {"type": "json_schema", "json_schema": {"name": "out", "schema": extra}}


def _with_parameters(parameters: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"type": "function", "function": {"name": "f", "parameters": parameters}}]


# (model, extra fields, the param the 400 names)
REFUSED = [
    ("fake", {"tools": [WEATHER]}, "tools"),
    ("fake", {"response_format": {"type": "json_object"}}, "response_format"),
    ("fake", {"grammar": 'root ::= "x"'}, "grammar"),
    ("fake", {"messages": CALLED}, "messages.1"),
    ("fake", {"functions": [WEATHER["function"]]}, "functions"),
    ("fake", {"function_call": "auto"}, "function_call"),
    ("fake", {"tool_choice": "required"}, "tool_choice"),
    ("tiny", {"functions": [WEATHER["function"]]}, "functions"),
    ("tiny", {"tool_choice": "required"}, "tool_choice"),
    ("tiny", {"tools": [WEATHER], "tool_choice": {"type": "function", "function": {"name": "nope"}}}, "tool_choice.function.name"),
    ("tiny", {"tools": [WEATHER], "tool_choice": "sometimes"}, "tool_choice"),
    ("tiny", {"tools": [WEATHER, WEATHER]}, "tools.1.function.name"),
    ("tiny", {"tools": [{"type": "function", "function": {"name": "has space"}}]}, "tools.0.function.name"),
    ("tiny", {"tools": [{"type": "retrieval"}]}, "tools.0.type"),
    ("tiny", {"tools": _with_parameters({"type": "object", "properties": {"n": {"type": "integer", "minimum": 1}}})}, "tools.0.function.parameters.properties.n.minimum"),
    ("tiny", {"tools": _with_parameters({"type": "array"})}, "tools.0.function.parameters.type"),
    ("tiny", {"tools": [WEATHER], "grammar": 'root ::= "x"'}, "grammar"),
    ("tiny", {"response_format": {"type": "json_schema"}}, "response_format.json_schema.json_schema"),
    ("tiny", {"response_format": {"type": "xml"}}, "response_format"),
    ("tiny", {"response_format": _schema({"type": "string", "format": "email"})}, "response_format.json_schema.schema.format"),
    ("tiny", {"response_format": _schema({"type": "object", "patternProperties": {}})}, "response_format.json_schema.schema.patternProperties"),
    ("tiny", {"response_format": _schema({"anyOf": [{"type": "integer", "multipleOf": 2}]})}, "response_format.json_schema.schema.anyOf.0.multipleOf"),
    ("tiny", {"response_format": _schema({"$ref": "https://example.com/s.json"})}, "response_format.json_schema.schema.$ref"),
    ("tiny", {"response_format": {"type": "json_object"}, "grammar": 'root ::= "x"'}, "grammar"),
    ("tiny", {"json_schema": {"type": "number", "maximum": 3}}, "json_schema.maximum"),
    ("tiny", {"grammar": "  "}, "grammar"),
    ("tiny", {"messages": [*ASK, {"role": "tool", "content": "sunny"}]}, "messages.1.tool_call_id"),
    ("tiny", {"messages": [{"role": "user", "content": "x", "tool_calls": CALLED[1]["tool_calls"]}]}, "messages.0"),
]  # fmt: skip


@pytest.fixture
async def client(app_client: AppClient, tmp_path: Path) -> Any:
    tiny = write_tiny_gguf(tmp_path / "tiny.gguf", seed=1)
    return await app_client(models={**FAKE, "tiny": {"backend": "llama", "path": str(tiny)}})


@pytest.mark.parametrize(("model", "extra", "param"), REFUSED)
async def test_what_cannot_be_honoured_is_a_400_naming_it(
    client: Any, model: str, extra: dict[str, Any], param: str
) -> None:
    body = {"model": model, "messages": ASK, **extra}
    response = await client.post("/v1/chat/completions", json=body)
    assert response.status == 400, await response.text()
    assert_openai_error(await response.json(), param=param)
    # Refused at the edge: the llama model was never loaded for it.
    models = await (await client.get("/v1/models")).json()
    assert {m["id"]: m["state"] for m in models["data"]}["tiny"] != "ready"


async def test_fields_that_ask_for_nothing_pass_on_any_backend(client: Any) -> None:
    idle = {"tool_choice": "none", "parallel_tool_calls": True, "response_format": {"type": "text"}}
    body = {"model": "fake", "messages": ASK, "max_tokens": 2, **idle}
    response = await client.post("/v1/chat/completions", json=body)
    assert response.status == 200, await response.text()
    assert "tool_calls" not in (await response.json())["choices"][0]["message"]


def _generate(**fields: Any) -> Any:
    body = json.dumps({"model": "tiny", "messages": ASK, **fields}).encode()
    return parse_body(ChatCompletionRequest, body).to_generate("r", ModelPreset(), 1000)


def test_tools_and_their_turns_reach_the_child_as_asked() -> None:
    named = {"type": "function", "function": {"name": "get_weather"}}
    generate = _generate(
        messages=CALLED, tools=[WEATHER], tool_choice=named, parallel_tool_calls=False
    )
    assert [t.name for t in generate.tools] == ["get_weather"]
    assert generate.tools[0].parameters == WEATHER["function"]["parameters"]  # type: ignore[index]
    assert generate.tool_choice == ToolName(name="get_weather")
    assert generate.parallel_tool_calls is False
    assistant, tool = generate.messages[1], generate.messages[2]
    assert assistant.content == ""
    assert assistant.tool_calls[0].arguments == '{"city": "Paris"}'
    assert (tool.role, tool.tool_call_id, tool.content) == ("tool", "call_1", "sunny")
    assert _generate(tools=[WEATHER]).tool_choice == "auto"
    assert _generate(tools=[WEATHER], tool_choice="none").tool_choice == "none"
    assert _generate(tools=[]).tools == ()


def test_response_formats_become_the_childs_grammar() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}
    assert _generate(response_format=_schema(schema)).json_schema == schema
    assert _generate(response_format={"type": "json_object"}).json_schema == {"type": "object"}
    plain = _generate(response_format={"type": "text"})
    assert (plain.json_schema, plain.grammar) == (None, None)
    assert _generate(grammar='root ::= "x"').grammar == 'root ::= "x"'
    assert _generate(json_schema=schema).json_schema == schema
    # With tools: a call or an answer of the schema (one grammar in the child).
    both = _generate(tools=[WEATHER], response_format=_schema(schema))
    assert (both.tool_choice, both.json_schema) == ("auto", schema)
