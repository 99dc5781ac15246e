"""Many requests on one llama model through the real supervisor and the official client."""

from __future__ import annotations

import os
import signal
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import openai
import pytest

from tests.conftest import SupervisorFactory, client_for
from tests.support.llama_child import SPECIAL_IDS
from tests.support.supervisor_proc import Supervisor, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.llama]

# A preset with room for long generations, so that slots stay busy while the test looks.
PRESET = """
[models.batch]
path = "tiny.gguf"
n_ctx = 4096
n_threads = 1
parallel = 4
"""
NO_END = {str(t): -100 for t in SPECIAL_IDS}


def _model(sup: Supervisor, model: str) -> dict[str, Any]:
    with sup.http() as http:
        rows = http.get("/admin/models").json()["data"]
    return next(m for m in rows if m["id"] == model)


def test_concurrent_requests_finish_with_exact_usage(supervisor: SupervisorFactory) -> None:
    sup = supervisor(PRESET)
    client = client_for(sup)

    def ask(i: int) -> Any:
        return client.completions.create(
            model="batch", prompt=f"request {i}", max_tokens=12 + i, logit_bias=NO_END
        )

    with ThreadPoolExecutor(8) as pool:
        replies = list(pool.map(ask, range(8)))
    for i, reply in enumerate(replies):
        assert reply.usage is not None
        assert reply.usage.completion_tokens == 12 + i
        assert reply.choices[0].finish_reason == "length"
    model = _model(sup, "batch")
    assert model["slots_total"] == 4
    assert model["slots_busy"] == 0


def test_conversation_id_reuses_the_slot_and_reports_cached_tokens(
    supervisor: SupervisorFactory,
) -> None:
    sup = supervisor(PRESET)
    client = client_for(sup)
    headers = {"X-Conversation-Id": "conv-1"}
    messages: list[Any] = [{"role": "user", "content": "tell me about the sea " * 8}]
    first = client.chat.completions.create(
        model="batch", messages=messages, max_tokens=8, extra_headers=headers
    )
    assert first.usage is not None
    assert first.usage.prompt_tokens_details is not None
    assert first.usage.prompt_tokens_details.cached_tokens == 0
    messages += [
        {"role": "assistant", "content": first.choices[0].message.content or ""},
        {"role": "user", "content": "and the mountains?"},
    ]
    second = client.chat.completions.create(
        model="batch", messages=messages, max_tokens=8, extra_headers=headers
    )
    assert second.usage is not None
    assert second.usage.prompt_tokens_details is not None
    assert second.usage.prompt_tokens_details.cached_tokens >= first.usage.prompt_tokens
    assert second.usage.prompt_tokens > first.usage.prompt_tokens
    with sup.http() as http:
        metrics = http.get("/metrics").text
    assert 'corral_slots_total{model="batch"} 4.0' in metrics
    cached = float(second.usage.prompt_tokens_details.cached_tokens)
    assert _line(metrics, 'corral_prompt_tokens_cached_total{model="batch"}').endswith(f" {cached}")


def _line(text: str, prefix: str) -> str:
    return next(line for line in text.splitlines() if line.startswith(prefix))


def test_a_child_crash_mid_batch_ends_every_stream(supervisor: SupervisorFactory) -> None:
    sup = supervisor(PRESET)
    client = client_for(sup)

    def stream(i: int) -> str:
        try:
            chunks = client.chat.completions.create(
                model="batch",
                messages=[{"role": "user", "content": f"stream {i}"}],
                max_tokens=4000,
                logit_bias=NO_END,
                stream=True,
            )
            for _ in chunks:
                pass
        except openai.APIError as exc:
            return type(exc).__name__
        return "finished"

    with ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(stream, i) for i in range(4)]
        wait_until(lambda: _model(sup, "batch")["slots_busy"] == 4, what="four busy slots")
        with sup.http() as http:
            metrics = http.get("/metrics").text
        assert 'corral_slots_busy{model="batch"} 4.0' in metrics
        os.kill(_model(sup, "batch")["pid"], signal.SIGKILL)
        outcomes = [f.result(timeout=60) for f in futures]
    assert outcomes == ["APIError"] * 4
