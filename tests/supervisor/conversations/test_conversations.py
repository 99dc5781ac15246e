"""``/api/conversations`` end to end: a real supervisor, real SQLite, real users and keys."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from corral.supervisor.conversations.store import MAX_MESSAGES, MAX_MESSAGES_BYTES
from tests.conftest import SupervisorFactory

pytestmark = pytest.mark.e2e

KEY = "conv-key-0123456789abcdef"
KEYS = f"""
[[api_keys]]
name = "app"
key = "{KEY}"
"""


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def add_user(data_dir: Path, name: str, password: str) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "corral.supervisor",
            "users",
            "add",
            name,
            "--password-stdin",
            "--data-dir",
            str(data_dir),
        ],
        input=password + "\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr


def login(http: httpx.Client, name: str, password: str) -> str:
    response = http.post("/api/login", json={"username": name, "password": password})
    assert response.status_code == 200, response.text
    return str(response.json()["token"])


def error_of(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["message"]
    return error


def ids(http: httpx.Client, headers: dict[str, str] | None = None) -> list[str]:
    response = http.get("/api/conversations", headers=headers)
    assert response.status_code == 200, response.text
    return [c["id"] for c in response.json()["data"]]


def test_crud_order_and_persistence(supervisor: SupervisorFactory, tmp_path: Path) -> None:
    data = tmp_path / "data"
    sup = supervisor(data_dir=data)
    with sup.http() as http:
        assert http.get("/api/conversations").json() == {"data": []}

        # Without an id the server picks one; every field has its default.
        blank = http.post("/api/conversations", json={})
        assert blank.status_code == 201, blank.text
        first = blank.json()
        assert first["id"]
        assert first["created_at"] == first["updated_at"] > 0
        assert {k: v for k, v in first.items() if k not in {"id", "created_at", "updated_at"}} == {
            "title": "",
            "pinned": False,
            "model": None,
            "mode": None,
            "system_prompt": "",
            "settings": {},
            "messages": [],
        }

        new = {
            "id": "c-Abc.9:x-1",
            "title": "Hello",
            "model": "fake",
            "mode": "deep",
            "system_prompt": "Be brief.",
        }
        created = http.post("/api/conversations", json=new)
        assert created.status_code == 201, created.text
        second = created.json()
        assert {k: second[k] for k in new} == new
        assert http.get("/api/conversations/c-Abc.9:x-1").json() == second
        assert ids(http) == ["c-Abc.9:x-1", first["id"]]  # newest first

        duplicate = error_of(http.post("/api/conversations", json={"id": "c-Abc.9:x-1"}), 409)
        assert duplicate["code"] == "conversation_exists"

        # Messages: what the UI stores, extra keys and explicit nulls kept as sent.
        messages = [
            {"role": "user", "content": "Hi ✓"},
            {
                "role": "assistant",
                "content": "Hello!",
                "reasoning": "greet back",
                "stats": {
                    "ttft_ms": 12,
                    "tokens_per_second": 40.5,
                    "prompt_tokens": 3,
                    "completion_tokens": None,
                },
                "future_field": {"x": [1, 2]},
            },
        ]
        patched = http.patch(f"/api/conversations/{first['id']}", json={"messages": messages})
        assert patched.status_code == 200, patched.text
        body = patched.json()
        assert body["messages"] == messages
        assert body["updated_at"] > first["updated_at"]
        assert ids(http) == [first["id"], "c-Abc.9:x-1"]  # the changed one moves up

        # Pin and rename leave updated_at (and so the order of the rest) alone.
        pinned = http.patch(
            "/api/conversations/c-Abc.9:x-1", json={"pinned": True, "title": "Renamed"}
        ).json()
        assert pinned["pinned"] is True
        assert pinned["title"] == "Renamed"
        assert pinned["updated_at"] == second["updated_at"]
        summaries = http.get("/api/conversations").json()["data"]
        assert [c["id"] for c in summaries] == ["c-Abc.9:x-1", first["id"]]  # pinned first
        assert set(summaries[0]) == {
            "id",
            "title",
            "pinned",
            "model",
            "mode",
            "created_at",
            "updated_at",
        }

        settings = http.patch(
            f"/api/conversations/{first['id']}",
            json={
                "settings": {"temperature": 0.3, "top_p": 1, "max_tokens": 50},
                "model": "fake",
                "mode": "fast",
            },
        ).json()
        assert settings["settings"] == {"temperature": 0.3, "top_p": 1, "max_tokens": 50}
        assert (settings["model"], settings["mode"]) == ("fake", "fast")
        cleared = http.patch(
            f"/api/conversations/{first['id']}", json={"model": None, "settings": {}}
        ).json()
        assert (cleared["model"], cleared["settings"], cleared["messages"]) == (None, {}, messages)
        assert http.patch(f"/api/conversations/{first['id']}", json={}).json() == cleared

        assert http.delete(f"/api/conversations/{first['id']}").status_code == 204
        assert (
            error_of(http.get(f"/api/conversations/{first['id']}"), 404)["code"]
            == "conversation_not_found"
        )
        error_of(http.delete(f"/api/conversations/{first['id']}"), 404)
        error_of(http.patch(f"/api/conversations/{first['id']}", json={"title": "x"}), 404)
    sup.terminate()

    # Stored on disk: a restarted server has them.
    again = supervisor(data_dir=data)
    with again.http() as http:
        kept = http.get("/api/conversations/c-Abc.9:x-1").json()
        assert kept["title"] == "Renamed"
        assert kept["pinned"] is True
        assert ids(http) == ["c-Abc.9:x-1"]


def test_each_user_and_key_sees_only_its_own(supervisor: SupervisorFactory, tmp_path: Path) -> None:
    data = tmp_path / "data"
    add_user(data, "alice", "alice-password")
    add_user(data, "bob", "bob-password")
    sup = supervisor(KEYS, data_dir=data)
    with sup.http() as http:
        error_of(http.get("/api/conversations"), 401)
        error_of(http.post("/api/conversations", json={}), 401)
        alice = auth(login(http, "alice", "alice-password"))
        bob = auth(login(http, "bob", "bob-password"))
        key = auth(KEY)

        made = http.post(
            "/api/conversations", json={"id": "same-id", "title": "alice's"}, headers=alice
        )
        assert made.status_code == 201, made.text
        assert (
            http.post("/api/conversations", json={"id": "only-alice"}, headers=alice).status_code
            == 201
        )

        # Another owner's conversation does not exist for bob, whatever he tries.
        assert ids(http, bob) == []
        for response in (
            http.get("/api/conversations/only-alice", headers=bob),
            http.patch("/api/conversations/only-alice", json={"title": "mine now"}, headers=bob),
            http.delete("/api/conversations/only-alice", headers=bob),
        ):
            assert error_of(response, 404)["code"] == "conversation_not_found"

        # The same id in another owner's space is another conversation.
        theirs = http.post(
            "/api/conversations", json={"id": "same-id", "title": "bob's"}, headers=bob
        )
        assert theirs.status_code == 201, theirs.text
        by_key = http.post(
            "/api/conversations", json={"id": "same-id", "title": "key's"}, headers=key
        )
        assert by_key.status_code == 201, by_key.text
        assert http.get("/api/conversations/same-id", headers=alice).json()["title"] == "alice's"
        assert http.get("/api/conversations/same-id", headers=bob).json()["title"] == "bob's"
        assert http.get("/api/conversations/same-id", headers=key).json()["title"] == "key's"
        assert sorted(ids(http, alice)) == ["only-alice", "same-id"]
        assert ids(http, bob) == ["same-id"]

        assert http.delete("/api/conversations/same-id", headers=bob).status_code == 204
        assert http.get("/api/conversations/same-id", headers=alice).status_code == 200

        # A new session of the same user finds the same conversations (another device).
        again = auth(login(http, "alice", "alice-password"))
        assert sorted(ids(http, again)) == ["only-alice", "same-id"]


# (method, path, body, the param the error names)
INVALID: list[tuple[str, str, object, str]] = [
    ("POST", "/api/conversations", {"id": "has space"}, "id"),
    ("POST", "/api/conversations", {"id": "x" * 129}, "id"),
    ("POST", "/api/conversations", {"id": ""}, "id"),
    ("POST", "/api/conversations", {"id": "ünïcode"}, "id"),
    ("POST", "/api/conversations", {"id": 7}, "id"),
    ("POST", "/api/conversations", {"titel": "typo"}, "titel"),
    ("POST", "/api/conversations", {"title": "t" * 501}, "title"),
    ("POST", "/api/conversations", {"mode": "very deep"}, "mode"),
    ("PATCH", "/api/conversations/c1", {"pinned": "yes"}, "pinned"),
    ("PATCH", "/api/conversations/c1", {"title": None}, "title"),
    ("PATCH", "/api/conversations/c1", {"title": 5}, "title"),
    ("PATCH", "/api/conversations/c1", {"model": ""}, "model"),
    ("PATCH", "/api/conversations/c1", {"system_prompt": ["x"]}, "system_prompt"),
    ("PATCH", "/api/conversations/c1", {"settings": {"temperature": 5}}, "settings.temperature"),
    ("PATCH", "/api/conversations/c1", {"settings": {"max_tokens": 1.5}}, "settings.max_tokens"),
    ("PATCH", "/api/conversations/c1", {"settings": {"seed": 1}}, "settings.seed"),
    ("PATCH", "/api/conversations/c1", {"settings": None}, "settings"),
    ("PATCH", "/api/conversations/c1", {"messages": {"role": "user"}}, "messages"),
    (
        "PATCH",
        "/api/conversations/c1",
        {"messages": [{"role": "robot", "content": "x"}]},
        "messages.0.role",
    ),
    (
        "PATCH",
        "/api/conversations/c1",
        {"messages": [{"role": "user", "content": 3}]},
        "messages.0.content",
    ),
    ("PATCH", "/api/conversations/c1", {"messages": [{"role": "user"}]}, "messages.0.content"),
    (
        "PATCH",
        "/api/conversations/c1",
        {"messages": [{"role": "user", "content": "", "stats": {"ttft_ms": "1"}}]},
        "messages.0.stats.ttft_ms",
    ),
    ("PATCH", "/api/conversations/bad%20id", {"title": "x"}, "id"),
    ("GET", "/api/conversations/" + "y" * 129, None, "id"),
]


def test_invalid_requests_are_400_and_change_nothing(supervisor: SupervisorFactory) -> None:
    sup = supervisor()
    with sup.http() as http:
        assert (
            http.post("/api/conversations", json={"id": "c1", "title": "before"}).status_code == 201
        )
        for method, path, body, param in INVALID:
            response = http.request(method, path, json=body)
            error = error_of(response, 400)
            assert (error["type"], error["param"]) == ("invalid_request_error", param), (
                method,
                path,
                body,
                error,
            )
        assert http.get("/api/conversations/c1").json()["title"] == "before"
        assert ids(http) == ["c1"]


JSON_TYPE = {"Content-Type": "application/json"}


def test_malformed_bodies(supervisor: SupervisorFactory) -> None:
    sup = supervisor()
    with sup.http() as http:
        assert (
            error_of(http.post("/api/conversations", content=b"{nope", headers=JSON_TYPE), 400)[
                "code"
            ]
            == "invalid_json"
        )
        assert error_of(http.post("/api/conversations", json=[1]), 400)["code"] == "invalid_json"
        assert http.post("/api/conversations", json={"id": "c1"}).status_code == 201
        assert (
            error_of(
                http.patch("/api/conversations/c1", content=b"\xff\xfe", headers=JSON_TYPE), 400
            )["code"]
            == "invalid_json"
        )
        assert (
            error_of(http.put("/api/conversations/c1", json={}), 405)["code"]
            == "method_not_allowed"
        )


def patch_utf8(http: httpx.Client, cid: str, messages: list[dict[str, str]]) -> httpx.Response:
    body = json.dumps({"messages": messages}, ensure_ascii=False).encode()
    return http.patch(
        f"/api/conversations/{cid}", content=body, headers={"Content-Type": "application/json"}
    )


def test_message_count_and_size_limits(supervisor: SupervisorFactory) -> None:
    sup = supervisor()
    with sup.http(timeout=120) as http:
        assert http.post("/api/conversations", json={"id": "big"}).status_code == 201
        one = {"role": "user", "content": "m"}

        at_limit = http.patch("/api/conversations/big", json={"messages": [one] * MAX_MESSAGES})
        assert at_limit.status_code == 200, at_limit.text
        over = error_of(
            http.patch("/api/conversations/big", json={"messages": [one] * (MAX_MESSAGES + 1)}), 413
        )
        assert (over["code"], over["param"]) == ("too_many_messages", "messages")

        # The cap is on the stored UTF-8 JSON; multi-byte characters count as their bytes.
        overhead = len('[{"role":"user","content":""}]')
        fits = "é" * ((MAX_MESSAGES_BYTES - overhead) // 2)
        assert patch_utf8(http, "big", [{"role": "user", "content": fits}]).status_code == 200
        too_big = error_of(patch_utf8(http, "big", [{"role": "user", "content": fits + "éé"}]), 413)
        assert (too_big["code"], too_big["param"]) == ("conversation_too_large", "messages")
        # A rejected PATCH changes nothing.
        assert http.get("/api/conversations/big").json()["messages"] == [
            {"role": "user", "content": fits}
        ]

        # POST takes the same fields and the same limits.
        error_of(
            http.post("/api/conversations", json={"messages": [one] * (MAX_MESSAGES + 1)}), 413
        )
        assert ids(http) == ["big"]
