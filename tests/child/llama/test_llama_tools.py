"""Tool calls from a real llama child on the tiny random GGUF.

The tiny model says random things, so whatever comes out as a call is the grammar's doing:
with ``required`` or a named tool every answer must be a parseable call of a given tool,
in the syntax of the template's family, and its markup must never reach the text.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from corral.protocol.messages import ChatMessage, Delta, Generate, SamplingParams
from corral.protocol.tools import Tool, ToolCall, ToolName
from corral.supervisor.child_process import ChildProcess
from tests.support.llama_child import Run, start_child
from tests.support.tiny_gguf import write_tiny_gguf

pytestmark = [pytest.mark.llama, pytest.mark.timeout(120)]

HERMES_TEMPLATE = (
    "{% if tools %}<|im_start|>system\n<tools>{% for t in tools %}{{ t | tojson }}{% endfor %}"
    "</tools> Call one as <tool_call>{json}</tool_call><|im_end|>\n{% endif %}"
    "{% for m in messages %}<|im_start|>{{ m.role }}\n"
    "{% if m.tool_calls %}{% for c in m.tool_calls %}<tool_call>"
    '{"name": "{{ c.function.name }}", "arguments": {{ c.function.arguments | tojson }}}'
    "</tool_call>{% endfor %}{% else %}{{ m.content }}{% endif %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
CITY = {"type": "string", "enum": ["Paris", "Rome"]}
WEATHER = Tool(
    name="get_weather",
    description="The weather in a city",
    parameters={"type": "object", "properties": {"city": CITY}, "required": ["city"]},
)
TIME = Tool(name="get_time", parameters={"type": "object", "properties": {}})
QUESTION = ChatMessage(role="user", content="What is the weather in Paris?")


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("tools")
    return {
        "hermes": write_tiny_gguf(folder / "hermes.gguf", seed=2, chat_template=HERMES_TEMPLATE),
        "generic": write_tiny_gguf(folder / "generic.gguf", seed=2),
    }


@pytest.fixture(params=["hermes", "generic"])
async def child(
    request: pytest.FixtureRequest, models: dict[str, Path]
) -> AsyncIterator[ChildProcess]:
    proc, _ = await start_child(models[request.param], "--parallel", "2", "--n-ctx", "1024")
    yield proc
    await proc.stop(5)


def _generate(rid: str, **fields: object) -> Generate:
    params = SamplingParams(max_tokens=200, temperature=1.0, seed=5)
    return Generate.model_validate(
        {"request_id": rid, "messages": (QUESTION,), "params": params, **fields}
    )


def _calls(run: Run, index: int = 0) -> list[dict[str, str]]:
    calls: list[dict[str, str]] = []
    for event in run.events:
        if isinstance(event, Delta) and event.index == index:
            for d in event.tool_calls:
                if d.id is not None:
                    calls.append({"id": d.id, "name": d.name or "", "arguments": ""})
                calls[d.index]["arguments"] += d.arguments
    return calls


def _text(run: Run, index: int = 0) -> str:
    return "".join(e.text for e in run.events if isinstance(e, Delta) and e.index == index)


async def test_required_gives_parseable_calls_of_the_given_tools(child: ChildProcess) -> None:
    # Parallel calls may go on to max_tokens (the model is random): a call cut short is
    # dropped, the finished ones count.
    run = await Run(_generate("req", tools=(WEATHER, TIME), tool_choice="required", n=2), []).drive(
        child
    )
    assert run.done.finish_reason == "tool_calls"
    for index in (0, 1):
        calls = _calls(run, index)
        assert calls, _text(run, index)
        for call in calls:
            assert call["id"].startswith("call_")
            arguments = json.loads(call["arguments"])
            assert call["name"] in {"get_weather", "get_time"}
            if call["name"] == "get_weather":
                assert arguments["city"] in {"Paris", "Rome"}
        assert "<tool_call>" not in _text(run, index)
        assert _text(run, index).strip() == ""


async def test_a_named_tool_is_the_one_called_once_without_parallel_calls(
    child: ChildProcess,
) -> None:
    run = await Run(
        _generate(
            "named",
            tools=(WEATHER, TIME),
            tool_choice=ToolName(name="get_weather"),
            parallel_tool_calls=False,
        ),
        [],
    ).drive(child)
    (call,) = _calls(run)
    assert call["name"] == "get_weather"
    assert json.loads(call["arguments"])["city"] in {"Paris", "Rome"}


async def test_the_template_sees_the_tools_and_the_history_of_calls(child: ChildProcess) -> None:
    runs: list[Run] = []

    async def prompt_tokens(**fields: object) -> int:
        rid = f"p{len(runs)}"
        runs.append(Run(_generate(rid, params=SamplingParams(max_tokens=1), **fields), []))
        return (await runs[-1].drive(child)).started.prompt_tokens

    bare = await prompt_tokens()
    with_tools = await prompt_tokens(tools=(WEATHER,))
    assert with_tools > bare
    # tool_choice "none": the model is not told of tools it may not call.
    assert await prompt_tokens(tools=(WEATHER,), tool_choice="none") == bare
    call = ToolCall(id="call_1", name="get_weather", arguments='{"city": "Paris"}')
    history = (
        QUESTION,
        ChatMessage(role="assistant", content="", tool_calls=(call,)),
        ChatMessage(role="tool", content="sunny, 21 C", tool_call_id="call_1"),
    )
    assert await prompt_tokens(messages=history, tools=(WEATHER,)) > with_tools


async def test_tools_with_a_response_schema_give_a_call_or_an_answer_of_the_schema(
    child: ChildProcess,
) -> None:
    schema = {"type": "object", "properties": {"answer": CITY}, "required": ["answer"]}
    run = await Run(_generate("either", tools=(WEATHER,), json_schema=schema, n=2), []).drive(child)
    for index in (0, 1):
        calls = _calls(run, index)
        if calls:
            assert calls[0]["name"] == "get_weather"
        else:
            assert json.loads(_text(run, index))["answer"] in {"Paris", "Rome"}


async def test_auto_lets_free_text_run_under_the_lazy_grammar(child: ChildProcess) -> None:
    # The random model never writes an opener: its text runs free to max_tokens (which also
    # shows that every trigger pattern compiles in llama.cpp's regex engine).
    params = SamplingParams(max_tokens=30, temperature=1.0, seed=9)
    run = await Run(_generate("auto", tools=(WEATHER,), params=params), []).drive(child)
    assert run.done.finish_reason in {"length", "stop", "tool_calls"}
    assert run.done.usage.completion_tokens > 0
    assert "<tool_call>" not in _text(run)
