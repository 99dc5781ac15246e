"""Search over the text of an owner's conversations: titles and every message, with SQLite FTS5.

The index (``conversations_fts``, store.py's migration 4) is kept by triggers. What a person
types is never FTS5 syntax: each word becomes a quoted prefix term (``"rgb"*``), all of them
required, so ``RGB`` finds "rgb(255, 0, 0)" and a stray quote or ``NEAR`` is just text.
"""

from __future__ import annotations

import asyncio
import re
from typing import TypedDict

from corral.supervisor.store import Store

MAX_TERMS = 12
MAX_RESULTS = 50
_WORD = re.compile(r"\w+", re.UNICODE)


class SearchHit(TypedDict):
    id: str
    title: str
    updated_at: float
    snippet: str


def fts_query(text: str) -> str | None:
    """The FTS5 query for what a person typed, or None when there is nothing to look for."""
    words = _WORD.findall(text)[:MAX_TERMS]
    return " ".join(f'"{word}"*' for word in words) or None


class ConversationSearch:
    def __init__(self, store: Store) -> None:
        self._store = store

    async def search(self, owner: str, text: str) -> list[SearchHit]:
        query = fts_query(text)
        if query is None:
            return []
        return await asyncio.to_thread(self._search, owner, query)

    def _search(self, owner: str, query: str) -> list[SearchHit]:
        # snippet() column 3 is the body; a title-only hit shows the start of the body.
        rows = self._store.db.execute(
            "SELECT c.id, c.title, c.updated_at,"
            " snippet(conversations_fts, 3, '', '', '…', 16)"
            " FROM conversations_fts f JOIN conversations c ON c.owner = f.owner AND c.id = f.cid"
            " WHERE conversations_fts MATCH ? AND f.owner = ?"
            " ORDER BY bm25(conversations_fts), c.updated_at DESC LIMIT ?",
            [query, owner, MAX_RESULTS],
        ).fetchall()
        return [
            {"id": row[0], "title": row[1], "updated_at": row[2], "snippet": row[3] or ""}
            for row in rows
        ]
