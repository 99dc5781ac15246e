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

from corral.child.runtime import RequestFailed
from corral.protocol.messages import Generate

# llama-cpp-python's converter lets raw control characters into strings, which is not JSON;
# llama.cpp's own converter (json-schema-to-grammar.cpp) excludes them, as we do here.
_LAX_CHAR = r'char ::= [^"\\] |'
_JSON_CHAR = r'char ::= [^"\\\x7F\x00-\x1F] |'


def gbnf_of(request: Generate) -> str | None:
    if request.grammar is not None and request.json_schema is not None:
        raise RequestFailed("invalid_request", "give a grammar or a json_schema, not both")
    if request.json_schema is not None:
        try:
            gbnf = str(json_schema_to_gbnf(json.dumps(request.json_schema)))
        except Exception as exc:  # the converter raises plain exceptions on schemas it refuses
            raise RequestFailed("invalid_request", f"json_schema: {exc}") from None
        return gbnf.replace(_LAX_CHAR, _JSON_CHAR)
    return request.grammar


def grammar_sampler(vocab: Any, request: Generate) -> Any:
    """A grammar sampler for ``request``, or None when it has no grammar."""
    gbnf = gbnf_of(request)
    if gbnf is None:
        if request.grammar_triggers:
            raise RequestFailed("invalid_request", "grammar_triggers need a grammar")
        return None
    if request.grammar_triggers:
        patterns = (ctypes.c_char_p * len(request.grammar_triggers))(
            *(p.encode() for p in request.grammar_triggers)
        )
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
