"""``continue_final_message``: the model goes on with a cut-short answer instead of a new one."""

from __future__ import annotations

import pytest

from tests.conftest import SupervisorFactory, client_for, have_llama
from tests.support.supervisor_proc import Supervisor

QUESTION = {"role": "user", "content": "count for me"}


def _post(sup: Supervisor, body: dict[str, object]) -> dict[str, object]:
    with sup.http() as http:
        response = http.post("/v1/chat/completions", json=body)
    assert response.status_code == 200, response.text
    reply: dict[str, object] = response.json()
    return reply


def test_the_fake_model_goes_on_where_the_answer_stopped(supervisor: SupervisorFactory) -> None:
    sup = supervisor()
    cut = _post(sup, {"model": "fake", "messages": [QUESTION], "max_tokens": 3})
    choice = cut["choices"][0]  # type: ignore[index]
    assert choice["finish_reason"] == "length"
    partial = choice["message"]["content"]
    assert partial == "tok0 tok1 tok2"
    messages = [QUESTION, {"role": "assistant", "content": partial}]
    more = _post(sup, {"model": "fake", "messages": messages, "continue_final_message": True})
    assert more["choices"][0]["message"]["content"] == " tok3 tok4 tok5 tok6 tok7"  # type: ignore[index]


def test_continue_needs_an_answer_last(supervisor: SupervisorFactory) -> None:
    sup = supervisor()
    with sup.http() as http:
        body = {"model": "fake", "messages": [QUESTION], "continue_final_message": True}
        refused = http.post("/v1/chat/completions", json=body)
    assert refused.status_code == 400
    assert refused.json()["error"]["param"] == "continue_final_message"


@pytest.mark.skipif(not have_llama(), reason="needs llama-cpp-python")
def test_llama_continues_the_same_message(supervisor: SupervisorFactory) -> None:
    """The prompt is the turns before the answer, then the answer's text: no new turn opens.
    (The tiny model's text is random bytes, so this counts prompt tokens rather than words.)"""
    sup = supervisor()
    client = client_for(sup)
    partial = "hello world"

    def prompt_tokens(messages: list[dict[str, str]], **extra: object) -> int:
        reply = client.chat.completions.create(
            model="tiny",
            messages=messages,  # type: ignore[arg-type]
            max_tokens=2,
            temperature=0,
            extra_body=extra,
        )
        assert reply.usage is not None
        return reply.usage.prompt_tokens

    question = prompt_tokens([QUESTION])  # ends with the opened assistant turn
    text = client.completions.create(model="tiny", prompt=partial, max_tokens=1).usage
    assert text is not None
    with_answer = [QUESTION, {"role": "assistant", "content": partial}]
    continued = prompt_tokens(with_answer, continue_final_message=True)
    assert continued == question + text.prompt_tokens
    assert prompt_tokens(with_answer) > continued  # a closed answer and a new turn
