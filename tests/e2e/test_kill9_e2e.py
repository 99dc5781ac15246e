"""Fault tier: kill -9 of the supervisor loses nothing it acknowledged. Conversation writes
that were answered 201/200, and answers the supervisor saved itself, are there after a restart
on the same data directory (SQLite in WAL mode commits before the response goes out)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import SupervisorFactory
from tests.support.supervisor_proc import wait_until

pytestmark = pytest.mark.e2e
QUESTION = {"role": "user", "content": "go"}


def test_acknowledged_conversations_survive_kill_9(
    supervisor: SupervisorFactory, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    first = supervisor(data_dir=data)
    with first.http() as http:
        assert (
            http.post(
                "/api/conversations", json={"id": "answered", "messages": [QUESTION]}
            ).status_code
            == 201
        )
        body = {"model": "fake", "stream": True, "messages": [QUESTION]}
        with http.stream(
            "POST", "/v1/chat/completions", json=body, headers={"X-Conversation-Id": "answered"}
        ) as response:
            assert response.read().endswith(b"data: [DONE]\n\n")

        def saved() -> bool:
            got = http.get("/api/conversations/answered").json()["messages"]
            return len(got) == 2

        wait_until(saved, 30, "the server to save the answer")
        for i in range(20):
            created = http.post("/api/conversations", json={"id": f"c{i}", "title": f"t{i}"})
            assert created.status_code == 201
        patched = http.patch("/api/conversations/c7", json={"title": "renamed"})
        assert patched.status_code == 200
    first.kill()  # SIGKILL: no drain, no cleanup
    second = supervisor(data_dir=data)
    with second.http() as http:
        ids = {c["id"] for c in http.get("/api/conversations").json()["data"]}
        assert ids == {"answered", *(f"c{i}" for i in range(20))}
        assert http.get("/api/conversations/c7").json()["title"] == "renamed"
        answer = http.get("/api/conversations/answered").json()["messages"][1]
        assert answer["role"] == "assistant"
        assert answer["content"].startswith("tok0")
