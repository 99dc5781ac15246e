"""OpenAI's Responses API end to end: a real supervisor, real children (the demo model and the
fake one), the real ``openai`` client's ``responses`` resource."""

from __future__ import annotations

import openai
import pytest

from tests.conftest import SupervisorFactory, client_for, have_demo

pytestmark = [pytest.mark.e2e, pytest.mark.llama]
DEMO = "qwen2.5-coder-0.5b-instruct"


@pytest.mark.demo
@pytest.mark.skipif(not have_demo(), reason="the demo extra is not installed")
def test_the_demo_model_answers_whole_and_streamed(supervisor: SupervisorFactory) -> None:
    client = client_for(supervisor(), timeout=300)
    args = {
        "model": DEMO,
        "instructions": "Answer with one word.",
        "input": "What is the capital of France?",
        "max_output_tokens": 12,
        "temperature": 0.0,
    }
    whole = client.responses.create(**args)  # type: ignore[call-overload]
    assert whole.object == "response"
    assert whole.id.startswith("resp_")
    assert whole.status == "completed"
    assert whole.instructions == "Answer with one word."
    assert "paris" in whole.output_text.lower()
    assert whole.usage is not None
    assert whole.usage.input_tokens > 0
    assert whole.usage.total_tokens == whole.usage.input_tokens + whole.usage.output_tokens
    deltas = []
    with client.responses.stream(**args) as stream:  # type: ignore[call-overload]
        for event in stream:
            if event.type == "response.output_text.delta":
                deltas.append(event.delta)
        final = stream.get_final_response()
    assert "".join(deltas) == whole.output_text
    assert final.output_text == whole.output_text
    assert final.status == "completed"
    events = list(client.responses.create(**args, stream=True))  # type: ignore[call-overload]
    assert events[0].type == "response.created"
    assert events[-1].type == "response.completed"
    assert [e.sequence_number for e in events] == list(range(len(events)))


def test_input_items_max_output_tokens_and_refusals(supervisor: SupervisorFactory) -> None:
    client = client_for(supervisor())
    items = [{"role": "user", "content": [{"type": "input_text", "text": "x"}]}]
    reply = client.responses.create(model="fake", input=items)  # type: ignore[arg-type]
    assert reply.output_text == "tok0 tok1 tok2 tok3 tok4 tok5 tok6 tok7"
    cut = client.responses.create(model="fake", input="x", max_output_tokens=2)
    assert cut.status == "incomplete"
    assert cut.incomplete_details is not None
    assert cut.incomplete_details.reason == "max_output_tokens"
    assert cut.output_text == "tok0 tok1"
    with pytest.raises(openai.BadRequestError) as stored:
        client.responses.create(model="fake", input="x", previous_response_id=reply.id)
    assert stored.value.body["param"] == "previous_response_id"  # type: ignore[index]
    with pytest.raises(openai.BadRequestError) as builtin:
        client.responses.create(model="fake", input="x", tools=[{"type": "web_search"}])
    assert builtin.value.body["param"] == "tools.0.type"  # type: ignore[index]
    with pytest.raises(openai.BadRequestError) as reasoning:
        client.responses.create(model="fake", input="x", reasoning={"effort": "high"})
    assert reasoning.value.body["param"] == "reasoning"  # type: ignore[index]
