"""Every OpenAI parameter Corral cannot honour is a 400 naming it; unknown fields too.

In process, over the real app with fake children: refusals happen before any model runs.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from corral.supervisor.errors import BadRequest
from corral.supervisor.http.json_body import parse_body
from corral.supervisor.openai.schemas import ChatCompletionRequest, CompletionRequest
from corral.supervisor.settings import ModelPreset
from tests.supervisor.conftest import AppClient, assert_openai_error

CHAT = {"model": "fake", "messages": [{"role": "user", "content": "hi"}]}
COMPLETION = {"model": "fake", "prompt": "hi"}

REFUSED = [
    # (route, extra fields, the param the 400 names)
    ("chat", {"frobnicate": 1}, "frobnicate"),
    ("chat", {"messages": [{"role": "user", "content": "x", "colour": "red"}]}, "messages.0.colour"),
    ("chat", {"messages": [{"role": "user", "content": [{"type": "text", "text": "x", "z": 1}]}]}, "messages.0.content.0.z"),
    ("chat", {"stream_options": {"include_usage": True, "nope": 1}}, "stream_options.nope"),
    ("chat", {"stream": True, "stream_options": {"include_obfuscation": True}}, "stream_options.include_obfuscation"),
    ("chat", {"store": True}, "store"),
    ("chat", {"metadata": {"k": "v"}}, "metadata"),
    ("chat", {"service_tier": "flex"}, "service_tier"),
    ("chat", {"modalities": ["text", "audio"]}, "modalities"),
    ("chat", {"audio": {"voice": "alloy", "format": "wav"}}, "audio"),
    ("chat", {"prediction": {"type": "content", "content": "x"}}, "prediction"),
    ("chat", {"reasoning_effort": "low"}, "reasoning_effort"),
    ("chat", {"verbosity": "low"}, "verbosity"),
    ("chat", {"web_search_options": {}}, "web_search_options"),
    ("chat", {"top_logprobs": 2}, "top_logprobs"),
    ("chat", {"logprobs": True, "top_logprobs": 21}, "top_logprobs"),
    ("chat", {"n": 9}, "n"),
    ("chat", {"n": 0}, "n"),
    # The fake backend serves one choice without logprobs: llama-only asks are refused.
    ("chat", {"n": 2}, "n"),
    ("chat", {"logprobs": True}, "logprobs"),
    ("completion", {"prompt": 5}, "prompt"),
    ("completion", {"prompt": []}, "prompt"),
    ("completion", {"prompt": [[]]}, "prompt.0"),
    ("completion", {"prompt": ["a"] * 17}, "prompt"),
    ("completion", {"prompt": [-1]}, "prompt.0"),
    ("completion", {"logprobs": 6}, "logprobs"),
    ("completion", {"best_of": 9}, "best_of"),
    ("completion", {"best_of": 2, "n": 3}, "n"),
    ("completion", {"echo": True}, "echo"),
    ("completion", {"suffix": "x"}, "suffix"),
    ("completion", {"prompt": [1, 2]}, "prompt"),
    ("completion", {"prompt": ["a", "b"]}, "prompt"),
    ("completion", {"unknown_knob": True}, "unknown_knob"),
]  # fmt: skip


@pytest.mark.parametrize(("route", "extra", "param"), REFUSED)
async def test_a_parameter_corral_cannot_honour_is_a_400_naming_it(
    app_client: AppClient, route: str, extra: dict[str, Any], param: str
) -> None:
    client = await app_client()
    base, path = (
        (CHAT, "/v1/chat/completions") if route == "chat" else (COMPLETION, "/v1/completions")
    )
    response = await client.post(path, json={**base, **extra})
    assert response.status == 400, await response.text()
    assert_openai_error(await response.json(), param=param)


async def test_fields_that_ask_for_nothing_are_accepted_and_every_response_has_a_fingerprint(
    app_client: AppClient,
) -> None:
    client = await app_client()
    harmless = {
        "store": False,
        "service_tier": "auto",
        "modalities": ["text"],
        "user": "alice",
        "safety_identifier": "s-1",
        "prompt_cache_key": "conv-1",
        "n": 1,
        "logprobs": False,
        "max_tokens": 3,
    }
    response = await client.post("/v1/chat/completions", json={**CHAT, **harmless})
    assert response.status == 200, await response.text()
    body = await response.json()
    assert body["system_fingerprint"].startswith("fp_corral-")
    assert body["choices"][0]["logprobs"] is None
    assert body["usage"]["prompt_tokens_details"] == {"cached_tokens": 0}
    stream = await client.post(
        "/v1/chat/completions",
        json={**CHAT, "max_tokens": 3, "stream": True, "stream_options": {"include_usage": True}},
    )
    events = [line for line in (await stream.text()).splitlines() if line.startswith("data: {")]
    assert events
    fingerprints = {json.loads(e[6:])["system_fingerprint"] for e in events}
    assert fingerprints == {body["system_fingerprint"]}


def test_completion_forms_become_the_childs_prompts_and_choices() -> None:
    preset = ModelPreset()
    batch = parse_body(
        CompletionRequest,
        json.dumps({"prompt": [[1, 2], [3]], "n": 2, "best_of": 3, "seed": 1}).encode(),
    ).to_generate("r", preset, 1000)
    # best_of generates 3 a prompt and ranks them by logprob, asked for or not.
    assert (batch.prompt, batch.prompts, batch.n, batch.logprobs) == (None, ((1, 2), (3,)), 3, 0)
    fim = parse_body(CompletionRequest, b'{"prompt": "def f(", "suffix": "):"}').to_generate(
        "r", preset, 1000
    )
    assert (fim.prompt, fim.prompts, fim.suffix) == (None, ("def f(",), "):")
    plain = parse_body(CompletionRequest, b'{"prompt": ["x"], "logprobs": 2}').to_generate(
        "r", preset, 1000
    )
    assert (plain.prompt, plain.prompts, plain.logprobs, plain.n) == ("x", (), 2, 1)
    streamed = parse_body(CompletionRequest, b'{"prompt": "x", "best_of": 2, "stream": true}')
    with pytest.raises(BadRequest) as refused:
        streamed.to_generate("r", preset, 1000)
    assert refused.value.param == "best_of"
    chat = parse_body(
        ChatCompletionRequest,
        json.dumps({**CHAT, "n": 3, "logprobs": True, "top_logprobs": 4}).encode(),
    ).to_generate("r", preset, 1000)
    assert (chat.n, chat.logprobs) == (3, 4)
