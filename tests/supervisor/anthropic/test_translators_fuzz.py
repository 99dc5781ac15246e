"""Bad input is a 400, never a crash: hypothesis feeds both dialects' translators bodies built
from their own field names, with values of every JSON type, and the only failure allowed is
``BadRequest`` (what the error middleware renders as a 400)."""

from __future__ import annotations

import contextlib
import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from corral.supervisor.anthropic.schemas import MessagesRequest
from corral.supervisor.anthropic.translate import to_chat_request as anthropic_chat
from corral.supervisor.errors import BadRequest
from corral.supervisor.http.json_body import parse_body
from corral.supervisor.responses.schemas import ResponsesRequest
from corral.supervisor.responses.translate import to_chat_request as responses_chat

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**40), 2**40), st.floats(-10, 10),
    st.text(max_size=12), st.sampled_from(["text", "tool_use", "tool_result", "image", "user",
                                           "assistant", "function_call", "input_text", "auto"]),
)  # fmt: skip
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(st.sampled_from(["type", "text", "role", "content", "id", "name",
                                         "input", "tool_use_id", "call_id", "arguments",
                                         "output", "schema", "format", "x"]),
                        inner, max_size=4),
    ),
    max_leaves=14,
)  # fmt: skip


blocks = st.lists(
    st.fixed_dictionaries(
        {"type": st.sampled_from(["text", "tool_use", "tool_result", "image", "input_text",
                                  "output_text", "function_call", "function_call_output"])},
        optional={name: values for name in ("text", "id", "name", "input", "tool_use_id",
                                            "content", "is_error", "call_id", "arguments",
                                            "output", "role")},
    ),
    max_size=3,
)  # fmt: skip
turns = st.lists(
    st.fixed_dictionaries(
        {"role": st.sampled_from(["user", "assistant", "system", "developer"]),
         "content": st.one_of(st.text(max_size=8), blocks)},
        optional={"type": st.sampled_from(["message", "function_call", "x"])},
    ),
    min_size=1, max_size=3,
)  # fmt: skip
REQUIRED = {
    MessagesRequest: {"model": st.just("m"), "max_tokens": st.just(5), "messages": turns},
    ResponsesRequest: {
        "model": st.just("m"),
        "input": st.one_of(st.text(max_size=8), turns, blocks),
    },
}


def bodies(model: type[Any]) -> st.SearchStrategy[dict[str, Any]]:
    """Valid required fields (so that the translator runs) and any of the others."""
    required = REQUIRED[model]
    optional = {name: values for name in model.model_fields if name not in required}
    return st.one_of(
        st.fixed_dictionaries(required, optional=optional),
        st.fixed_dictionaries({}, optional={name: values for name in model.model_fields}),
    )


def only_bad_requests(model: type[Any], translate: Any, body: dict[str, Any]) -> None:
    with contextlib.suppress(BadRequest):  # a 400: the one failure bad input may cause
        translate(parse_body(model, json.dumps(body).encode()))


@settings(max_examples=400)
@given(bodies(MessagesRequest))
def test_anthropic_bodies_are_translated_or_refused(body: dict[str, Any]) -> None:
    only_bad_requests(MessagesRequest, anthropic_chat, body)


@settings(max_examples=400)
@given(bodies(ResponsesRequest))
def test_responses_bodies_are_translated_or_refused(body: dict[str, Any]) -> None:
    only_bad_requests(ResponsesRequest, responses_chat, body)
