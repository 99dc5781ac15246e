"""``stop_reason`` on chat and completion choices, as vLLM sends it: the stop string that
ended the choice, or null. In process, over the real app and the fake child, whose answer is
``tok0 tok1 ... tok7``.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.supervisor.conftest import AppClient

ROUTES = {
    "chat": ("/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}]}),
    "completion": ("/v1/completions", {"prompt": "hi"}),
}


def _text(kind: str, choice: dict[str, Any]) -> str:
    return str(choice["message"]["content"] if kind == "chat" else choice["text"])


def _chunks(raw: bytes) -> list[dict[str, Any]]:
    events = [e.removeprefix("data: ") for e in raw.decode().split("\n\n") if e]
    assert events[-1] == "[DONE]"
    return [json.loads(e) for e in events[:-1]]


@pytest.mark.parametrize("kind", ROUTES)
@pytest.mark.parametrize(
    ("extra", "text", "finish", "stop_reason"),
    [
        ({"stop": ["zzz", " tok3"]}, "tok0 tok1 tok2", "stop", " tok3"),
        ({"stop": "tok1"}, "tok0", "stop", "tok1"),
        ({"stop": ["zzz"]}, "tok0 tok1 tok2 tok3 tok4 tok5 tok6 tok7", "stop", None),
        ({"stop": [" tok3"], "max_tokens": 2}, "tok0 tok1", "length", None),
    ],
)
async def test_a_choice_says_which_stop_string_ended_it(
    app_client: AppClient,
    kind: str,
    extra: dict[str, Any],
    text: str,
    finish: str,
    stop_reason: str | None,
) -> None:
    client = await app_client()
    path, body = ROUTES[kind]
    body = {"model": "fake", **body, **extra}
    whole = await (await client.post(path, json=body)).json()
    (choice,) = whole["choices"]
    assert _text(kind, choice) == text
    assert (choice["finish_reason"], choice["stop_reason"]) == (finish, stop_reason)
    streamed = _chunks(await (await client.post(path, json={**body, "stream": True})).read())
    choices = [c for chunk in streamed for c in chunk["choices"]]
    ends = [c for c in choices if c["finish_reason"] is not None]
    assert [(c["finish_reason"], c["stop_reason"]) for c in ends] == [(finish, stop_reason)]
    # vLLM sends it on the finishing chunk only.
    assert not any("stop_reason" in c for c in choices if c["finish_reason"] is None)
