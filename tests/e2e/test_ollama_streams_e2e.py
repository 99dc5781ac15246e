"""Resumable Ollama streams end to end: a real supervisor, a real fake child, the official
``ollama`` client leaving mid-answer, and the NDJSON replay read as raw bytes."""

from __future__ import annotations

import json

import ollama
import pytest

from tests.conftest import SupervisorFactory

pytestmark = pytest.mark.e2e

PRESETS = """
[models.fake-60]
backend = "fake"
args = ["--tokens-per-second", "50", "--reply-tokens", "60"]
"""


def test_an_ollama_client_that_leaves_mid_answer_can_read_the_rest(
    supervisor: SupervisorFactory,
) -> None:
    sup = supervisor(PRESETS)
    # Closed here, not left to the garbage collector: its pooled socket would be reported
    # unclosed in whichever later test the collection happens to run.
    with ollama.Client(host=sup.base_url, headers={"X-Conversation-Id": "olla-e2e"}) as client:
        parts = client.chat("fake-60", messages=[{"role": "user", "content": "go"}], stream=True)
        seen = [next(parts).message.content for _ in range(3)]
        parts.close()  # the client goes away after three lines
    with sup.http() as http:
        whole = http.get("/v1/stream/olla-e2e", timeout=60)
        assert whole.headers["Content-Type"].startswith("application/x-ndjson")
        body = whole.content
        ends = [i + 1 for i, byte in enumerate(body) if byte == ord("\n")]
        middle = ends[len(ends) // 2]
        tail = http.get(f"/v1/stream/olla-e2e?from={middle}").content
        found = http.post("/v1/streams/lookup", json={"conversation_ids": ["olla-e2e"]})
    lines = [json.loads(line) for line in body.splitlines()]
    assert [line["message"]["content"] for line in lines[:3]] == seen
    assert lines[-1]["done"] is True
    assert lines[-1]["eval_count"] == 60
    assert "".join(line["message"]["content"] for line in lines) == " ".join(
        f"tok{i}" for i in range(60)
    )
    assert tail == body[middle:]
    assert found.json()["data"][0]["state"] == "done"  # it ran on after the client left
