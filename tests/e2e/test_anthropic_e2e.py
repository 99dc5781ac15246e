"""Anthropic's Messages API end to end: a real supervisor, real children (the demo model and
the fake one), the real ``anthropic`` client."""

from __future__ import annotations

import anthropic
import pytest

from tests.conftest import SupervisorFactory, have_demo
from tests.support.supervisor_proc import Supervisor

pytestmark = [pytest.mark.e2e, pytest.mark.llama]
DEMO = "qwen2.5-coder-0.5b-instruct"
KEY = "sk-claude-0123456789abcdef"


def anthropic_for(sup: Supervisor, api_key: str = "unused") -> anthropic.Anthropic:
    client = anthropic.Anthropic(
        base_url=sup.base_url, api_key=api_key, max_retries=0, timeout=300.0
    )
    sup.on_stop.append(client.close)
    return client


@pytest.mark.demo
@pytest.mark.skipif(not have_demo(), reason="the demo extra is not installed")
def test_the_demo_model_answers_whole_and_streamed(supervisor: SupervisorFactory) -> None:
    client = anthropic_for(supervisor())
    args = {
        "model": DEMO,
        "max_tokens": 12,
        # Newer clients no longer name the samplers; Corral still takes Anthropic's.
        "extra_body": {"temperature": 0.0},
        "system": "Answer with one word.",
        "messages": [{"role": "user", "content": "What is the capital of France?"}],
    }
    whole = client.messages.create(**args)  # type: ignore[call-overload]
    assert whole.type == "message"
    assert whole.role == "assistant"
    assert whole.model == DEMO
    assert whole.id.startswith("msg_")
    assert whole.content[0].type == "text"
    assert "paris" in whole.content[0].text.lower()
    assert whole.stop_reason == "end_turn"
    assert whole.usage.input_tokens > 0
    assert 0 < whole.usage.output_tokens <= 12
    with client.messages.stream(**args) as stream:  # type: ignore[call-overload]
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == whole.content[0].text
    assert final.content[0].type == "text"
    assert final.content[0].text == text
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens == whole.usage.output_tokens
    # The prompt is the same, so its count is too (some of it read from the cache now).
    total = final.usage.input_tokens + (final.usage.cache_read_input_tokens or 0)
    assert total == whole.usage.input_tokens + (whole.usage.cache_read_input_tokens or 0)
    counted = client.messages.count_tokens(
        model=DEMO, system=args["system"], messages=args["messages"]
    )
    assert counted.input_tokens == total
    cut = client.messages.create(**{**args, "max_tokens": 2, "system": "Answer at length."})  # type: ignore[call-overload]
    assert cut.stop_reason == "max_tokens"
    assert cut.usage.output_tokens == 2


@pytest.mark.demo
@pytest.mark.skipif(not have_demo(), reason="the demo extra is not installed")
def test_the_demo_models_answer_ends_at_a_stop_sequence_and_says_which(
    supervisor: SupervisorFactory,
) -> None:
    client = anthropic_for(supervisor())
    args = {
        "model": DEMO,
        "max_tokens": 40,
        "extra_body": {"temperature": 0.0},
        "messages": [{"role": "user", "content": "Count from 1 to 10, separated by commas."}],
        "stop_sequences": ["7", "never said"],
    }
    whole = client.messages.create(**args)  # type: ignore[call-overload]
    assert whole.content[0].type == "text"
    text = whole.content[0].text
    assert "6" in text, text
    assert "7" not in text, text
    assert (whole.stop_reason, whole.stop_sequence) == ("stop_sequence", "7")
    with client.messages.stream(**args) as stream:  # type: ignore[call-overload]
        assert "".join(stream.text_stream) == text
        final = stream.get_final_message()
    assert (final.stop_reason, final.stop_sequence) == ("stop_sequence", "7")
    # The chat template's end of turn ends an answer too, but it is no stop sequence.
    short = client.messages.create(**{**args, "stop_sequences": ["never said"],  # type: ignore[call-overload]
                                      "system": "Answer with one word."})  # fmt: skip
    assert (short.stop_reason, short.stop_sequence) == ("end_turn", None)


def test_stop_sequences_max_tokens_and_refusals(supervisor: SupervisorFactory) -> None:
    client = anthropic_for(supervisor())
    base = {"model": "fake", "max_tokens": 50, "messages": [{"role": "user", "content": "x"}]}
    stopped = client.messages.create(**base, stop_sequences=[" tok3"])  # type: ignore[call-overload]
    assert stopped.content[0].text == "tok0 tok1 tok2"  # type: ignore[union-attr]
    assert (stopped.stop_reason, stopped.stop_sequence) == ("stop_sequence", " tok3")
    with client.messages.stream(**base, stop_sequences=["nope", " tok5"]) as stream:  # type: ignore[call-overload]
        assert "".join(stream.text_stream) == "tok0 tok1 tok2 tok3 tok4"
        final = stream.get_final_message()
    assert (final.stop_reason, final.stop_sequence) == ("stop_sequence", " tok5")
    unmatched = client.messages.create(**base, stop_sequences=["nope"])  # type: ignore[call-overload]
    assert (unmatched.stop_reason, unmatched.stop_sequence) == ("end_turn", None)
    limited = client.messages.create(**{**base, "max_tokens": 2})  # type: ignore[call-overload]
    assert limited.content[0].text == "tok0 tok1"  # type: ignore[union-attr]
    assert limited.stop_reason == "max_tokens"
    with pytest.raises(anthropic.BadRequestError) as refused:
        client.messages.create(**base, thinking={"type": "enabled", "budget_tokens": 1024})  # type: ignore[call-overload]
    assert refused.value.status_code == 400
    assert refused.value.body["error"]["type"] == "invalid_request_error"  # type: ignore[index]
    assert "thinking" in refused.value.body["error"]["message"]  # type: ignore[index]
    with pytest.raises(anthropic.BadRequestError, match="image"):
        client.messages.create(
            **{**base, "messages": [{"role": "user", "content": [{"type": "image", "source": {
                "type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}}]}]},
        )  # type: ignore[call-overload]  # fmt: skip
    with pytest.raises(anthropic.NotFoundError):
        client.messages.create(**{**base, "model": "no-such-model"})  # type: ignore[call-overload]


def test_the_client_authenticates_with_its_x_api_key(supervisor: SupervisorFactory) -> None:
    sup = supervisor(f'[[api_keys]]\nname = "claude"\nkey = "{KEY}"\n')
    base = {"model": "fake", "max_tokens": 3, "messages": [{"role": "user", "content": "x"}]}
    with pytest.raises(anthropic.AuthenticationError):
        anthropic_for(sup, "sk-wrong-0123456789abcdef").messages.create(**base)  # type: ignore[call-overload]
    reply = anthropic_for(sup, KEY).messages.create(**base)  # type: ignore[call-overload]
    assert reply.content[0].text == "tok0 tok1 tok2"  # type: ignore[union-attr]
