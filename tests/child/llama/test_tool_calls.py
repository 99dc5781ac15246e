"""Each template family's tool-call parser, on whole answers and on answers cut into pieces."""

from __future__ import annotations

import json

import pytest

from corral.child.llama.tool_calls import ToolCallParser
from corral.child.llama.tool_family import (
    GENERIC,
    HERMES,
    LLAMA3,
    MISTRAL,
    ToolFamily,
    family_of,
)
from corral.protocol.tools import ToolCallDelta

WEATHER = {"city": "Paris", "unit": "c"}
CASES = [
    (
        HERMES,
        'Let me check.\n<tool_call>\n{"name": "get_weather", "arguments": '
        + json.dumps(WEATHER)
        + "}\n</tool_call>",
        "Let me check.\n",
    ),
    # What small models write instead of <tool_call> (llama.cpp's "good bad" forms).
    (
        HERMES,
        '```json\n{\n  "name": "get_weather",\n  "arguments": ' + json.dumps(WEATHER) + "\n}\n```",
        "",
    ),
    (HERMES, '\n{"name": "get_weather", "arguments": ' + json.dumps(WEATHER) + "}", ""),
    (LLAMA3, '{"name": "get_weather", "parameters": ' + json.dumps(WEATHER) + "}", ""),
    (
        LLAMA3,
        '<|python_tag|>{"name": "get_weather", "parameters": ' + json.dumps(WEATHER) + "}",
        "",
    ),
    (
        MISTRAL,
        '[TOOL_CALLS][{"name": "get_weather", "arguments": ' + json.dumps(WEATHER) + "}]",
        "",
    ),
    (GENERIC, ' {"name": "get_weather", "arguments": ' + json.dumps(WEATHER) + "}", ""),
]


def _run(parser: ToolCallParser, pieces: list[str]) -> tuple[str, list[ToolCallDelta]]:
    content, calls = "", []
    for piece in pieces:
        text, found = parser.push(piece)
        content += text
        calls += found
    text, found = parser.flush()
    return content + text, calls + found


def _assembled(deltas: list[ToolCallDelta]) -> list[dict[str, str]]:
    """Calls as a client assembles them from deltas: name and id first, arguments appended."""
    calls: dict[int, dict[str, str]] = {}
    for d in deltas:
        call = calls.setdefault(d.index, {"id": "", "name": "", "arguments": ""})
        call["id"] += d.id or ""
        call["name"] += d.name or ""
        call["arguments"] += d.arguments
    return [calls[i] for i in sorted(calls)]


@pytest.mark.parametrize(("family", "text", "content"), CASES, ids=lambda c: str(c)[:20])
@pytest.mark.parametrize("size", [0, 1, 3, 7])
def test_a_call_parses_whole_and_in_pieces(
    family: ToolFamily, text: str, content: str, size: int
) -> None:
    pieces = [text] if size == 0 else [text[i : i + size] for i in range(0, len(text), size)]
    said, deltas = _run(ToolCallParser(family), pieces)
    assert said == content  # the markup never reaches the content
    (call,) = _assembled(deltas)
    assert call["name"] == "get_weather"
    assert json.loads(call["arguments"]) == WEATHER
    assert call["id"].startswith("call_")
    assert deltas[0].name == "get_weather"
    assert deltas[0].arguments == ""


def test_parallel_hermes_calls_get_their_own_indices_and_ids() -> None:
    one = '<tool_call>\n{"name": "a", "arguments": {"x": 1}}\n</tool_call>'
    two = '<tool_call>\n{"name": "b", "arguments": {}}\n</tool_call>'
    said, deltas = _run(ToolCallParser(HERMES), [one, "\n", two])
    calls = _assembled(deltas)
    assert [c["name"] for c in calls] == ["a", "b"]
    assert calls[0]["id"] != calls[1]["id"]
    assert said.strip() == ""


def test_parallel_mistral_calls_come_from_one_array() -> None:
    text = '[TOOL_CALLS][{"name": "a", "arguments": {}}, {"name": "b", "arguments": {"y": 2}}]'
    _, deltas = _run(ToolCallParser(MISTRAL), [text])
    assert [c["name"] for c in _assembled(deltas)] == ["a", "b"]


def test_without_a_call_text_is_content_and_a_lookalike_is_held_only_until_it_differs() -> None:
    parser = ToolCallParser(HERMES)
    assert parser.push("a <tool") == ("a ", [])  # might open a call: held
    assert parser.push("bar> b") == ("<toolbar> b", [])  # does not: released
    assert parser.flush() == ("", [])
    assert parser.calls == 0


def test_bare_json_counts_as_a_call_only_at_the_start() -> None:
    text = 'Here: {"name": "f", "arguments": {}}'
    said, deltas = _run(ToolCallParser(GENERIC), [text])
    assert said == text
    assert deltas == []


def test_a_fenced_block_that_is_not_a_call_stays_content() -> None:
    code = "```json\n[1, 2]\n```\nand more"
    said, deltas = _run(ToolCallParser(HERMES), [code[:9], code[9:]])
    assert said == code
    assert deltas == []
    python = "```python\nprint(1)\n```"
    assert _run(ToolCallParser(HERMES), [python[:4], python[4:]]) == (python, [])


def test_json_that_is_not_a_call_stays_content() -> None:
    text = '{"answer": 42}'
    said, deltas = _run(ToolCallParser(GENERIC), [text[:5], text[5:]])
    assert said == text
    assert deltas == []


def test_a_call_cut_short_is_dropped_and_so_is_a_second_opener_begun() -> None:
    said, deltas = _run(ToolCallParser(HERMES), ['Hi <tool_call>\n{"name": "f", "argu'])
    assert said == "Hi "
    assert deltas == []
    one = '<tool_call>{"name": "a", "arguments": {}}</tool_call>'
    said, deltas = _run(ToolCallParser(HERMES), [one, "<tool_c"])
    assert said == ""
    assert len(_assembled(deltas)) == 1
    assert _run(ToolCallParser(HERMES), ["x <tool_c"])[0] == "x <tool_c"  # no call: text


def test_string_arguments_are_decoded_and_re_encoded() -> None:
    text = '<tool_call>{"name": "f", "arguments": "{\\"q\\": \\"x\\"}"}</tool_call>'
    _, deltas = _run(ToolCallParser(HERMES), [text])
    assert json.loads(_assembled(deltas)[0]["arguments"]) == {"q": "x"}


def test_without_parallel_calls_only_the_first_call_counts() -> None:
    one = '<tool_call>{"name": "a", "arguments": {}}</tool_call>'
    parser = ToolCallParser(HERMES, parallel=False)
    _, deltas = _run(parser, [one, "\n", one])
    assert [c["name"] for c in _assembled(deltas)] == ["a"]


@pytest.mark.parametrize(
    ("template", "family"),
    [
        ("{% if tools %}<tools>{% endif %}<tool_call>", HERMES),
        ("[AVAILABLE_TOOLS] [TOOL_CALLS]", MISTRAL),
        ("<|start_header_id|>ipython<|end_header_id|> <|python_tag|>", LLAMA3),
        ("{% for m in messages %}<|im_start|>{{ m.content }}{% endfor %}", GENERIC),
    ],
)
def test_the_family_is_picked_from_the_template(template: str, family: ToolFamily) -> None:
    assert family_of(template) == family


def test_arguments_stream_as_they_come_before_the_call_closes() -> None:
    parser = ToolCallParser(HERMES)
    assert parser.push('<tool_call>\n{"name": "get_weather", "argu') == ("", [])
    _, head = parser.push('ments": {"city": "Pa')
    assert [(d.name, d.arguments) for d in head] == [("get_weather", ""), (None, '{"city": "Pa')]
    assert head[0].id is not None
    _, more = parser.push('ris", "note": "a } in \\" a string"}')
    assert [d.arguments for d in more] == ['ris", "note": "a } in \\" a string"}']
    assert parser.push("}\n</tool_call>") == ("", [])
    assert parser.calls == 1
    arguments = "".join(d.arguments for d in head + more)
    assert json.loads(arguments) == {"city": "Paris", "note": 'a } in " a string'}
