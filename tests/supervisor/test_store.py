"""The SQLite store: pragmas, per-thread connections, numbered migrations."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlite_utils import Database

from corral.supervisor.store import MIGRATIONS, Migration, SchemaError, Store


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store(tmp_path / "corral.db") as s:
        yield s


def _tables(db: Database) -> set[str]:
    return set(db.table_names())


def test_new_database_gets_the_whole_schema(store: Store) -> None:
    assert {"analytics", "api_keys", "users", "sessions", "schema_migrations"} <= _tables(store.db)
    rows = list(store.db.query("SELECT version, name FROM schema_migrations ORDER BY version"))
    assert [r["version"] for r in rows] == [m.version for m in MIGRATIONS]
    assert store.schema_version == len(MIGRATIONS)


def test_pragmas_wal_normal_sync_busy_timeout_foreign_keys(tmp_path: Path) -> None:
    with Store(tmp_path / "c.db", busy_timeout_s=2.5) as store:
        db = store.db
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert db.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
        assert db.execute("PRAGMA busy_timeout").fetchone()[0] == 2500
        assert db.execute("PRAGMA foreign_keys").fetchone()[0] == 1


def test_reopen_is_idempotent_and_keeps_data(tmp_path: Path) -> None:
    path = tmp_path / "corral.db"
    with Store(path) as store:
        store.db.execute(
            "INSERT INTO users (name, password_hash, created_at) VALUES ('ann', 'x', 1.0)"
        )
    with Store(path) as store:
        applied = list(store.db.query("SELECT version FROM schema_migrations"))
        assert len(applied) == len(MIGRATIONS)
        assert [r["name"] for r in store.db.query("SELECT name FROM users")] == ["ann"]


def test_new_migration_applies_on_next_open(tmp_path: Path) -> None:
    path = tmp_path / "corral.db"
    Store(path).close()

    def downloads(db: Database) -> None:
        db.executescript("CREATE TABLE downloads (id INTEGER PRIMARY KEY);")

    extra = Migration(len(MIGRATIONS) + 1, "downloads", downloads)
    with Store(path, migrations=(*MIGRATIONS, extra)) as store:
        assert "downloads" in _tables(store.db)
        assert store.schema_version == extra.version


def test_failed_migration_rolls_back_completely(tmp_path: Path) -> None:
    path = tmp_path / "corral.db"
    Store(path).close()

    def broken(db: Database) -> None:
        db.executescript("CREATE TABLE half_done (id INTEGER);")
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        Store(path, migrations=(*MIGRATIONS, Migration(len(MIGRATIONS) + 1, "broken", broken)))
    with Store(path) as store:
        assert "half_done" not in _tables(store.db)
        versions = {r["version"] for r in store.db.query("SELECT version FROM schema_migrations")}
        assert versions == {m.version for m in MIGRATIONS}


def test_database_from_a_newer_corral_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "corral.db"
    with Store(path) as store:
        store.db.execute(
            "INSERT INTO schema_migrations (version, name, applied_at) VALUES (99, 'future', 0)"
        )
    with pytest.raises(SchemaError, match="newer"):
        Store(path)


def test_migration_numbers_must_run_in_order(tmp_path: Path) -> None:
    noop = Migration(3, "gap", lambda db: None)
    with pytest.raises(SchemaError, match=r"1\.\.n"):
        Store(tmp_path / "c.db", migrations=(MIGRATIONS[0], noop))


def test_memory_database_is_rejected() -> None:
    with pytest.raises(ValueError, match="file path"):
        Store(":memory:")


def test_each_thread_gets_its_own_connection_and_close_closes_all(store: Store) -> None:
    seen: list[Database] = []

    def worker() -> None:
        db = store.db
        db.execute("INSERT INTO users (name, password_hash, created_at) VALUES ('t', 'x', 0)")
        seen.append(db)

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join()
    assert seen
    assert seen[0] is not store.db
    assert store.db is store.db
    # A write from one thread's connection is visible to another's.
    assert [r["name"] for r in store.db.query("SELECT name FROM users")] == ["t"]
    store.close()
    with pytest.raises(sqlite3.ProgrammingError):
        seen[0].execute("SELECT 1")
    with pytest.raises(RuntimeError, match="closed"):
        _ = store.db


def test_two_stores_on_one_file_share_data(tmp_path: Path) -> None:
    path = tmp_path / "corral.db"
    with Store(path) as a, Store(path) as b:
        a.db.execute("INSERT INTO users (name, password_hash, created_at) VALUES ('x', 'h', 0)")
        assert b.db.execute("SELECT COUNT(*) FROM users").fetchone()[0] == 1
