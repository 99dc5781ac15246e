"""A request's grammar (GBNF, or a JSON schema converted to GBNF) as a native grammar sampler.

The lazy form (with trigger patterns) lets free text run until a pattern matches, then holds
the rest to the grammar: what tool calls inside ordinary replies need.
"""

from __future__ import annotations

import ctypes
import json
from typing import Any

import llama_cpp
from llama_cpp.llama_grammar import json_schema_to_gbnf

from corral.child.llama.tool_family import ToolFamily
from corral.child.llama.tool_grammar import JSON_CHAR, LAX_CHAR, tool_gbnf
from corral.child.runtime import RequestFailed
from corral.protocol.messages import Generate


def gbnf_of(request: Generate) -> str | None:
    if request.grammar is not None and request.json_schema is not None:
        raise RequestFailed("invalid_request", "give a grammar or a json_schema, not both")
    if request.json_schema is not None:
        try:
            gbnf = str(json_schema_to_gbnf(json.dumps(request.json_schema)))
        except Exception as exc:  # the converter raises plain exceptions on schemas it refuses
            raise RequestFailed("invalid_request", f"json_schema: {exc}") from None
        return gbnf.replace(LAX_CHAR, JSON_CHAR)
    return request.grammar


def calls_wanted(request: Generate) -> bool:
    """The model may call the request's tools (they are given and not ``none``)."""
    return bool(request.tools) and request.tool_choice != "none"


def request_grammar(
    request: Generate, family: ToolFamily | None
) -> tuple[str | None, tuple[str, ...]]:
    """The request's grammar and its lazy triggers: its tools' calls, or its own grammar."""
    if not calls_wanted(request):
        return gbnf_of(request), request.grammar_triggers
    if request.grammar is not None:
        raise RequestFailed(
            "invalid_request", "a grammar cannot constrain tool calls too", param="grammar"
        )
    assert family is not None, "chat requests have a template family"
    auto = request.tool_choice == "auto"
    # With a schema for the answer, "auto" is one grammar from the start: calls or the answer.
    answer = request.json_schema if auto else None
    gbnf = tool_gbnf(
        request.tools,
        request.tool_choice,
        family,
        parallel=request.parallel_tool_calls,
        answer=answer,
    )
    names = tuple(t.name for t in request.tools)
    return gbnf, family.triggers(names) if auto and answer is None else ()


def grammar_sampler(vocab: Any, request: Generate, family: ToolFamily | None = None) -> Any:
    """A grammar sampler for ``request``, or None when it has no grammar."""
    gbnf, triggers = request_grammar(request, family)
    if gbnf is None:
        if triggers:
            raise RequestFailed("invalid_request", "grammar_triggers need a grammar")
        return None
    if triggers:
        patterns = (ctypes.c_char_p * len(triggers))(*(p.encode() for p in triggers))
        sampler = llama_cpp.llama_sampler_init_grammar_lazy_patterns(
            vocab, gbnf.encode(), b"root", patterns, len(patterns), None, 0
        )
    else:
        sampler = llama_cpp.llama_sampler_init_grammar(vocab, gbnf.encode(), b"root")
    if not sampler:
        raise RequestFailed(
            "invalid_request", "the grammar does not parse (llama.cpp's log says why)"
        )
    return sampler
