"""The OpenAI wire format of the remote child: request bodies and upstream chunks."""

from __future__ import annotations

from corral.child.remote.wire import ChunkReader, request_body
from corral.protocol.messages import ChatMessage, Generate, SamplingParams


def test_a_chat_frame_becomes_an_openai_body_with_only_the_fields_set() -> None:
    frame = Generate(
        request_id="r1",
        messages=(ChatMessage(role="user", content="hi", name="ann"),),
        params=SamplingParams(max_tokens=9, temperature=0.0, top_k=3, stop=("x",), seed=4),
        n=2,
        logprobs=1,
    )
    path, body = request_body(frame, "up")
    assert path == "/chat/completions"
    assert body == {
        "model": "up",
        "stream": True,
        "stream_options": {"include_usage": True},
        "max_tokens": 9,
        "temperature": 0.0,
        "top_k": 3,
        "seed": 4,
        "stop": ["x"],
        "n": 2,
        "messages": [{"role": "user", "content": "hi", "name": "ann"}],
        "logprobs": True,
        "top_logprobs": 1,
    }


def test_a_completion_batch_keeps_token_prompts() -> None:
    frame = Generate(request_id="r1", prompts=("a", (1, 2)), echo=True, logprobs=0)
    path, body = request_body(frame, "up")
    assert path == "/completions"
    assert body["prompt"] == ["a", [1, 2]]
    assert body["echo"] is True
    assert body["logprobs"] == 0


def test_chunks_give_text_logprobs_finish_and_usage() -> None:
    reader = ChunkReader()
    pieces = reader.read(
        {
            "choices": [
                {
                    "index": 1,
                    "delta": {"content": "Hi"},
                    "logprobs": {
                        "content": [
                            {
                                "token": "Hi",
                                "logprob": -0.5,
                                "bytes": [72, 105],
                                "top_logprobs": [{"token": "Hi", "logprob": -0.5}],
                            }
                        ]
                    },
                    "finish_reason": None,
                }
            ]
        }
    )
    (piece,) = pieces
    assert (piece.index, piece.text, piece.tokens) == (1, "Hi", 1)
    assert piece.logprobs[0].bytes == (72, 105)
    assert piece.logprobs[0].top[0].logprob == -0.5
    (end,) = reader.read(
        {"choices": [{"index": 1, "delta": {}, "finish_reason": "content_filter"}]}
    )
    assert end.finish_reason == "stop"
    assert end.tokens == 0
    reader.read(
        {
            "choices": [],
            "usage": {
                "prompt_tokens": 5,
                "completion_tokens": 1,
                "prompt_tokens_details": {"cached_tokens": 2},
            },
        }
    )
    assert reader.usage is not None
    assert (reader.usage.prompt_tokens, reader.usage.cached_tokens) == (5, 2)
    assert reader.finish_reason() == "stop"


def test_completion_chunks_with_legacy_logprobs() -> None:
    reader = ChunkReader()
    (piece,) = reader.read(
        {
            "choices": [
                {
                    "index": 0,
                    "text": " a",
                    "logprobs": {
                        "tokens": [" a"],
                        "token_logprobs": [-1.0],
                        "top_logprobs": [{" a": -1.0, " b": -2.0}],
                    },
                    "finish_reason": "length",
                }
            ]
        }
    )
    assert piece.text == " a"
    assert piece.logprobs[0].logprob == -1.0
    assert [t.token for t in piece.logprobs[0].top] == [" a", " b"]
    assert reader.finish_reason() == "length"


def test_a_json_schema_goes_upstream_as_openais_response_format() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
    frame = Generate(
        request_id="r1", messages=(ChatMessage(role="user", content="hi"),), json_schema=schema
    )
    _, body = request_body(frame, "up")
    assert body["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "response", "schema": schema, "strict": True},
    }


def test_the_upstreams_stop_string_is_passed_on_and_a_stop_token_id_is_not() -> None:
    reader = ChunkReader()
    (by_string,) = reader.read(
        {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop", "stop_reason": "7"}]}
    )
    assert (by_string.finish_reason, by_string.stop_sequence) == ("stop", "7")
    (by_token,) = reader.read(
        {"choices": [{"index": 1, "delta": {}, "finish_reason": "stop", "stop_reason": 151645}]}
    )
    assert (by_token.finish_reason, by_token.stop_sequence) == ("stop", None)
    (going_on,) = reader.read(
        {"choices": [{"index": 2, "delta": {"content": "x"}, "stop_reason": "7"}]}
    )
    assert going_on.stop_sequence is None
