"""Tool-call grammars, checked by llama.cpp's own grammar engine on the tiny GGUF's vocabulary:
each family's well-formed calls are accepted token by token (and may then end), and calls
that break a tool's schema or name another tool are rejected."""

from __future__ import annotations

import ctypes
import math
import re
from collections.abc import Iterator
from typing import Any

import llama_cpp
import pytest
from llama_cpp._internals import LlamaModel

from corral.child.llama.tool_family import GENERIC, HERMES, LLAMA3, MISTRAL, ToolFamily
from corral.child.llama.tool_grammar import tool_gbnf
from corral.child.runtime import RequestFailed
from corral.protocol.tools import Tool, ToolName
from tests.support.tiny_gguf import write_tiny_gguf

pytestmark = pytest.mark.llama

WEATHER = Tool(
    name="get_weather",
    parameters={
        "type": "object",
        "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
        "required": ["city"],
    },
)
TIME = Tool(name="get_time", parameters={"type": "object", "properties": {}})


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaModel]:
    path = write_tiny_gguf(tmp_path_factory.mktemp("grammar") / "tiny.gguf", seed=1)
    params = llama_cpp.llama_model_default_params()
    params.vocab_only = True
    loaded = LlamaModel(path_model=str(path), params=params, verbose=False)
    yield loaded
    loaded.close()


def _allows(sampler: Any, token: int) -> bool:
    single = llama_cpp.llama_token_data(token, 1.0, 0.0)
    array = llama_cpp.llama_token_data_array(
        data=ctypes.pointer(single), size=1, selected=-1, sorted=False
    )
    llama_cpp.llama_sampler_apply(sampler, ctypes.byref(array))
    return not math.isinf(array.data[0].logit)


def _accepts(model: LlamaModel, gbnf: str, text: str) -> bool:
    """The grammar takes ``text`` whole and may end there."""
    sampler = llama_cpp.llama_sampler_init_grammar(model.vocab, gbnf.encode(), b"root")
    assert sampler, "the grammar does not parse"
    try:
        for token in model.tokenize(text.encode(), add_bos=False, special=False):
            if not _allows(sampler, token):
                return False
            llama_cpp.llama_sampler_accept(sampler, token)
        return _allows(sampler, model.token_eos())
    finally:
        llama_cpp.llama_sampler_free(sampler)


CALL = '{"name": "get_weather", "arguments": {"city": "Paris", "days": 2}}'
GOOD = [
    (HERMES, f"<tool_call>\n{CALL}\n</tool_call>"),
    (HERMES, f'<tool_call>{CALL}</tool_call>\n<tool_call>{{"name": "get_time", "arguments": {{}}}}</tool_call>'),
    (HERMES, f"```json\n{CALL}\n```"),
    (HERMES, '{\n  "name": "get_weather",\n  "arguments": {\n    "city": "Paris"\n  }\n}'),
    (LLAMA3, '{"name": "get_weather", "parameters": {"city": "Paris"}}'),
    (LLAMA3, '<|python_tag|>{"name": "get_time", "parameters": {}}'),
    (MISTRAL, f'[TOOL_CALLS][{CALL}, {{"name": "get_time", "arguments": {{}}}}]'),
    (GENERIC, CALL),
]  # fmt: skip
BAD = [
    (HERMES, '<tool_call>{"name": "get_weather", "arguments": {"town": "Paris"}}</tool_call>'),
    (HERMES, '<tool_call>{"name": "get_weather", "arguments": {"city": 3}}</tool_call>'),
    (HERMES, '<tool_call>{"name": "get_wind", "arguments": {}}</tool_call>'),
    (HERMES, "Sure! " + f"<tool_call>{CALL}</tool_call>"),
    (LLAMA3, CALL),  # Llama 3 calls name their arguments "parameters"
    (MISTRAL, CALL),
    (GENERIC, '{"name": "get_weather", "arguments": {}}'),
]


@pytest.mark.parametrize(("family", "text"), GOOD, ids=lambda v: getattr(v, "name", str(v)[:24]))
def test_each_familys_calls_are_accepted(model: LlamaModel, family: ToolFamily, text: str) -> None:
    gbnf = tool_gbnf((WEATHER, TIME), "required", family, parallel=True)
    assert _accepts(model, gbnf, text)


@pytest.mark.parametrize(("family", "text"), BAD, ids=lambda v: getattr(v, "name", str(v)[:24]))
def test_calls_that_break_the_tools_are_rejected(
    model: LlamaModel, family: ToolFamily, text: str
) -> None:
    gbnf = tool_gbnf((WEATHER, TIME), "required", family, parallel=True)
    assert not _accepts(model, gbnf, text)


def test_a_named_tool_and_one_call_only_narrow_the_grammar(model: LlamaModel) -> None:
    one = f"<tool_call>{CALL}</tool_call>"
    named = tool_gbnf((WEATHER, TIME), ToolName(name="get_time"), HERMES, parallel=True)
    assert not _accepts(model, named, one)
    assert _accepts(model, named, '<tool_call>{"name": "get_time", "arguments": {}}</tool_call>')
    single = tool_gbnf((WEATHER, TIME), "required", HERMES, parallel=False)
    assert _accepts(model, single, one)
    assert not _accepts(model, single, one + "\n" + one)
    with pytest.raises(RequestFailed):
        tool_gbnf((WEATHER,), ToolName(name="nope"), HERMES, parallel=True)


def test_an_answer_schema_is_the_other_way_out(model: LlamaModel) -> None:
    answer = {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}
    gbnf = tool_gbnf((WEATHER,), "auto", GENERIC, parallel=True, answer=answer)
    assert _accepts(model, gbnf, '{"a": 1}')
    assert _accepts(model, gbnf, '{"name": "get_weather", "arguments": {"city": "Oslo"}}')
    assert not _accepts(model, gbnf, '{"b": 1}')


def test_definitions_of_a_tools_parameters_are_found(model: LlamaModel) -> None:
    nested = Tool(
        name="book",
        parameters={
            "type": "object",
            "properties": {"when": {"$ref": "#/$defs/Slot"}},
            "required": ["when"],
            "$defs": {
                "Slot": {
                    "type": "object",
                    "properties": {"day": {"enum": ["mon", "tue"]}},
                    "required": ["day"],
                }
            },
        },
    )
    gbnf = tool_gbnf((nested, TIME), "required", GENERIC, parallel=True)
    assert _accepts(model, gbnf, '{"name": "book", "arguments": {"when": {"day": "tue"}}}')
    assert not _accepts(model, gbnf, '{"name": "book", "arguments": {"when": {"day": "sun"}}}')


@pytest.mark.parametrize(("family", "text"), [g for g in GOOD if g[0] is not MISTRAL])
def test_a_trigger_hands_the_grammar_only_what_it_accepts(
    model: LlamaModel, family: ToolFamily, text: str
) -> None:
    # The lazy grammar replays the text from the trigger's first group: it must fit the
    # grammar, or llama.cpp would fail the whole batch.
    said = "\n " + text if family in (HERMES, GENERIC) else text
    starts = [
        m.start(1)
        for t in family.triggers(("get_weather", "get_time"))
        if (m := re.search(t, said))
    ]
    assert starts
    gbnf = tool_gbnf((WEATHER, TIME), "required", family, parallel=True)
    assert _accepts(model, gbnf, said[min(starts) :])


def test_a_json_answer_that_names_no_tool_does_not_trigger() -> None:
    answer = '{"name": "Ada Lovelace", "born": 1815}'
    assert not any(re.search(t, answer) for t in HERMES.triggers(("get_weather",)))
    assert any(re.search(t, "<tool_call>") for t in HERMES.triggers(("get_weather",)))
