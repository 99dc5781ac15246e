"""Search over message text (SQLite FTS5): kept in step by triggers, per owner, safe queries."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from corral.supervisor.conversations.search import ConversationSearch, fts_query
from corral.supervisor.conversations.store import (
    ConversationPatch,
    Conversations,
    NewConversation,
    StoredMessage,
)
from corral.supervisor.store import MIGRATIONS, Store, migrate
from tests.conftest import SupervisorFactory


def _messages(*texts: str) -> list[StoredMessage]:
    roles = ("user", "assistant")
    return [StoredMessage(role=roles[i % 2], content=t) for i, t in enumerate(texts)]


async def test_message_text_is_found_and_follows_every_write(tmp_path: Path) -> None:
    with Store(tmp_path / "c.db") as store:
        conversations, search = Conversations(store), ConversationSearch(store)
        colours = NewConversation(
            id="c-1",
            title="Colours",
            messages=_messages("How do I write red in CSS?", "Use rgb(255, 0, 0) or #f00."),
        )
        await conversations.create("local", colours)
        await conversations.create("local", NewConversation(id="c-2", title="RGB lights"))
        await conversations.create("user:bob", NewConversation(id="c-3", messages=_messages("RGB")))

        hits = await search.search("local", "rgb")
        assert {h["id"] for h in hits} == {"c-1", "c-2"}  # message text and title; not bob's
        assert "rgb(255, 0, 0)" in next(h for h in hits if h["id"] == "c-1")["snippet"]
        assert [h["id"] for h in await search.search("local", "RGB CSS")] == ["c-1"]
        assert [h["id"] for h in await search.search("local", "colo")] == ["c-1"]  # prefixes

        await conversations.update("local", "c-1", ConversationPatch(messages=_messages("blue")))
        assert [h["id"] for h in await search.search("local", "rgb")] == ["c-2"]
        assert [h["id"] for h in await search.search("local", "blue")] == ["c-1"]
        await conversations.delete("local", "c-2")
        assert await search.search("local", "rgb") == []
        assert [h["id"] for h in await search.search("user:bob", "rgb")] == ["c-3"]


@pytest.mark.parametrize("text", ['"', "NEAR(a b)", "a OR", "*", "  ", "title:x AND -y"])
async def test_what_a_person_types_is_never_fts_syntax(tmp_path: Path, text: str) -> None:
    with Store(tmp_path / "c.db") as store:
        await ConversationSearch(store).search("local", text)  # no sqlite3.OperationalError
    assert fts_query('say "hi"') == '"say"* "hi"*'
    assert fts_query("  ") is None


def test_the_migration_indexes_existing_conversations(tmp_path: Path) -> None:
    with Store(tmp_path / "old.db", migrations=MIGRATIONS[:3]) as old:
        old.db.execute(
            "INSERT INTO conversations (id, owner, title, messages, created_at, updated_at)"
            " VALUES ('c-old', 'local', '', ?, 1, 1)",
            [json.dumps([{"role": "assistant", "content": "magenta is #ff00ff"}])],
        )
        old.db.conn.commit()
        assert migrate(old.db) == len(MIGRATIONS)
        rows = old.db.execute("SELECT cid FROM conversations_fts WHERE body MATCH 'magenta'")
        assert [r[0] for r in rows] == ["c-old"]


def test_search_route(supervisor: SupervisorFactory) -> None:
    sup = supervisor()
    with sup.http() as http:
        body = {"id": "c-web", "messages": [{"role": "assistant", "content": "RGB is additive"}]}
        assert http.post("/api/conversations", json=body).status_code == 201
        found = http.get("/api/conversations", params={"q": "rgb"}).json()["data"]
        assert [(h["id"], h["snippet"]) for h in found] == [("c-web", "RGB is additive")]
        assert http.get("/api/conversations", params={"q": "teal"}).json() == {"data": []}
        assert len(http.get("/api/conversations").json()["data"]) == 1  # no q: the plain list
        too_long = http.get("/api/conversations", params={"q": "x" * 501})
        assert too_long.status_code == 400
        assert too_long.json()["error"]["param"] == "q"
