"""Security tier: data belongs to a stable id, not a name (Medium 11), and each key or user
has its own share of the resumable streams (Medium 10). In-process, real credentials store."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient

from corral.supervisor.app import create_app
from corral.supervisor.appkeys import CREDENTIALS, SECURITY
from corral.supervisor.store import MIGRATIONS, Store
from tests.support.inproc import SERVER, inproc_settings

ClientFactory = Callable[..., Awaitable[TestClient[Any, Any]]]
PASSWORD = "correct horse battery"


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def chat(model: str = "fake") -> dict[str, Any]:
    return {"model": model, "stream": True, "messages": [{"role": "user", "content": "go"}]}


async def start_stream(client: TestClient[Any, Any], key: str, cid: str, model: str) -> int:
    headers = {**bearer(key), "X-Conversation-Id": cid}
    response = await client.post("/v1/chat/completions", json=chat(model), headers=headers)
    if response.status == 200 and model == "fake":
        await response.read()  # to the end: the session is done
    response.close()
    return response.status


async def new_client(aiohttp_client: ClientFactory, tmp_path: Path, **settings: Any) -> Any:
    client = await aiohttp_client(
        create_app(inproc_settings(tmp_path, **settings)), server_kwargs=SERVER
    )
    return client


async def test_a_key_created_again_under_a_revoked_name_sees_nothing_of_the_old_one(
    aiohttp_client: ClientFactory, tmp_path: Path
) -> None:
    client = await new_client(aiohttp_client, tmp_path)
    credentials = client.app[CREDENTIALS]
    old = credentials.create_key("app")
    client.app[SECURITY].forget_cache()
    created = await client.post("/api/conversations", json={"id": "c1"}, headers=bearer(old))
    assert created.status == 201
    assert await start_stream(client, old, "s1", "fake") == 200
    assert credentials.revoke_key("app")
    new = credentials.create_key("app")
    listed = await client.get("/api/conversations", headers=bearer(new))
    assert (await listed.json())["data"] == []
    assert (await client.get("/api/conversations/c1", headers=bearer(new))).status == 404
    assert (await client.get("/v1/stream/s1?from=0", headers=bearer(new))).status == 404
    lookup = await client.post(
        "/v1/streams/lookup", json={"conversation_ids": ["s1"]}, headers=bearer(new)
    )
    assert (await lookup.json())["data"] == []


async def test_a_user_added_again_under_a_removed_name_sees_nothing_of_the_old_one(
    aiohttp_client: ClientFactory, tmp_path: Path
) -> None:
    client = await new_client(aiohttp_client, tmp_path)
    credentials = client.app[CREDENTIALS]

    async def login() -> str:
        body = {"username": "bob", "password": PASSWORD}
        response = await client.post("/api/login", json=body)
        assert response.status == 200
        token: str = (await response.json())["token"]
        return token

    await asyncio.to_thread(credentials.add_user, "bob", PASSWORD)
    client.app[SECURITY].forget_cache()
    first = await login()
    assert (
        await client.post("/api/conversations", json={"id": "c1"}, headers=bearer(first))
    ).status == 201
    assert credentials.remove_user("bob")
    await asyncio.to_thread(credentials.add_user, "bob", PASSWORD)
    second = await login()
    listed = await client.get("/api/conversations", headers=bearer(second))
    assert (await listed.json())["data"] == []


def test_the_migration_moves_name_owned_conversations_to_ids(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with Store(path, migrations=MIGRATIONS[:3]) as old:
        db = old.db
        db.execute("INSERT INTO users (name, password_hash, created_at) VALUES ('bob', 'x', 0)")
        db.execute(
            "INSERT INTO api_keys (name, key_hash, prefix, created_at, revoked_at)"
            " VALUES ('app', 'h1', 'p', 0, 1), ('app', 'h2', 'p', 0, NULL)"
        )
        for owner in ("user:bob", "key:app", "user:gone", "local"):
            db.execute(
                "INSERT INTO conversations (id, owner, created_at, updated_at) VALUES (?, ?, 0, 0)",
                [f"c-{owner}", owner],
            )
        db.conn.commit()
    with Store(path) as new:
        owners = dict(new.db.execute("SELECT id, owner FROM conversations").fetchall())
    with Store(path) as new:
        (uid,) = new.db.execute("SELECT uid FROM users WHERE name = 'bob'").fetchone()
    assert len(uid) == 24
    assert owners == {
        "c-user:bob": f"user#{uid}",
        "c-key:app": "key#2",  # the live key of that name, not the revoked one
        "c-user:gone": "user:gone",  # a name nobody has any more: it matches no one's id
        "c-local": "local",
    }


async def test_one_key_cannot_take_every_stream(
    aiohttp_client: ClientFactory, tmp_path: Path
) -> None:
    ring = 4096
    client = await new_client(
        aiohttp_client,
        tmp_path,
        stream_buffer_bytes=ring,
        stream_total_bytes=8 * ring,
        stream_bytes_per_owner=2 * ring,
    )
    credentials = client.app[CREDENTIALS]
    greedy, other = credentials.create_key("greedy"), credentials.create_key("other")
    client.app[SECURITY].forget_cache()
    assert await start_stream(client, greedy, "g1", "fake-slow") == 200
    assert await start_stream(client, greedy, "g2", "fake-slow") == 200
    headers = {**bearer(greedy), "X-Conversation-Id": "g3"}
    refused = await client.post("/v1/chat/completions", json=chat("fake-slow"), headers=headers)
    assert refused.status == 429
    assert (await refused.json())["error"]["code"] == "stream_owner_limit"
    assert refused.headers["Retry-After"] == "5"
    # Everyone else still gets streams.
    assert await start_stream(client, other, "o1", "fake-slow") == 200
    # A finished stream of its own makes room for the owner's next one.
    assert (await client.delete("/v1/stream/g1", headers=bearer(greedy))).status == 204
    assert await start_stream(client, greedy, "g3", "fake-slow") == 200
    for key, cid in ((greedy, "g2"), (greedy, "g3"), (other, "o1")):
        await client.delete(f"/v1/stream/{cid}", headers=bearer(key))
