"""The OpenAI API end to end: a real supervisor process, real llama children, the real client."""

from __future__ import annotations

import json

import openai
import pytest

from tests.conftest import SupervisorFactory, client_for, have_demo

pytestmark = [pytest.mark.e2e, pytest.mark.llama]


def test_chat_completion_with_tiny_model(supervisor: SupervisorFactory) -> None:
    sup = supervisor()
    client = client_for(sup)
    reply = client.chat.completions.create(
        model="tiny",
        messages=[{"role": "user", "content": "hello"}],
        max_tokens=8,
        temperature=0,
        seed=3,
    )
    assert reply.object == "chat.completion"
    assert reply.model == "tiny"
    assert reply.choices[0].message.role == "assistant"
    assert reply.choices[0].finish_reason in {"stop", "length"}
    assert reply.usage is not None
    assert reply.usage.prompt_tokens > 0
    assert 0 < reply.usage.completion_tokens <= 8
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens


def test_streaming_matches_non_streaming_at_temperature_zero(supervisor: SupervisorFactory) -> None:
    sup = supervisor()
    client = client_for(sup)
    args = {
        "model": "tiny",
        "messages": [{"role": "user", "content": "tell me about the sea"}],
        "max_tokens": 24,
        "temperature": 0,
        "seed": 7,
    }
    whole = client.chat.completions.create(**args)  # type: ignore[call-overload]
    stream = client.chat.completions.create(
        **args, stream=True, stream_options={"include_usage": True}
    )  # type: ignore[call-overload]
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    assert chunks[0].choices[0].delta.role == "assistant"
    finals = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert len(finals) == 1
    assert finals[0].choices[0].finish_reason == whole.choices[0].finish_reason
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens  # type: ignore[union-attr]


def test_completions_endpoint_and_length_finish(supervisor: SupervisorFactory) -> None:
    sup = supervisor()
    client = client_for(sup)
    reply = client.completions.create(model="tiny", prompt="the cat", max_tokens=5, temperature=0)
    assert reply.object == "text_completion"
    assert reply.usage is not None
    assert reply.usage.completion_tokens <= 5
    streamed = list(
        client.completions.create(
            model="tiny", prompt="the cat", max_tokens=5, temperature=0, stream=True
        )
    )
    assert "".join(c.choices[0].text for c in streamed) == reply.choices[0].text


def test_default_model_and_models_list_states(supervisor: SupervisorFactory) -> None:
    sup = supervisor()
    client = client_for(sup)
    listed = {m.id: m for m in client.models.list()}
    assert {"tiny", "fake", "qwen2.5-coder-0.5b-instruct"} <= set(listed)
    assert listed["tiny"].model_extra["state"] == "unloaded"  # type: ignore[index]
    assert listed["tiny"].model_extra["default"] is True  # type: ignore[index]
    with sup.http() as http:
        # No model named: the configured default serves it.
        body = http.post(
            "/v1/chat/completions",
            json={"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2},
        ).json()
        assert body["model"] == "tiny"
        states = {m["id"]: m["state"] for m in http.get("/v1/models").json()["data"]}
        assert states["tiny"] == "loaded"
        one = http.get("/v1/models/tiny").json()
        assert one["id"] == "tiny"
        assert one["state"] == "loaded"


def test_stop_sequences_and_seed_reproducibility(supervisor: SupervisorFactory) -> None:
    sup = supervisor()
    client = client_for(sup)
    base = {"model": "fake", "messages": [{"role": "user", "content": "x"}]}
    stopped = client.chat.completions.create(**base, stop=[" tok3"])  # type: ignore[call-overload]
    assert stopped.choices[0].message.content == "tok0 tok1 tok2"
    assert stopped.choices[0].finish_reason == "stop"
    # vLLM's extra field, which the client keeps: the stop string that ended the choice.
    assert (stopped.choices[0].model_extra or {}).get("stop_reason") == " tok3"
    limited = client.chat.completions.create(**base, max_tokens=2)  # type: ignore[call-overload]
    assert limited.choices[0].message.content == "tok0 tok1"
    assert limited.choices[0].finish_reason == "length"
    tiny = {"model": "tiny", "prompt": "abc", "max_tokens": 16, "temperature": 1.0, "seed": 42}
    first = client.completions.create(**tiny)  # type: ignore[call-overload]
    second = client.completions.create(**tiny)  # type: ignore[call-overload]
    assert first.choices[0].text == second.choices[0].text


@pytest.mark.demo
@pytest.mark.skipif(not have_demo(), reason="the demo extra is not installed")
def test_demo_model_answers_a_factual_question(supervisor: SupervisorFactory) -> None:
    sup = supervisor()
    client = client_for(sup, timeout=300)
    reply = client.chat.completions.create(
        model="qwen2.5-coder-0.5b-instruct",
        messages=[
            {"role": "user", "content": "What is the capital of France? Answer with one word."}
        ],
        temperature=0,
        max_tokens=10,
    )
    assert "paris" in (reply.choices[0].message.content or "").lower()


BAD_INPUTS = [
    pytest.param(b"{not json", 400, "invalid_json", id="invalid-json"),
    pytest.param(b"[1, 2]", 400, "invalid_json", id="not-an-object"),
    pytest.param(json.dumps({"model": "tiny"}).encode(), 400, None, id="missing-messages"),
    pytest.param(json.dumps({"model": "tiny", "messages": []}).encode(), 400, None, id="empty-messages"),
    pytest.param(json.dumps({"messages": "hi"}).encode(), 400, None, id="messages-wrong-type"),
    pytest.param(json.dumps({"messages": [{"role": "wizard", "content": "x"}]}).encode(), 400, None, id="unknown-role"),
    pytest.param(json.dumps({"messages": [{"role": "user", "content": "x"}], "temperature": "hot"}).encode(), 400, None, id="wrong-type"),
    pytest.param(json.dumps({"messages": [{"role": "user", "content": "x"}], "temperature": 5}).encode(), 400, None, id="out-of-range"),
    pytest.param(json.dumps({"messages": [{"role": "user", "content": "x"}], "n": 9}).encode(), 400, None, id="n-over-8"),
    pytest.param(json.dumps({"model": "no-such-model", "messages": [{"role": "user", "content": "x"}]}).encode(), 404, "model_not_found", id="unknown-model"),
    pytest.param(json.dumps({"model": "../etc/passwd", "messages": [{"role": "user", "content": "x"}]}).encode(), 400, "invalid_model_id", id="traversal-model-id"),
    pytest.param(json.dumps({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]}).encode(), 400, "unsupported_content", id="image-part"),
]  # fmt: skip


@pytest.mark.parametrize(("body", "status", "code"), BAD_INPUTS)
def test_bad_input_is_a_clear_openai_error(
    supervisor: SupervisorFactory, body: bytes, status: int, code: str | None
) -> None:
    sup = supervisor()
    with sup.http() as http:
        response = http.post(
            "/v1/chat/completions", content=body, headers={"Content-Type": "application/json"}
        )
        assert response.status_code == status
        error = response.json()["error"]
        assert set(error) == {"message", "type", "param", "code"}
        assert error["message"]
        if code is not None:
            assert error["code"] == code
        # The daemon is still fine afterwards.
        assert http.get("/health").json()["status"] == "ok"


def test_oversized_body_and_prompt_over_context(supervisor: SupervisorFactory) -> None:
    sup = supervisor("max_body_bytes = 4096\n")
    with sup.http() as http:
        big = {"messages": [{"role": "user", "content": "x" * 8000}]}
        response = http.post("/v1/chat/completions", json=big)
        assert response.status_code == 413
        assert response.json()["error"]["code"] == "request_too_large"
        # Fits the body limit, not the 512-token context of the tiny model.
        long = {"model": "tiny", "messages": [{"role": "user", "content": "a " * 1500}]}
        response = http.post("/v1/chat/completions", json=long)
        assert response.status_code == 400
        assert response.json()["error"]["code"] == "context_length_exceeded"
        for method, path in (("GET", "/v1/chat/completions"), ("GET", "/v1/nothing")):
            response = http.request(method, path)
            assert response.status_code in (404, 405)
            assert "error" in response.json()


def test_openai_client_raises_typed_errors(supervisor: SupervisorFactory) -> None:
    client = client_for(supervisor())
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="missing", messages=[{"role": "user", "content": "x"}])
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(
            model="tiny", messages=[{"role": "user", "content": "x"}], n=9
        )


def test_logit_bias_steers_the_llama_child(supervisor: SupervisorFactory) -> None:
    # The tiny model's byte-level vocabulary maps token id to byte value: 120 is "x".
    client = client_for(supervisor())
    biased = client.completions.create(
        model="tiny", prompt="abc", max_tokens=6, temperature=0, logit_bias={"120": 100}
    )
    assert biased.choices[0].text == "xxxxxx"
    assert biased.choices[0].finish_reason == "length"
