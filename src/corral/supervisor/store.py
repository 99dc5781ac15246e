"""The SQLite store: connection setup and the numbered schema migrations.

Every SQL schema object of Corral is created here, so there is one place to read the schema and
one ordered list that moves an old database forward. The other modules only read and write rows.

Connections: SQLite connections must not be used by two threads at once, and Corral touches the
database from the event loop thread (short indexed reads) and from worker threads (the analytics
writer's batches, summary queries). So each thread gets its own connection, created on first use
and closed by :meth:`Store.close`. WAL mode lets those readers go on while one writer commits.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sqlite_utils import Database

log = logging.getLogger("corral.store")

DEFAULT_BUSY_TIMEOUT_S = 5.0


class SchemaError(RuntimeError):
    """The database was written by a newer Corral, or the migration list is malformed."""


@dataclass(frozen=True)
class Migration:
    """One schema step. ``version`` numbers run 1, 2, 3... and are never reused or edited."""

    version: int
    name: str
    apply: Callable[[Database], None]


def _sql(script: str) -> Callable[[Database], None]:
    def apply(db: Database) -> None:
        # Inside an open transaction sqlite-utils splits the script into statements instead of
        # calling sqlite3's executescript, which would COMMIT first and break atomicity.
        db.executescript(script)

    return apply


_V1_ANALYTICS = """
CREATE TABLE analytics (
    id INTEGER PRIMARY KEY,
    ts REAL NOT NULL,
    principal TEXT,
    method TEXT NOT NULL,
    path TEXT NOT NULL,
    route_group TEXT,
    action TEXT,
    status INTEGER NOT NULL,
    latency_ms REAL,
    client_ip TEXT,
    ip_private INTEGER NOT NULL DEFAULT 0,
    country TEXT,
    user_agent TEXT,
    browser TEXT,
    os TEXT,
    device TEXT,
    model TEXT,
    prompt_tokens INTEGER,
    completion_tokens INTEGER,
    ttft_ms REAL,
    tokens_per_second REAL,
    conversation_id TEXT
);
-- Every summary query is bounded by time; the others serve the common filters.
CREATE INDEX analytics_ts ON analytics (ts);
CREATE INDEX analytics_principal_ts ON analytics (principal, ts);
CREATE INDEX analytics_model_ts ON analytics (model, ts);
CREATE INDEX analytics_country_ts ON analytics (country, ts);
"""

_V2_CREDENTIALS = """
CREATE TABLE api_keys (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    key_hash TEXT NOT NULL UNIQUE,
    prefix TEXT NOT NULL,
    admin INTEGER NOT NULL DEFAULT 0,
    models TEXT,
    created_at REAL NOT NULL,
    revoked_at REAL
);
-- A name is unique among live keys only, so a revoked key's name can be given out again.
CREATE UNIQUE INDEX api_keys_live_name ON api_keys (name) WHERE revoked_at IS NULL;

CREATE TABLE users (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    admin INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL
);

CREATE TABLE sessions (
    token_hash TEXT PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at REAL NOT NULL,
    expires_at REAL NOT NULL
);
CREATE INDEX sessions_expires_at ON sessions (expires_at);
CREATE INDEX sessions_user_id ON sessions (user_id);
"""

# The web UI's conversations, per owner ("local" while auth is off, else "user:NAME" or
# "key:NAME"). settings and messages are JSON text; times are Unix seconds.
_V3_CONVERSATIONS = """
CREATE TABLE conversations (
    id TEXT NOT NULL,
    owner TEXT NOT NULL,
    title TEXT NOT NULL DEFAULT '',
    pinned INTEGER NOT NULL DEFAULT 0,
    model TEXT,
    mode TEXT,
    system_prompt TEXT NOT NULL DEFAULT '',
    settings TEXT NOT NULL DEFAULT '{}',
    messages TEXT NOT NULL DEFAULT '[]',
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    PRIMARY KEY (owner, id)
);
CREATE INDEX conversations_owner_updated_at ON conversations (owner, updated_at);
"""

# Conversations belong to a user's or key's stable id, not its name (a name can be given out
# again). A user's id is a random uid, as SQLite reuses the row id of a deleted last row; a
# key's is its row id (revoked keys stay in the table). Rows of users and live keys that
# exist move over; the others belonged to nobody any more.
_V4_OWNER_IDS = """
ALTER TABLE users ADD COLUMN uid TEXT;
UPDATE users SET uid = lower(hex(randomblob(12)));
CREATE UNIQUE INDEX users_uid ON users (uid);
UPDATE conversations SET owner = 'user#' || (
    SELECT uid FROM users WHERE users.name = substr(conversations.owner, 6)
) WHERE owner LIKE 'user:%'
    AND EXISTS (SELECT 1 FROM users WHERE users.name = substr(conversations.owner, 6));
UPDATE conversations SET owner = 'key#' || (
    SELECT id FROM api_keys
    WHERE api_keys.name = substr(conversations.owner, 5) AND revoked_at IS NULL
) WHERE owner LIKE 'key:%' AND EXISTS (
    SELECT 1 FROM api_keys
    WHERE api_keys.name = substr(conversations.owner, 5) AND revoked_at IS NULL
);
"""


# Full-text search over conversations (title and every message's text), kept in step by
# triggers so no write path can forget it; conversations/search.py reads it. The text is the
# messages' "content" fields joined by newlines (json_each over the stored JSON array).
_MESSAGES_TEXT = (
    "(SELECT group_concat(json_extract(value, '$.content'), char(10)) FROM json_each({}))"
)
_V5_CONVERSATION_SEARCH = f"""
CREATE VIRTUAL TABLE conversations_fts USING fts5(
    owner UNINDEXED, cid UNINDEXED, title, body, tokenize = 'unicode61 remove_diacritics 2'
);
INSERT INTO conversations_fts (owner, cid, title, body)
    SELECT owner, id, title, {_MESSAGES_TEXT.format("messages")} FROM conversations;
CREATE TRIGGER conversations_fts_insert AFTER INSERT ON conversations BEGIN
    INSERT INTO conversations_fts (owner, cid, title, body)
        VALUES (NEW.owner, NEW.id, NEW.title, {_MESSAGES_TEXT.format("NEW.messages")});
END;
CREATE TRIGGER conversations_fts_update AFTER UPDATE OF title, messages ON conversations BEGIN
    DELETE FROM conversations_fts WHERE owner = OLD.owner AND cid = OLD.id;
    INSERT INTO conversations_fts (owner, cid, title, body)
        VALUES (NEW.owner, NEW.id, NEW.title, {_MESSAGES_TEXT.format("NEW.messages")});
END;
CREATE TRIGGER conversations_fts_delete AFTER DELETE ON conversations BEGIN
    DELETE FROM conversations_fts WHERE owner = OLD.owner AND cid = OLD.id;
END;
"""

# Seconds of audio a request transcribed (in) or synthesised (out); NULL for other requests.
_V6_AUDIO_SECONDS = """
ALTER TABLE analytics ADD COLUMN audio_seconds_in REAL;
ALTER TABLE analytics ADD COLUMN audio_seconds_out REAL;
"""


# Append only: new tables and columns go here as versions 7, 8...
MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "analytics", _sql(_V1_ANALYTICS)),
    Migration(2, "api_keys_users_sessions", _sql(_V2_CREDENTIALS)),
    Migration(3, "conversations", _sql(_V3_CONVERSATIONS)),
    Migration(4, "conversation_owner_ids", _sql(_V4_OWNER_IDS)),
    Migration(5, "conversation_search", _sql(_V5_CONVERSATION_SEARCH)),
    Migration(6, "analytics_audio_seconds", _sql(_V6_AUDIO_SECONDS)),
)


def _check_order(migrations: tuple[Migration, ...]) -> None:
    versions = [m.version for m in migrations]
    if versions != list(range(1, len(versions) + 1)):
        raise SchemaError(f"migration versions must be 1..n in order, got {versions}")


def applied_versions(db: Database) -> set[int]:
    if not db["schema_migrations"].exists():
        return set()
    return {int(row["version"]) for row in db.query("SELECT version FROM schema_migrations")}


def migrate(db: Database, migrations: tuple[Migration, ...] = MIGRATIONS) -> int:
    """Apply the pending migrations; returns the schema version. Safe to run on every start."""
    _check_order(migrations)
    # BEGIN IMMEDIATE takes the write lock before reading the applied list, so a server and a
    # `corral keys` command opening the same new file cannot both run migration 1.
    db.conn.execute("BEGIN IMMEDIATE")
    try:
        db.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            "version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at REAL NOT NULL)"
        )
        done = applied_versions(db)
        newest = max(done, default=0)
        if newest > len(migrations):
            raise SchemaError(
                f"database schema version {newest} is newer than this Corral "
                f"({len(migrations)}); upgrade Corral or use another database file"
            )
        for migration in migrations:
            if migration.version in done:
                continue
            log.info("applying schema migration %d (%s)", migration.version, migration.name)
            migration.apply(db)
            db.execute(
                "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                [migration.version, migration.name, time.time()],
            )
        db.conn.commit()
    except BaseException:
        db.conn.rollback()
        raise
    return len(migrations)


class Store:
    """An open SQLite database file with Corral's schema; one connection per thread."""

    def __init__(
        self,
        path: str | Path,
        *,
        busy_timeout_s: float = DEFAULT_BUSY_TIMEOUT_S,
        migrations: tuple[Migration, ...] = MIGRATIONS,
    ) -> None:
        if str(path) == ":memory:":
            # Each thread's connection would see a different empty database.
            raise ValueError("Store needs a file path; use a temporary file in tests")
        self.path = Path(path)
        self.busy_timeout_s = busy_timeout_s
        self._local = threading.local()
        self._lock = threading.Lock()
        self._connections: list[Database] = []
        self._closed = False
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = self.db
        # WAL is a property of the file, so once is enough. A reader never waits for the writer
        # and the writer appends instead of rewriting pages.
        db.enable_wal()
        self.schema_version = migrate(db, migrations)

    @property
    def db(self) -> Database:
        """This thread's connection, opened on first use."""
        if self._closed:
            raise RuntimeError("store is closed")
        db: Database | None = getattr(self._local, "db", None)
        if db is None:
            db = self._connect()
            self._local.db = db
        return db

    def _connect(self) -> Database:
        with self._lock:
            if self._closed:
                raise RuntimeError("store is closed")
            # check_same_thread=False only so that close() may close every thread's connection;
            # each connection is still used by the one thread that opened it.
            conn = sqlite3.connect(self.path, timeout=self.busy_timeout_s, check_same_thread=False)
            try:
                # synchronous=NORMAL in WAL mode: a commit is durable against a process crash;
                # a power cut may lose the last commits but never corrupts the file.
                conn.execute("PRAGMA synchronous=NORMAL")
                conn.execute("PRAGMA foreign_keys=ON")
                db = Database(conn, execute_plugins=False)
            except BaseException:
                conn.close()
                raise
            self._connections.append(db)
            return db

    def close(self) -> None:
        """Close every thread's connection. Call after the writers have stopped."""
        with self._lock:
            self._closed = True
            connections, self._connections = self._connections, []
        for db in connections:
            db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
