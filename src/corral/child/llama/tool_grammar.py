"""The grammar of a request's tool calls: each tool's JSON schema inside its family's markup.

A call is ``{"name": <one of the tools>, "arguments": <that tool's schema>}`` (``parameters``
for Llama 3), so whatever the model writes inside a call parses and fits its tool. With
``required`` or a named tool the answer must be calls from its first token; with ``auto``
the grammar is lazy and applies from the family's opener on (``ToolFamily.triggers``).
"""

from __future__ import annotations

from typing import Any

from llama_cpp.llama_grammar import SchemaConverter

from corral.child.llama.tool_family import GRAMMAR_SPACE, ToolFamily
from corral.child.runtime import RequestFailed
from corral.protocol.tools import Tool, ToolName

# llama-cpp-python's converter lets raw control characters into strings, which is not JSON;
# llama.cpp's own converter (json-schema-to-grammar.cpp) excludes them, as we do here.
LAX_CHAR = r'char ::= [^"\\] |'
JSON_CHAR = r'char ::= [^"\\\x7F\x00-\x1F] |'


def call_schema(tool: Tool, family: ToolFamily) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            "name": {"const": tool.name},
            family.arguments_key: {
                k: v for k, v in tool.parameters.items() if k not in ("$defs", "definitions")
            }
            or {"type": "object"},
        },
        "required": ["name", family.arguments_key],
        "additionalProperties": False,
    }


def tool_gbnf(
    tools: tuple[Tool, ...],
    choice: object,
    family: ToolFamily,
    *,
    parallel: bool,
    answer: dict[str, Any] | None = None,
) -> str:
    """GBNF (root ``root``) of one or more calls of ``tools`` (only the named one with a
    ``ToolName`` choice) in ``family``'s syntax, or else a JSON ``answer`` of that schema."""
    if isinstance(choice, ToolName):
        tools = tuple(t for t in tools if t.name == choice.name)
        if not tools:
            raise RequestFailed(
                "invalid_request",
                f"tool_choice names '{choice.name}', which is not in tools",
                param="tool_choice",
            )
    schemas = [call_schema(t, family) for t in tools]
    schema: dict[str, Any] = schemas[0] if len(schemas) == 1 else {"anyOf": schemas}
    # A tool's "#/$defs/..." references mean its own parameters' root: with the tools nested
    # in one schema, its definitions move to that schema's root.
    for key in ("$defs", "definitions"):
        merged = {k: v for t in tools for k, v in t.parameters.get(key, {}).items()}
        if merged:
            schema = {**schema, key: merged}
    converter: Any = SchemaConverter(  # type: ignore[no-untyped-call]
        prop_order={"name": 0, family.arguments_key: 1},
        allow_fetch=False,
        dotall=False,
        raw_pattern=False,
    )
    # One converter for both, so that their rules share primitives and never clash.
    try:
        call = converter.visit(converter.resolve_refs(schema, "tools"), "call")
    except Exception as exc:  # the converter raises plain exceptions on schemas it refuses
        raise RequestFailed("invalid_request", f"tools: {exc}", param="tools") from None
    alternative = ""
    if answer is not None:
        try:
            alternative = converter.visit(converter.resolve_refs(answer, "answer"), "answer")
        except Exception as exc:
            raise RequestFailed("invalid_request", f"json_schema: {exc}") from None
    # Models pretty-print calls ("{\n  \"name\": ..."): the converter's one optional space
    # would force them off their habit; a newline and bounded indent keep it finite.
    converter._rules["space"] = GRAMMAR_SPACE
    rules = str(converter.format_grammar()).replace(LAX_CHAR, JSON_CHAR)
    root = _root(family, call, parallel=parallel)
    if alternative:
        root = root.replace("root ::= ", "calls ::= ", 1) + f"\nroot ::= calls | {alternative}"
    return rules + "\n" + root + "\n"


def _root(family: ToolFamily, call: str, *, parallel: bool) -> str:
    if family.name == "hermes":
        more = " ( space tool-block )*" if parallel else ""
        return (
            f"root ::= tool-block{more} | fenced-call | {call}\n"
            f'tool-block ::= "<tool_call>" space {call} space "</tool_call>"\n'
            f'fenced-call ::= "```json\\n" space {call} space "```"'
        )
    if family.name == "mistral":
        more = f' ( "," space {call} )*' if parallel else ""
        return f'root ::= "[TOOL_CALLS]" space "[" space {call}{more} space "]"'
    if family.name == "llama3":
        more = f' ( ";" space {call} )*' if parallel else ""
        return f'root ::= "<|python_tag|>"? {call}{more}'
    return f"root ::= {call}"
