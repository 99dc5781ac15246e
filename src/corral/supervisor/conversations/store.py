"""The web UI's conversations: stored per owner in SQLite, read and written whole.

A conversation belongs to the caller that created it: ``user#ID`` for a signed-in user,
``key#ID`` (or ``config#DIGEST``) for an API key, and ``local`` while auth is off (ids, not
names: see ``Principal.uid``). Another
owner's conversation is indistinguishable from a missing one. The messages are one JSON array
that the UI replaces with each PATCH; its count and encoded size are capped so that one client
cannot fill the disk or make every list read slow.

``updated_at`` orders the sidebar, so it moves when the content changes (messages, model, mode,
system prompt, settings), not when a conversation is only renamed or pinned.

Every public method is a coroutine that runs its SQLite work in a worker thread; the store
gives each thread its own connection.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Annotated, Any, Literal, TypedDict

from pydantic import BaseModel, ConfigDict, Field
from sqlite_utils import Database

from corral.protocol.messages import MaxTokens, Probability, Temperature
from corral.supervisor.auth.identity import Principal
from corral.supervisor.errors import BadRequest, Conflict, NotFound, PayloadTooLarge
from corral.supervisor.store import Store
from corral.supervisor.streams.conversation_ids import (
    InvalidConversationId,
    validate_conversation_id,
)

__all__ = [
    "LOCAL_OWNER",
    "Conversation",
    "ConversationPatch",
    "ConversationSummary",
    "Conversations",
    "Limits",
    "NewConversation",
    "owner_for",
]

LOCAL_OWNER = "local"

# Limits; a deployment may pass other values through ``Limits``.
MAX_MESSAGES = 2000
MAX_MESSAGES_BYTES = 4 << 20  # the UTF-8 JSON of the messages array
MAX_CONVERSATIONS_PER_OWNER = 10_000
MAX_TITLE_CHARS = 500
MAX_SYSTEM_PROMPT_CHARS = 100_000
MAX_MODEL_CHARS = 256
MODE_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"

_SUMMARY_COLUMNS = "id, title, pinned, model, mode, created_at, updated_at"
_ALL_COLUMNS = f"{_SUMMARY_COLUMNS}, system_prompt, settings, messages"
# A PATCH that sets only these leaves updated_at alone (the sidebar order stays).
_METADATA_FIELDS = frozenset({"title", "pinned"})


@dataclass(frozen=True)
class Limits:
    max_messages: int = MAX_MESSAGES
    max_messages_bytes: int = MAX_MESSAGES_BYTES
    max_conversations: int = MAX_CONVERSATIONS_PER_OWNER


def owner_for(principal: Principal | None) -> str:
    """The owner name under which a caller's conversations are stored."""
    if principal is None or principal.kind == "anonymous":
        return LOCAL_OWNER
    return principal.owner


# -- request bodies --------------------------------------------------------------------------


class MessageStats(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)

    ttft_ms: float | None = None
    tokens_per_second: float | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None


class StoredMessage(BaseModel):
    # Unknown keys are kept: a newer UI may store more per message; the size cap still holds.
    model_config = ConfigDict(extra="allow", strict=True)

    role: Literal["system", "user", "assistant"]
    content: str
    reasoning: str | None = None
    stats: MessageStats | None = None


class SamplingSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    temperature: Temperature | None = None
    top_p: Probability | None = None
    max_tokens: Annotated[MaxTokens, Field(le=10_000_000)] | None = None


class ConversationPatch(BaseModel):
    """The fields a client may set; a PATCH changes only the ones it names."""

    model_config = ConfigDict(extra="forbid", strict=True)

    title: str = Field(default="", max_length=MAX_TITLE_CHARS)
    pinned: bool = False
    model: str | None = Field(default=None, min_length=1, max_length=MAX_MODEL_CHARS)
    mode: str | None = Field(default=None, pattern=MODE_PATTERN)
    system_prompt: str = Field(default="", max_length=MAX_SYSTEM_PROMPT_CHARS)
    settings: SamplingSettings = Field(default_factory=SamplingSettings)
    messages: list[StoredMessage] = Field(default_factory=list)


class NewConversation(ConversationPatch):
    """A POST body: any patch field, and an optional client-chosen id."""

    id: str | None = None


# -- responses -------------------------------------------------------------------------------


class ConversationSummary(TypedDict):
    id: str
    title: str
    pinned: bool
    model: str | None
    mode: str | None
    created_at: float
    updated_at: float


class Conversation(ConversationSummary):
    system_prompt: str
    settings: dict[str, Any]
    messages: list[dict[str, Any]]


def _summary(row: tuple[Any, ...]) -> ConversationSummary:
    return {
        "id": row[0],
        "title": row[1],
        "pinned": bool(row[2]),
        "model": row[3],
        "mode": row[4],
        "created_at": row[5],
        "updated_at": row[6],
    }


def _conversation(row: tuple[Any, ...]) -> Conversation:
    s = _summary(row)
    return {
        **s,
        "system_prompt": row[7],
        "settings": json.loads(row[8]),
        "messages": json.loads(row[9]),
    }


# -- the service -----------------------------------------------------------------------------


def _checked_id(raw: str) -> str:
    try:
        return validate_conversation_id(raw)
    except InvalidConversationId as exc:
        raise BadRequest(
            f"conversation id: {exc}", param="id", code="invalid_conversation_id"
        ) from None


def _not_found(cid: str) -> NotFound:
    return NotFound(f"no conversation with id {cid!r}", code="conversation_not_found")


@contextmanager
def _write(db: Database) -> Iterator[None]:
    """One write transaction that takes the lock at once (count checks cannot race)."""
    db.conn.execute("BEGIN IMMEDIATE")
    try:
        yield
        db.conn.commit()
    except BaseException:
        db.conn.rollback()
        raise


class Conversations:
    def __init__(
        self, store: Store, limits: Limits | None = None, clock: Callable[[], float] = time.time
    ) -> None:
        self._store = store
        self.limits = limits or Limits()
        self._clock = clock

    @property
    def store(self) -> Store:
        return self._store

    # -- public, async -------------------------------------------------------------------

    async def summaries(self, owner: str) -> list[ConversationSummary]:
        """The owner's conversations, pinned first, then the most recently changed."""
        return await asyncio.to_thread(self._summaries, owner)

    async def get(self, owner: str, cid: str) -> Conversation:
        return await asyncio.to_thread(self._get, owner, _checked_id(cid))

    async def create(self, owner: str, new: NewConversation) -> Conversation:
        cid = _checked_id(new.id) if new.id is not None else _new_id()
        columns = self._columns(new, new.model_fields_set - {"id"})
        return await asyncio.to_thread(self._create, owner, cid, columns)

    async def update(self, owner: str, cid: str, patch: ConversationPatch) -> Conversation:
        cid = _checked_id(cid)
        columns = self._columns(patch, patch.model_fields_set)
        touch = bool(patch.model_fields_set - _METADATA_FIELDS)
        return await asyncio.to_thread(self._update, owner, cid, columns, touch)

    async def delete(self, owner: str, cid: str) -> None:
        await asyncio.to_thread(self._delete, owner, _checked_id(cid))

    # -- validation ----------------------------------------------------------------------

    def _columns(self, body: ConversationPatch, fields: set[str]) -> dict[str, Any]:
        """Column name -> SQL value for the named fields (column names never come from input)."""
        columns: dict[str, Any] = {}
        if "title" in fields:
            columns["title"] = body.title
        if "pinned" in fields:
            columns["pinned"] = int(body.pinned)
        if "model" in fields:
            columns["model"] = body.model
        if "mode" in fields:
            columns["mode"] = body.mode
        if "system_prompt" in fields:
            columns["system_prompt"] = body.system_prompt
        if "settings" in fields:
            columns["settings"] = json.dumps(body.settings.model_dump(exclude_none=True))
        if "messages" in fields:
            columns["messages"] = self._messages_json(body.messages)
        return columns

    def _messages_json(self, messages: list[StoredMessage]) -> str:
        limits = self.limits
        if len(messages) > limits.max_messages:
            raise PayloadTooLarge(
                f"a conversation holds at most {limits.max_messages} messages, got {len(messages)}",
                param="messages",
                code="too_many_messages",
            )
        # exclude_unset keeps exactly what the client sent, explicit nulls and extra keys too.
        text = json.dumps(
            [m.model_dump(exclude_unset=True) for m in messages],
            ensure_ascii=False,
            separators=(",", ":"),
        )
        size = len(text.encode())
        if size > limits.max_messages_bytes:
            raise PayloadTooLarge(
                f"the messages take {size} bytes; a conversation holds at most "
                f"{limits.max_messages_bytes}",
                param="messages",
                code="conversation_too_large",
            )
        return text

    # -- SQLite, in worker threads -------------------------------------------------------

    def _summaries(self, owner: str) -> list[ConversationSummary]:
        rows = self._store.db.execute(
            f"SELECT {_SUMMARY_COLUMNS} FROM conversations WHERE owner = ?"
            " ORDER BY pinned DESC, updated_at DESC, id LIMIT ?",
            [owner, self.limits.max_conversations],
        ).fetchall()
        return [_summary(row) for row in rows]

    def _select(self, db: Database, owner: str, cid: str) -> Conversation | None:
        row = db.execute(
            f"SELECT {_ALL_COLUMNS} FROM conversations WHERE owner = ? AND id = ?", [owner, cid]
        ).fetchone()
        return None if row is None else _conversation(row)

    def _get(self, owner: str, cid: str) -> Conversation:
        found = self._select(self._store.db, owner, cid)
        if found is None:
            raise _not_found(cid)
        return found

    def _create(self, owner: str, cid: str, columns: dict[str, Any]) -> Conversation:
        db = self._store.db
        now = self._clock()
        values = {**columns, "id": cid, "owner": owner, "created_at": now, "updated_at": now}
        names = list(values)
        sql = (
            f"INSERT INTO conversations ({', '.join(names)})"
            f" VALUES ({', '.join('?' for _ in names)})"
        )
        try:
            with _write(db):
                (count,) = db.execute(
                    "SELECT COUNT(*) FROM conversations WHERE owner = ?", [owner]
                ).fetchone()
                if count >= self.limits.max_conversations:
                    raise BadRequest(
                        f"at most {self.limits.max_conversations} conversations are kept "
                        "per user; delete some first",
                        code="too_many_conversations",
                    )
                db.execute(sql, [values[n] for n in names])
                created = self._select(db, owner, cid)
        except sqlite3.IntegrityError:
            raise Conflict(
                f"a conversation with id {cid!r} already exists",
                param="id",
                code="conversation_exists",
            ) from None
        assert created is not None
        return created

    def _update(self, owner: str, cid: str, columns: dict[str, Any], touch: bool) -> Conversation:
        db = self._store.db
        values = dict(columns)
        if touch:
            values["updated_at"] = self._clock()
        with _write(db):
            if values:
                assignments = ", ".join(f"{name} = ?" for name in values)
                cursor = db.execute(
                    f"UPDATE conversations SET {assignments} WHERE owner = ? AND id = ?",
                    [*values.values(), owner, cid],
                )
                if cursor.rowcount == 0:
                    raise _not_found(cid)
            updated = self._select(db, owner, cid)
        if updated is None:
            raise _not_found(cid)
        return updated

    def _delete(self, owner: str, cid: str) -> None:
        cursor = self._store.db.execute(
            "DELETE FROM conversations WHERE owner = ? AND id = ?", [owner, cid]
        )
        if cursor.rowcount == 0:
            raise _not_found(cid)


def _new_id() -> str:
    return f"c-{secrets.token_hex(12)}"
